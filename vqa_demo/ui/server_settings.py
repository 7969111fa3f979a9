"""App settings: where the assets and checkpoints are, upload and queue limits; from env vars or CLI flags.

Each setting is one field of :class:`AppConfig`, declared with :func:`vqa_demo.settings.setting`: its
default, help, choices and environment variable live there, and ``python app.py --help`` lists them all.
A flag wins over its environment variable, which wins over the default. Adding a setting is adding a field.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vqa_demo.cli_errors import CliParser
from vqa_demo.inputs.decode_worker import DECODE_SECONDS
from vqa_demo.run_folders import EVALUATION_DIRS, find_checkpoints, served_run_folder
from vqa_demo.runtime import ASSETS_DIR, PRECISIONS
from vqa_demo.settings import add_arguments, env_values, parse_settings, setting
from vqa_demo.ui.zerogpu import on_zerogpu

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
# The Ask form needs one image; the browser uploads one file per request.
MAX_UPLOAD_FILES = 4
# Any request body but an upload (an event's JSON), and each value in it, JSON-encoded: Gradio keeps
# every input value in the session's state (issue 21), so these bound a session's raw inputs.
# The largest honest value is a 2 000-character question (8 KB at 4 bytes a character).
MAX_EVENT_BYTES = 64 * 1024
MAX_INPUT_BYTES = 16 * 1024
# What Gradio itself keeps per session besides the inputs: a copy of every component's config (for
# deep links), which grows with the app's components (about 0.3 MB for the offline default's 183; a
# test holds the real app under this).
GRADIO_SESSION_BYTES = 400 * 1024


def parse_file_size(size: str | int, setting: str = "--max-file-size", allow_zero: bool = False) -> int:
    """``"10mb"`` -> 10 485 760 bytes (units b, kb, mb, gb, tb of 1024, as Gradio reads them; ``1.5gb`` works)."""
    if isinstance(size, int) and not isinstance(size, bool) and (size > 0 or (allow_zero and size == 0)):
        return size
    match = _SIZE.fullmatch(str(size).strip())
    value = int(float(match.group(1)) * _UNITS[(match.group(2) or "b").lower()]) if match else -1
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(
            f"{setting} must be a positive number with a unit such as 10mb (b, kb, mb, gb, tb), not {size!r}."
        )
    return value


MCP_MISSING = (
    '--mcp-server needs the MCP extra, which is not installed: run pip install ".[mcp]" (gradio[mcp]) first.'
)


def _on_zerogpu(values: dict, environ: Mapping[str, str]) -> dict:
    """ZeroGPU: the model moves to CUDA at import (the spaces package makes that possible there)."""
    if "device" not in values and on_zerogpu(environ):
        values["device"] = "cuda"
    return values


@dataclass
class AppConfig:
    """Everything ``build_demo`` and ``launch`` need; paths are resolved to absolute ones."""

    assets: Path | None = setting(
        None,
        "assets folder (examples/, validation/, evaluation/, comparison.json)",
        env="VQA_ASSETS",
        unset="the served run's own folder when checkpoints are given (served_run_folder), else ./assets",
    )
    checkpoints: list[Path] = setting(
        [],
        "variant checkpoint dirs or parents (a training.compare or training.train --out folder, best/ dirs); "
        "the variable separates them by commas or os.pathsep",
        env="VQA_CHECKPOINTS",
        unset="<assets>/checkpoints",
    )
    base: str | None = setting(
        None, "base model dir or hub id", env="VQA_BASE", unset="the base named in the run configs"
    )
    compare_runs: list[Path] = setting(
        [],
        "more runs for the Compare tab's 'Across backbones' section: --out folders of training.compare "
        "or vqa_demo.evaluate",
        env="VQA_COMPARE_RUNS",
        unset="every folder under <assets>/runs",
    )
    device: str = setting("auto", "auto, cpu or cuda (on ZeroGPU: cuda unless set)", env="VQA_DEVICE")
    max_file_size: str = setting(
        "10mb",
        "the one size limit: each upload and the image bytes the model may read (b, kb, mb, gb, tb)",
        env="VQA_MAX_FILE_SIZE",
    )
    queue_size: int = setting(16, "requests that may wait in the queue", env="VQA_QUEUE_SIZE")
    # One thread: with two, a busy 2-core machine made /answer ~17x slower (5.3 s vs 0.31 s measured).
    threads: int = setting(1, "torch CPU threads for the model (0: torch's default)", env="VQA_THREADS")
    precision: str | None = setting(
        None,
        "base weights while serving; auto = int8 language model + bf16 vision on CPUs with native bf16, "
        "int8 + fp32 vision on other CPUs, bf16 on CUDA (vqa_demo.model.precision)",
        env="VQA_PRECISION",
        choices=PRECISIONS,
        unset="as stored, fp32 on CPU",
    )
    # Uploads sit in Gradio's cache, fetchable by anyone holding the hashed path: purge them hourly.
    upload_ttl: int = setting(
        3600,
        "seconds an upload stays in Gradio's cache before it is deleted, checked as often (0: until the "
        "server stops)",
        env="VQA_UPLOAD_TTL",
    )
    # A 36 MP upload held in each of 8 sessions kept ~1.4 GB; sessions now keep bounded copies only.
    session_ttl: int = setting(
        1800,
        "seconds a session keeps its last answer and its image copies for Explain (0: until memory or "
        "sessions run out)",
        env="VQA_SESSION_TTL",
    )
    session_memory: str = setting(
        "256mb",
        "answer image copies all sessions may hold together, oldest dropped first",
        env="VQA_SESSION_MEMORY",
    )
    # Gradio keeps each session's state (~0.2 MB measured) until this many newer ones exist.
    max_sessions: int = setting(
        500, "sessions whose state Gradio keeps, least recently used dropped first", env="VQA_MAX_SESSIONS"
    )
    mcp_server: bool = setting(
        False,
        'also serve /answer as an MCP tool for agents at /gradio_api/mcp/ (needs pip install ".[mcp]")',
        env="VQA_MCP_SERVER",
    )
    title: str = "MC-VQA workbench"
    # Wall-clock budget of one image decode (vqa_demo.inputs.decode_worker); a slower one is refused.
    decode_seconds: float = DECODE_SECONDS

    def __post_init__(self) -> None:
        parse_file_size(self.max_file_size)  # a typo fails at start-up, not on the first upload
        parse_file_size(self.session_memory, "--session-memory", allow_zero=True)
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.mcp_server and importlib.util.find_spec("mcp") is None:
            raise ValueError(MCP_MISSING)
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {self.max_sessions}")
        given = [Path(p).expanduser().resolve() for p in self.checkpoints]
        if self.assets is None:
            self.assets = (served_run_folder(given) if given else None) or (given[0] if given else ASSETS_DIR)
        self.assets = Path(self.assets).expanduser().resolve()
        self.checkpoints = given or [self.assets / "checkpoints"]
        self.compare_runs = [Path(p).expanduser().resolve() for p in self.compare_runs]

    # -- the one size limit and what derives from it ------------------------------------------------
    @property
    def max_image_bytes(self) -> int:
        """Bytes of one image: an upload, a data URL after decoding, a file the model reads."""
        return parse_file_size(self.max_file_size)

    @property
    def max_request_bytes(self) -> int:
        """Any request body but an upload: an event's inputs; images come as uploaded files."""
        return MAX_EVENT_BYTES

    @property
    def session_memory_bytes(self) -> int:
        return parse_file_size(self.session_memory, "--session-memory", allow_zero=True)

    # -- derived paths (everything the app reads lives below these) ------------------------------
    @property
    def examples_dir(self) -> Path:
        return self.assets / "examples"

    @property
    def validation_dir(self) -> Path:
        return self.assets / "validation"

    @property
    def evaluation_dir(self) -> Path:
        """``evaluation/`` (packaged assets, training.compare, or an evaluated training.train run)."""
        found = [self.assets / name for name in EVALUATION_DIRS if (self.assets / name).is_dir()]
        return found[0] if found else self.assets / "evaluation"

    @property
    def comparison_file(self) -> Path:
        """``comparison.json``, else the evaluation's ``metrics.json`` (same per-variant accuracies)."""
        comparison = self.assets / "comparison.json"
        metrics = self.evaluation_dir / "metrics.json"
        return metrics if not comparison.is_file() and metrics.is_file() else comparison

    @property
    def runs_dir(self) -> Path:
        return self.assets / "runs"

    def other_runs(self) -> list[Path]:
        """The runs the Compare tab sets beside the served one: ``compare_runs``, else ``<assets>/runs/*``."""
        if self.compare_runs:
            return list(self.compare_runs)
        if not self.runs_dir.is_dir():
            return []
        return sorted(p for p in self.runs_dir.iterdir() if p.is_dir())

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppConfig:
        """The settings the environment variables give (the Space's way); unset ones keep their default."""
        env = os.environ if environ is None else environ
        return cls(**_on_zerogpu(env_values(cls, env), env))

    @classmethod
    def from_args(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> AppConfig:
        """Flags override the environment; unknown arguments are ignored (launchers add their own).

        A bad value exits with status 2 and one sentence, as argparse does for a bad flag.
        """
        env = os.environ if environ is None else environ
        parser = CliParser(
            prog="python app.py",
            description="MC-VQA workbench (Gradio app). Every flag also reads the environment variable named "
            "in its help; a flag wins.",
        )
        add_arguments(parser, cls)
        try:
            return cls(**_on_zerogpu(parse_settings(cls, parser, argv, env, known_only=True), env))
        except ValueError as error:
            parser.error(str(error).rstrip("."))

    @property
    def delete_cache(self) -> tuple[int, int] | None:
        """``gr.Blocks(delete_cache=(every, older_than))`` in seconds, or None to keep uploads."""
        return (self.upload_ttl, self.upload_ttl) if self.upload_ttl > 0 else None

    def checkpoint_dirs(self) -> list[Path]:
        """Every variant directory under ``checkpoints`` (a root that has none stands for itself)."""
        found = []
        for root in self.checkpoints:
            try:
                found += find_checkpoints(root)
            except (ValueError, OSError):
                found.append(root)
        return found

    def served_paths(self) -> list[str]:
        """The only folders Gradio may serve files from: example and validation images."""
        return [str(p) for p in (self.examples_dir, self.validation_dir) if p.is_dir()]

    def launch_kwargs(self) -> dict:
        """Arguments for ``demo.launch``: served folders, size limits (with the body-limit middleware), kept page
        loads (:mod:`vqa_demo.ui.page_cache`), theme, CSS, JS."""
        from starlette.middleware import Middleware

        from vqa_demo.ui.page_cache import PageCache
        from vqa_demo.ui.request_limits import RequestLimits
        from vqa_demo.ui.style import CSS, JS, theme

        limits = Middleware(
            RequestLimits,
            max_body_bytes=self.max_request_bytes,
            max_file_bytes=self.max_image_bytes,
            max_files=MAX_UPLOAD_FILES,
            max_input_bytes=MAX_INPUT_BYTES,
        )
        return {
            "allowed_paths": self.served_paths(),
            # The variant directories, not their roots: a run folder served as assets holds both.
            "blocked_paths": [str(p) for p in self.checkpoint_dirs()],
            "max_file_size": self.max_image_bytes,
            # Limits outermost: every response, a kept page load's too, passes its nosniff header.
            "app_kwargs": {"middleware": [limits, Middleware(PageCache)]},
            "state_session_capacity": self.max_sessions,
            "theme": theme(),
            "css": CSS,
            "js": JS,
            "mcp_server": self.mcp_server,
        }
