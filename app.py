"""The MC-VQA workbench as a Gradio app (also the Hugging Face Space entry point).

    python app.py                                   # offline default from assets/
    python app.py --checkpoints runs/compare --base google/paligemma2-3b-pt-224 --device cuda
    VQA_CHECKPOINTS=runs/compare python app.py      # the same settings as environment variables
    python app.py --help                            # every setting with its default and variable

Settings: vqa_demo/ui/server_settings.py. The page is built without the model code (transformers, peft),
which imports in a background thread once the server listens; the model loads on the first question.
"""

from vqa_demo.ui.server_settings import AppConfig

# Settings first: --help and a bad value answer before Gradio and the UI load.
config = AppConfig.from_args() if __name__ == "__main__" else AppConfig.from_env()

from vqa_demo.ui.app import build_demo  # noqa: E402
from vqa_demo.ui.zerogpu import on_zerogpu  # noqa: E402

demo = build_demo(config)
if on_zerogpu():  # ZeroGPU: load at import and move to CUDA here, not inside the @spaces.GPU functions
    demo.vqa_holder.get()

if __name__ == "__main__":
    # Once the server listens, so the page is served first; the first question then only loads.
    demo.vqa_holder.import_model_code(after=lambda: demo.is_running)
    demo.launch(**config.launch_kwargs())
