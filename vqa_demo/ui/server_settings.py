"""App settings: where the assets and checkpoints are, upload and queue limits; from env vars or CLI flags.

Environment variables (CLI flags of the same name win)::

    VQA_ASSETS        assets folder (examples/, validation/, evaluation/, comparison.json); default ./assets,
                      or, when VQA_CHECKPOINTS / --checkpoints are given, the served run's own folder
                      (see served_run_folder), so the card, Compare and Errors show that run's evaluation
    VQA_CHECKPOINTS   variant checkpoint dirs or parents (a training.compare or training.train --out
                      folder, best/ dirs), separated by commas or os.pathsep; default <assets>/checkpoints
    VQA_BASE          base model dir or hub id (default: the one named in the run configs)
    VQA_COMPARE_RUNS  more runs for the Compare tab's "Across backbones" section: output folders of
                      training.compare or vqa_demo.evaluate, separated by commas or os.pathsep;
                      default: every folder under <assets>/runs
    VQA_DEVICE        auto | cpu | cuda
    VQA_MAX_FILE_SIZE the one size limit, e.g. 10mb: each upload and the image bytes the model may
                      read (event bodies have their own 64 KB limit, see MAX_EVENT_BYTES)
    VQA_QUEUE_SIZE    requests that may wait in the queue
    VQA_THREADS       torch CPU threads for the model (default 1; 0 = torch's default)
    VQA_PRECISION     base weights while serving: auto | fp32 | bf16 | int8 (default: as stored,
                      fp32 on CPU); auto = int8 language model + bf16 vision on CPUs with native
                      bf16, int8 + fp32 vision on other CPUs, bf16 on CUDA (vqa_demo.model.precision)
    VQA_UPLOAD_TTL    seconds an uploaded image stays in Gradio's cache before it is deleted
                      (checked as often; default 3600; 0 keeps uploads until the server stops)
    VQA_SESSION_TTL   seconds a session keeps its last answer (and that answer's image copies) for
                      the Explain section (default 1800; 0 keeps it until memory or sessions run out)
    VQA_SESSION_MEMORY  bytes all sessions together may hold in answer images, oldest dropped
                      first (default 256mb)
    VQA_MAX_SESSIONS  sessions whose state Gradio keeps (~0.2 MB each), least recently used dropped
                      first (default 500)
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vqa_demo.inputs.decode_worker import DECODE_SECONDS
from vqa_demo.run_folders import EVALUATION_DIRS, find_checkpoints, served_run_folder
from vqa_demo.runtime import ASSETS_DIR, PRECISIONS
from vqa_demo.ui.zerogpu import on_zerogpu

_SPLIT = re.compile(r"[," + re.escape(os.pathsep) + r"]")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
# The Ask form needs one image; the browser uploads one file per request.
MAX_UPLOAD_FILES = 4
# Any request body but an upload (an event's JSON), and each value in it, JSON-encoded: Gradio keeps
# every input value in the session's state (issue 21), so these bound a session's raw inputs.
# The largest honest value is a 2 000-character question (8 KB at 4 bytes a character).
MAX_EVENT_BYTES = 64 * 1024
MAX_INPUT_BYTES = 16 * 1024


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


def _paths(text: str | None) -> list[Path]:
    return [Path(p.strip()) for p in _SPLIT.split(text or "") if p.strip()]


@dataclass
class AppConfig:
    """Everything ``build_demo`` and ``launch`` need; paths are resolved to absolute ones."""

    assets: Path | None = None  # None: the served run's folder with checkpoints given, else ./assets
    checkpoints: list[Path] = field(default_factory=list)  # empty: <assets>/checkpoints
    base: str | None = None
    compare_runs: list[Path] = field(default_factory=list)  # empty: the folders under <assets>/runs
    device: str = "auto"
    max_file_size: str = "10mb"
    queue_size: int = 16
    # One thread: with two, a busy 2-core machine made /answer ~17x slower (5.3 s vs 0.31 s measured).
    threads: int = 1
    precision: str | None = None  # None: as stored (fp32 on CPU); "auto" for a real 3B on a free CPU Space
    # Uploads sit in Gradio's cache, fetchable by anyone holding the hashed path: purge them hourly.
    upload_ttl: int = 3600
    # A 36 MP upload held in each of 8 sessions kept ~1.4 GB; sessions now keep bounded copies only.
    session_ttl: int = 1800
    session_memory: str = "256mb"
    # Gradio keeps each session's state (~0.2 MB measured) until this many newer ones exist.
    max_sessions: int = 500
    title: str = "MC-VQA workbench"
    # Wall-clock budget of one image decode (vqa_demo.inputs.decode_worker); a slower one is refused.
    decode_seconds: float = DECODE_SECONDS

    def __post_init__(self) -> None:
        parse_file_size(self.max_file_size)  # a typo fails at start-up, not on the first upload
        parse_file_size(self.session_memory, "--session-memory", allow_zero=True)
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
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
        env = os.environ if environ is None else environ
        return cls(
            assets=Path(env["VQA_ASSETS"]) if env.get("VQA_ASSETS") else None,
            checkpoints=_paths(env.get("VQA_CHECKPOINTS")),
            base=env.get("VQA_BASE") or None,
            compare_runs=_paths(env.get("VQA_COMPARE_RUNS")),
            # ZeroGPU: the model moves to CUDA at import (the spaces package makes that possible there)
            device=env.get("VQA_DEVICE") or ("cuda" if on_zerogpu(env) else "auto"),
            max_file_size=env.get("VQA_MAX_FILE_SIZE") or "10mb",
            queue_size=int(env.get("VQA_QUEUE_SIZE") or 16),
            threads=int(env.get("VQA_THREADS") or 1),
            precision=env.get("VQA_PRECISION") or None,
            upload_ttl=int(env.get("VQA_UPLOAD_TTL") or 3600),
            session_ttl=int(env.get("VQA_SESSION_TTL") or 1800),
            session_memory=env.get("VQA_SESSION_MEMORY") or "256mb",
            max_sessions=int(env.get("VQA_MAX_SESSIONS") or 500),
        )

    @classmethod
    def from_args(
        cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> AppConfig:
        """Flags override the environment; unknown arguments are ignored (launchers add their own)."""
        defaults = cls.from_env(environ)
        parser = argparse.ArgumentParser(description="MC-VQA workbench (Gradio app)")
        parser.add_argument(
            "--assets",
            default=None,
            help="assets folder (default: VQA_ASSETS; else the served run's folder when --checkpoints or "
            "VQA_CHECKPOINTS is given; else ./assets)",
        )
        parser.add_argument("--checkpoints", nargs="+", default=None, help="variant dirs or their parents")
        parser.add_argument("--base", default=defaults.base, help="base model dir or hub id")
        parser.add_argument(
            "--compare-runs",
            nargs="+",
            default=None,
            help="output folders of training.compare / vqa_demo.evaluate runs (other backbones) for the Compare tab",
        )
        parser.add_argument("--device", default=defaults.device, help="auto, cpu or cuda")
        parser.add_argument("--max-file-size", default=defaults.max_file_size, help="upload limit, e.g. 10mb")
        parser.add_argument("--queue-size", type=int, default=defaults.queue_size)
        parser.add_argument(
            "--precision", choices=PRECISIONS, default=defaults.precision, help="see VQA_PRECISION"
        )
        parser.add_argument(
            "--threads", type=int, default=defaults.threads, help="torch CPU threads (0: default)"
        )
        parser.add_argument(
            "--upload-ttl",
            type=int,
            default=defaults.upload_ttl,
            help="seconds before an upload is deleted from the cache (0: never)",
        )
        parser.add_argument(
            "--session-ttl",
            type=int,
            default=defaults.session_ttl,
            help="seconds a session keeps its last answer for Explain (0: until memory runs out)",
        )
        parser.add_argument(
            "--session-memory",
            default=defaults.session_memory,
            help="answer image copies all sessions may hold together, e.g. 256mb",
        )
        parser.add_argument(
            "--max-sessions", type=int, default=defaults.max_sessions, help="sessions whose state is kept"
        )
        args, _ = parser.parse_known_args(argv)
        env = os.environ if environ is None else environ
        assets = (
            Path(args.assets) if args.assets else (Path(env["VQA_ASSETS"]) if env.get("VQA_ASSETS") else None)
        )
        checkpoints = [Path(p) for p in args.checkpoints] if args.checkpoints else None
        if checkpoints is None:
            # Env-given checkpoints stay; otherwise follow a flag-moved assets folder.
            env_given = _paths((os.environ if environ is None else environ).get("VQA_CHECKPOINTS"))
            checkpoints = env_given
        return cls(
            assets=assets,
            checkpoints=checkpoints,
            base=args.base,
            compare_runs=[Path(p) for p in args.compare_runs] if args.compare_runs else defaults.compare_runs,
            device=args.device,
            max_file_size=args.max_file_size,
            queue_size=args.queue_size,
            threads=args.threads,
            precision=args.precision,
            upload_ttl=args.upload_ttl,
            session_ttl=args.session_ttl,
            session_memory=args.session_memory,
            max_sessions=args.max_sessions,
        )

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
        """Arguments for ``demo.launch``: served folders, size limits (with the body-limit middleware), theme, CSS, JS."""
        from starlette.middleware import Middleware

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
            "app_kwargs": {"middleware": [limits]},
            "state_session_capacity": self.max_sessions,
            "theme": theme(),
            "css": CSS,
            "js": JS,
        }
