"""The Gradio app: ``build_demo(AppConfig.from_env())`` returns the ``gr.Blocks``; ``app.py`` launches it."""

from vqa_demo.ui.app import build_demo
from vqa_demo.ui.server_settings import AppConfig

__all__ = ["AppConfig", "build_demo"]
