"""The Gradio app: ``build_demo(AppConfig.from_env())`` returns the ``gr.Blocks``; ``app.py`` launches it.

Both names load on first use, so the settings (:mod:`vqa_demo.ui.server_settings`) import without Gradio
or torch and ``python app.py --help`` answers at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vqa_demo.ui.app import build_demo
    from vqa_demo.ui.server_settings import AppConfig

__all__ = ["AppConfig", "build_demo"]


def __getattr__(name: str) -> Any:
    if name == "build_demo":
        from vqa_demo.ui.app import build_demo

        return build_demo
    if name == "AppConfig":
        from vqa_demo.ui.server_settings import AppConfig

        return AppConfig
    raise AttributeError(f"module 'vqa_demo.ui' has no attribute {name!r}")
