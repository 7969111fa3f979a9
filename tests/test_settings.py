"""One declaration per setting: AppConfig's fields make its flags, its environment variables and its
--help; the settings path imports no torch; --mcp-server exposes /answer alone, typed and documented."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from vqa_demo.settings import declared, env_values, flag_of, setting
from vqa_demo.ui.server_settings import MCP_MISSING, AppConfig

ROOT = Path(__file__).resolve().parents[1]
HAS_MCP = importlib.util.find_spec("mcp") is not None


def run_python(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@dataclass
class WithExtra(AppConfig):
    """AppConfig plus one field: nothing else is written for it to be a flag and a variable."""

    extra_limit: int = setting(3, "a setting added as one field", env="VQA_EXTRA_LIMIT")


def test_a_new_setting_is_one_field(tmp_path):
    assert WithExtra(assets=tmp_path).extra_limit == 3
    assert WithExtra.from_env({"VQA_EXTRA_LIMIT": "7", "VQA_ASSETS": str(tmp_path)}).extra_limit == 7
    flags = WithExtra.from_args(["--extra-limit", "9"], environ={"VQA_EXTRA_LIMIT": "7"})
    assert flags.extra_limit == 9  # a flag wins over the environment
    with pytest.raises(SystemExit) as stopped:
        WithExtra.from_args(["--help"], environ={})
    assert stopped.value.code == 0


def test_flags_win_over_environment_over_defaults(tmp_path):
    env = {"VQA_QUEUE_SIZE": "3", "VQA_THREADS": "5", "VQA_CHECKPOINTS": f"{tmp_path}/a,{tmp_path}/b"}
    config = AppConfig.from_args(["--threads", "2", "--assets", str(tmp_path)], environ=env)
    assert (config.threads, config.queue_size, config.max_sessions) == (2, 3, 500)
    assert config.checkpoints == [tmp_path / "a", tmp_path / "b"] and config.assets == tmp_path
    assert AppConfig.from_env({"VQA_MCP_SERVER": "0"}).mcp_server is False


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        ({"VQA_QUEUE_SIZE": "many"}, "VQA_QUEUE_SIZE must be a whole number, not 'many'."),
        ({"VQA_MCP_SERVER": "maybe"}, "VQA_MCP_SERVER must be one of 1, true, yes, on, 0, false, no, off"),
        ({"VQA_PRECISION": "fp8"}, "VQA_PRECISION must be one of auto, fp32, bf16, int8, not 'fp8'."),
    ],
)
def test_a_bad_variable_is_one_sentence(env, sentence):
    with pytest.raises(ValueError) as error:
        env_values(AppConfig, env)
    assert str(error.value).startswith(sentence)


def test_help_lists_every_flag_with_default_variable_and_choices():
    """``python app.py --help`` answers before Gradio or torch load, and documents every field."""
    result = run_python("app.py", "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for field, _ in declared(AppConfig):
        assert flag_of(field) in text and f"env {field.metadata['env']}" in text, field.name
    assert "(default: 16; env VQA_QUEUE_SIZE)" in text and "{auto,fp32,bf16,int8}" in text
    assert "(default: as stored, fp32 on CPU; env VQA_PRECISION)" in text
    fields = {f.name for f in dataclasses.fields(AppConfig)}
    assert {f.name for f, _ in declared(AppConfig)} == fields - {"title", "decode_seconds"}


def test_the_settings_and_help_paths_import_no_torch():
    code = (
        "import sys\n"
        "from vqa_demo.ui.server_settings import AppConfig\n"
        "from vqa_demo import evaluate\n"
        "AppConfig.from_args(['--threads', '2'], environ={})\n"
        "evaluate.parse_args(['--data', 'd', '--out', 'o'])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'gradio') if m in sys.modules))\n"
    )
    result = run_python("-c", code, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.skipif(HAS_MCP, reason="the refusal is for an environment without the MCP extra")
def test_mcp_server_without_the_extra_is_refused_in_one_sentence(tmp_path):
    with pytest.raises(ValueError, match=r'pip install "\.\[mcp\]"'):
        AppConfig(assets=tmp_path, mcp_server=True)
    result = run_python("app.py", "--mcp-server", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {MCP_MISSING.rstrip('.')}; see python app.py --help"
    ]


@pytest.mark.skipif(not HAS_MCP, reason='needs pip install ".[mcp]"')
def test_mcp_server_reaches_launch(tmp_path):
    assert AppConfig(assets=tmp_path, mcp_server=True).launch_kwargs()["mcp_server"] is True


def test_launch_keeps_mcp_off_by_default(tmp_path):
    assert AppConfig(assets=tmp_path).launch_kwargs()["mcp_server"] is False


def test_the_mcp_extra_pins_our_gradio_version():
    import tomllib

    import gradio

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["mcp"] == [f"gradio[mcp]=={gradio.__version__}"]


def test_answer_is_the_only_public_endpoint_and_is_typed_and_documented(app_assets):
    """The MCP tools are the public API endpoints: /answer alone, described by its docstring."""
    from gradio.utils import get_function_description

    from vqa_demo.ui import build_demo

    demo = build_demo(app_assets.config)
    info = demo.get_api_info()
    assert set(info["named_endpoints"]) == {"/answer"} and not info["unnamed_endpoints"]
    (answer,) = [fn for fn in demo.fns.values() if fn.api_name == "answer"]
    signature = inspect.signature(answer.fn)
    names = [p["parameter_name"] for p in info["named_endpoints"]["/answer"]["parameters"]]
    assert list(signature.parameters) == names
    assert signature.parameters["k"].annotation is int and signature.parameters["question"].annotation is str
    assert all(signature.parameters[n].annotation is bool for n in names if n.startswith("use_"))
    description, parameters, returns = get_function_description(answer.fn)
    assert description.startswith("Answer a multiple-choice question about an image")
    assert set(parameters) == set(names) and all(parameters.values())  # every parameter documented
    assert "upload_file_to_gradio" in parameters["image"] and len(returns) == 5


def test_every_train_setting_is_declared_once_with_its_help():
    """TrainConfig's flags come from its fields: each shows its default (or what unset means)."""
    from training.train import TrainConfig, build_parser

    fields = dataclasses.fields(TrainConfig)
    assert [f.name for f, _ in declared(TrainConfig)] == [f.name for f in fields]
    text = " ".join(build_parser().format_help().split())
    for field in fields:
        assert flag_of(field) in text, field.name
    assert text.count("(default: ") >= len(fields)
    assert "(default: from --epochs)" in text and "(default: '\\n')" in text
