"""The vipllava family: ``family.py`` (the class), ``tiny.py`` (the tiny builder), ``README.md`` (its facts)."""
