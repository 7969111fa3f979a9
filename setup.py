"""Refuses an unsupported Python in one sentence, before any dependency is resolved.

pyproject.toml declares ``requires-python >= 3.11``, but the pip that a fresh Python 3.10 venv ships
(23.0) does not check it for a local project: it goes on to fail on some dependency's version instead.
Everything else about the package is declared in pyproject.toml.
"""

import sys

if sys.version_info < (3, 11):  # noqa: UP036  (the point of this file)
    sys.exit(
        f"vqa-demo needs Python 3.11 or newer (transformers 5.21+ does), not {sys.version.split()[0]}: "
        'create the venv with python3.11 (and on a Hugging Face Space keep python_version: "3.11").'
    )

from setuptools import setup  # noqa: E402  (after the check: an old Python may lack it)

setup()
