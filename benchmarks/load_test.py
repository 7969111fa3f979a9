"""Load test: concurrent ``gradio_client`` clients against the running app, over loopback only.

    python -m benchmarks.load_test                    # 8 clients x 25 requests; assets/ if it holds a model,
                                                      # else a freshly built tiny assets folder
    python -m benchmarks.load_test --assets assets    # a given assets folder (its base/ is used when present)
    python -m benchmarks.load_test --quick            # 3 clients x 4 requests on the tiny assets (CI)
    python -m benchmarks.load_test --queue-size 2     # a small queue: shows clean queue-full rejections
    python -m benchmarks.load_test --large-images     # fresh sessions on 31.5 MP PNGs: RSS before/after/idle
                                                      # (benchmarks/large_images.py)
    python -m benchmarks.load_test --hostile          # issue 21: page loads, oversized inputs, scan bomb,
                                                      # 36 MP answers (benchmarks/load_hostile.py)

The server is ``python app.py`` in a subprocess (the Space's entry point, unchanged) on 127.0.0.1 at a
free port. After a warm-up (one request of each valid kind, which loads the model; ``--quick``: one
request), every client sends its requests one after another, all clients at once, cycling through a
fixed mix of valid questions and invalid ones (empty question, duplicate options, HTML named .png, a truncated PNG, a
decompression-bomb header, k=9, no image); client ``c`` starts the cycle at ``3 c``, so the mix is the
same on every run. Every request is bounded (``--request-timeout``) and so is the run (``--deadline``);
the server is stopped at the end.

Outcomes: *answered* (status starts with ✓), *rejected* with the expected validation category (the
tag at the end of the status), *queue full* (Gradio refuses to enqueue: HTTP 503 on ``/queue/join``,
``QueueError`` in the client) and *other errors* (anything else, including a valid request refused or
an invalid one refused for the wrong reason). Every HTTP response the clients receive is counted by
status; a 5xx other than the queue-full 503 counts as a server error. Resident memory is the RSS of
the server process (and any children) after start, after the warm-up, sampled during the run, and at
the end; growth is end minus after-warm-up.

Targets (all modes; a miss prints TARGET MISSED and exits 1): no server 5xx, no other errors, no
tracebacks in the server log, every valid request answered or queue-full, every invalid request
rejected with its category, RSS growth under 200 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from benchmarks.common import Targets, finish, table
from vqa_demo.ui.loopback import free_port

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ASSETS = REPO / "assets"
RSS_GROWTH_LIMIT_MB = 200.0
QUEUE_FULL = "queue_full"


# -- the request mix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of request: how to fill the form, and the category it must be refused with (None: valid)."""

    name: str
    expected: str | None
    k: int = 4
    image: str = "example"  # a key of the image files prepared by :func:`prepare_files`, or "none"
    question: str | None = None  # None: the example's own question
    options: tuple[str, ...] | None = None  # None: the example's own options
    only: str | None = None  # tick only the variants whose name starts with this


LONG_QUESTION = ("Which of the marked shapes lies closest to the top left corner of the figure " * 140)[
    :10_000
]
MIX = [
    Kind("valid_k4", None),
    Kind("empty_question", "question_empty", question="   "),
    Kind("valid_k3", None, k=3),
    Kind("html_as_png", "image_not_raster", image="html"),
    Kind("valid_k2_swag", None, k=2, only="swag"),
    Kind("duplicate_options", "option_duplicate", options=("red", "blue", " RED ", "green")),
    Kind("valid_long_question", None, question=LONG_QUESTION),
    Kind("truncated_png", "image_truncated", image="truncated"),
    Kind(
        "valid_rtl_emoji_tokens",
        None,
        question="ما لون 🟥 <image><eos>?",
        options=("أحمر 🔴", "כחול", "<bos>", "🏳️‍🌈"),
    ),
    Kind("bomb_header", "image_too_large", image="bomb"),
    Kind("valid_k4_other_example", None, image="example2"),
    Kind("nine_options", "too_many_options", k=9),
    Kind("no_image", "image_missing", image="none"),
]


def prepare_files(folder: Path, examples: list) -> dict[str, Any]:
    """Image files for the mix: two real examples and three hostile files."""
    import io
    import struct
    import zlib

    from PIL import Image

    files: dict[str, Any] = {"example": examples[0], "example2": examples[min(1, len(examples) - 1)]}
    (folder / "page.png").write_bytes(b"<!DOCTYPE html><html><body>not a picture</body></html>")
    files["html"] = folder / "page.png"
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    data = buffer.getvalue()
    (folder / "cut.png").write_bytes(data[: len(data) // 2])
    files["truncated"] = folder / "cut.png"
    bomb = bytearray(data)
    struct.pack_into(">II", bomb, 16, 100_000, 100_000)  # IHDR width, height
    struct.pack_into(">I", bomb, 29, zlib.crc32(bytes(bomb[12:29])))
    (folder / "bomb.png").write_bytes(bytes(bomb))
    files["bomb"] = folder / "bomb.png"
    return files


@dataclass
class Example:
    image: Path
    question: str
    options: list[str]


def load_examples(assets: Path) -> list[Example]:
    """Questions with 4 distinct options from the validation split (or plain images if it has none)."""
    from vqa_demo.data.splits import load_split

    examples: list[Example] = []
    try:
        split = load_split(assets / "validation")
        for ex in split.examples:
            if len(ex.options) >= 4 and len({o.casefold() for o in ex.options[:4]}) == 4:
                examples.append(Example(Path(ex.image_path), ex.question, list(ex.options[:4])))
    except Exception:  # no usable split: fall back to any example image with a generic question
        for path in sorted((assets / "examples").glob("*.png"))[:2]:
            examples.append(Example(path, "What is shown?", ["a chart", "a clock", "a table", "a map"]))
    if not examples:
        raise SystemExit(f"no validation examples or example images under {assets}")
    return examples[:2]


def form_kwargs(kind: Kind, files: dict[str, Any], variants: list[str]) -> dict[str, Any]:
    """Keyword arguments for ``/answer`` (image, question, k, option_a..option_h, use_<variant>)."""
    from gradio_client import handle_file

    from vqa_demo.config import MAX_OPTIONS
    from vqa_demo.ui.answer_api import answer_arguments

    example = files["example2"] if kind.image == "example2" else files["example"]
    options = list(kind.options or example.options)
    if kind.k == 9:
        options = [f"option number {i}" for i in range(MAX_OPTIONS)]
    options = options[: min(kind.k, MAX_OPTIONS)] if kind.k <= MAX_OPTIONS else options
    if kind.image in ("example", "example2"):
        image = handle_file(str(example.image))
    else:
        image = None if kind.image == "none" else handle_file(str(files[kind.image]))
    question = kind.question if kind.question is not None else example.question
    ticks = {name: kind.only is None or name.startswith(kind.only) for name in variants}
    return answer_arguments(image, question, options, k=kind.k, ticks=ticks)


def schedule(client: int, requests: int) -> list[Kind]:
    return [MIX[(i + 3 * client) % len(MIX)] for i in range(requests)]


# -- the server -----------------------------------------------------------------------------------


class Server:
    """``python app.py`` on 127.0.0.1:<free port>, its log in a file; stopped by :meth:`stop`."""

    def __init__(
        self,
        assets: Path,
        queue_size: int,
        log_path: Path,
        threads: int,
        extra_args: Sequence[str] = (),
        repo: Path = REPO,
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            sys.executable,
            str(repo / "app.py"),
            "--assets",
            str(assets),
            "--queue-size",
            str(queue_size),
        ]
        if (assets / "base" / "config.json").is_file():
            command += ["--base", str(assets / "base")]
        command += list(extra_args)
        env = {
            **os.environ,
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "GRADIO_SSR_MODE": "False",
            "PYTHONUNBUFFERED": "1",
        }
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        for name in ("VQA_CHECKPOINTS", "VQA_BASE", "VQA_ASSETS"):
            env.pop(name, None)
        self._log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command, cwd=repo, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float, poll: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/gradio_api/info", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(poll)
        raise RuntimeError(f"the app did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def rss_mb(self) -> float:
        """Resident memory of the server process and its children, MB."""
        try:
            process = psutil.Process(self.process.pid)
            processes = [process, *process.children(recursive=True)]
            return sum(p.memory_info().rss for p in processes) / 2**20
        except psutil.Error:
            return float("nan")

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()


class MemorySampler:
    """Samples the server's RSS every ``interval`` seconds in a background thread; keeps the peak."""

    def __init__(self, server: Server, interval: float = 0.25):
        self.server, self.interval = server, interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.server.rss_mb()
            if rss == rss:  # not NaN
                self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- HTTP status accounting (every response any client in this process receives) ------------------


@contextmanager
def counting_http_statuses():
    """Count ``(path kind, status)`` of every httpx response; gradio_client uses httpx throughout."""
    counts: Counter = Counter()
    lock = threading.Lock()
    original = httpx.Client.send

    def send(self, request, *args, **kwargs):
        response = original(self, request, *args, **kwargs)
        path = request.url.path
        route = (
            "queue/join" if path.endswith("/queue/join") else path.rsplit("/gradio_api/", 1)[-1].split("/")[0]
        )
        with lock:
            counts[(route, response.status_code)] += 1
        return response

    httpx.Client.send = send  # gradio_client offers no hook that sees every response
    try:
        yield counts
    finally:
        httpx.Client.send = original


# -- the run ---------------------------------------------------------------------------------------


def outcome_of(kind: Kind, result: Any) -> str:
    """answered | rejected | wrong_category:<tag> | refused_valid:<tag> | bad_output.

    ``result`` is /answer's output tuple: the status text first, the raw-scores JSON fifth (where a
    refusal's category is).
    """
    from vqa_demo.ui.status import failure_category

    status = result[0] if isinstance(result, list | tuple) and result else None
    if not isinstance(status, str):
        return "bad_output"
    if status.startswith("✓"):
        return "answered" if kind.expected is None else "answered_invalid"
    category = failure_category(result[4] if len(result) > 4 else None)
    if kind.expected is None:
        return f"refused_valid:{category}"
    return "rejected" if category == kind.expected else f"wrong_category:{category}"


def run_client(client, kinds: list[Kind], files, variants, request_timeout, deadline, records, lock) -> None:
    from gradio_client.exceptions import AppError
    from gradio_client.utils import QueueError

    for kind in kinds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome, seconds = "not_sent:deadline", 0.0
        else:
            started = time.perf_counter()
            try:
                job = client.submit(**form_kwargs(kind, files, variants), api_name="/answer")
                result = job.result(timeout=min(request_timeout, remaining))
                outcome = outcome_of(kind, result)
            except QueueError:
                outcome = QUEUE_FULL
            except TimeoutError:
                outcome = "timeout"
            except AppError as error:
                outcome = f"app_error:{str(error)[:80]}"
            except Exception as error:  # anything else is an error to report, not to crash on
                outcome = f"exception:{type(error).__name__}:{str(error)[:80]}"
            seconds = time.perf_counter() - started
        with lock:
            records.append(
                {"kind": kind.name, "valid": kind.expected is None, "outcome": outcome, "seconds": seconds}
            )


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q)) if samples else float("nan")


def summarise(records: list[dict]) -> dict[str, Any]:
    counts = Counter()
    for r in records:
        outcome = r["outcome"]
        if outcome == "answered":
            counts["answered"] += 1
        elif outcome == "rejected":
            counts["rejected"] += 1
        elif outcome == QUEUE_FULL:
            counts["queue_full"] += 1
        else:
            counts["other_errors"] += 1
    answered = [r["seconds"] for r in records if r["outcome"] == "answered"]
    rejected = [r["seconds"] for r in records if r["outcome"] == "rejected"]
    return {
        "requests": len(records),
        "valid": sum(r["valid"] for r in records),
        "invalid": sum(not r["valid"] for r in records),
        "answered": counts["answered"],
        "rejected": counts["rejected"],
        "queue_full": counts["queue_full"],
        "other_errors": counts["other_errors"],
        "valid_not_answered": sum(
            r["valid"] and r["outcome"] not in ("answered", QUEUE_FULL) for r in records
        ),
        "invalid_not_rejected": sum(
            (not r["valid"]) and r["outcome"] not in ("rejected", QUEUE_FULL) for r in records
        ),
        "latency_answered_s": {
            "median": float(statistics.median(answered)) if answered else float("nan"),
            "p90": percentile(answered, 90),
            "n": len(answered),
        },
        "latency_rejected_s": {
            "median": float(statistics.median(rejected)) if rejected else float("nan"),
            "p90": percentile(rejected, 90),
            "n": len(rejected),
        },
        "errors": sorted({r["outcome"] for r in records} - {"answered", "rejected", QUEUE_FULL}),
    }


def build_tiny_assets(folder: Path) -> Path:
    """The tests' tiny assets folder (base, five checkpoints, validation split), built in seconds."""
    from vqa_demo.testing import build_app_assets

    return build_app_assets(folder).root


def resolve_assets(args: argparse.Namespace, scratch: Path) -> tuple[Path, str]:
    from benchmarks.models import assets_exist

    if args.assets is not None:
        return Path(args.assets).resolve(), f"assets: {args.assets}"
    if not args.quick and assets_exist(DEFAULT_ASSETS / "checkpoints", None):
        return DEFAULT_ASSETS, "assets: assets/ (the offline default)"
    if not args.quick:
        print("no model in assets/ yet: using a freshly built tiny assets folder")
    return build_tiny_assets(scratch / "tiny-assets"), "tiny assets (built for this run)"


def main(args: argparse.Namespace) -> int:
    from gradio_client import Client

    from benchmarks.common import machine_info

    if args.large_images:
        from benchmarks import large_images

        return large_images.main(args)
    if args.hostile:
        from benchmarks import load_hostile

        return load_hostile.main(args)

    clients_n, requests_n = (3, 4) if args.quick else (args.clients, args.requests)
    if args.clients_set:
        clients_n = args.clients
    if args.requests_set:
        requests_n = args.requests
    machine = machine_info("cpu")
    scratch = Path(tempfile.mkdtemp(prefix="vqa-load-"))
    targets = Targets(enforce=True)
    result: dict[str, Any] = {"mode": "quick" if args.quick else "full", "machine": machine}
    server = None
    try:
        assets, description = resolve_assets(args, scratch)
        examples = load_examples(assets)
        files = prepare_files(scratch, examples)
        print(f"{description}; {clients_n} clients x {requests_n} requests; queue size {args.queue_size}")
        started = time.monotonic()
        server_threads = args.threads or (1 if args.quick else 0)
        server = Server(assets, args.queue_size, scratch / "server.log", server_threads)
        server.wait_ready(args.start_timeout)
        startup_s = time.monotonic() - started
        rss_started = server.rss_mb()
        with counting_http_statuses() as http:
            clients = [Client(server.url, verbose=False, download_files=False) for _ in range(clients_n)]
            names = served_variants(clients[0], assets)
            warmup: list[dict] = []
            lock = threading.Lock()
            # Every valid kind once (each option count builds its own encoder); --quick: the first only.
            warm_kinds = [k for k in MIX if k.expected is None][: 1 if args.quick else None]
            warm_started = time.monotonic()
            run_client(
                clients[0],
                warm_kinds,
                files,
                names,
                args.request_timeout,
                time.monotonic() + 600,
                warmup,
                lock,
            )
            warmup_s = time.monotonic() - warm_started
            rss_before = server.rss_mb()
            records: list[dict] = []
            deadline = time.monotonic() + args.deadline
            with MemorySampler(server) as sampler:
                run_started = time.monotonic()
                threads = [
                    threading.Thread(
                        target=run_client,
                        args=(
                            c,
                            schedule(i, requests_n),
                            files,
                            names,
                            args.request_timeout,
                            deadline,
                            records,
                            lock,
                        ),
                        daemon=True,
                    )
                    for i, c in enumerate(clients)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=max(0.0, deadline - time.monotonic()) + args.request_timeout)
                run_s = time.monotonic() - run_started
            rss_after = server.rss_mb()
            for client in clients:
                client.close()
        log = server.log_text()
    finally:
        if server is not None:
            server.stop()
    http_counts = {f"{route} {status}": n for (route, status), n in sorted(http.items())}
    server_5xx = sum(
        n
        for (route, status), n in http.items()
        if status >= 500 and not (route == "queue/join" and status == 503)
    )
    queue_full_503 = sum(n for (route, status), n in http.items() if route == "queue/join" and status == 503)
    summary = summarise(records)
    warm_summary = summarise(warmup)
    growth = rss_after - rss_before
    result.update(
        {
            "assets": str(assets),
            "clients": clients_n,
            "requests_per_client": requests_n,
            "queue_size": args.queue_size,
            "server_omp_threads": server_threads or "default",
            "startup_s": startup_s,
            "warmup_s": warmup_s,
            "run_s": run_s,
            "summary": summary,
            "warmup": warm_summary,
            "per_kind": _per_kind(records),
            "http_statuses": http_counts,
            "http_5xx_server_errors": server_5xx,
            "http_503_queue_full": queue_full_503,
            "server_tracebacks": log.count("Traceback (most recent call last)"),
            "rss_mb": {
                "after_start": rss_started,
                "after_warmup": rss_before,
                "peak_during_run": sampler.peak,
                "after_run": rss_after,
                "growth_during_run": growth,
            },
        }
    )
    if result["server_tracebacks"]:
        result["server_log_tail"] = "\n".join(log.splitlines()[-40:])
    _print_report(result)
    targets.check("HTTP 5xx (besides queue-full 503)", server_5xx, "<", 1)
    targets.check("other errors", summary["other_errors"] + warm_summary["other_errors"], "<", 1)
    targets.check("server tracebacks", result["server_tracebacks"], "<", 1)
    targets.check("valid requests neither answered nor queue-full", summary["valid_not_answered"], "<", 1)
    targets.check(
        "invalid requests not rejected with their category", summary["invalid_not_rejected"], "<", 1
    )
    targets.check("requests completed", len(records), ">=", clients_n * requests_n)
    targets.check("RSS growth during the run", growth, "<", RSS_GROWTH_LIMIT_MB, " MB")
    shutil.rmtree(scratch, ignore_errors=True)
    return finish("load_test", result, targets, args)


def _variant_names(assets: Path) -> list[str]:
    from vqa_demo.ui.holder import canonical_order, read_variant_infos

    return [i.name for i in canonical_order(read_variant_infos([assets / "checkpoints"]))]


def served_variants(client, assets: Path) -> list[str]:
    """The variants of ``assets`` that the running app's ``/answer`` offers a tick for, in order."""
    from vqa_demo.ui.answer_api import api_flag

    api = client.view_api(print_info=False, return_format="dict")
    flags = [p["parameter_name"] for p in api["named_endpoints"]["/answer"]["parameters"]]
    return [n for n in _variant_names(assets) if api_flag(n) in flags]


def _per_kind(records: list[dict]) -> dict[str, dict[str, int]]:
    per: dict[str, Counter] = {}
    for r in records:
        per.setdefault(r["kind"], Counter())[r["outcome"]] += 1
    return {kind: dict(counter) for kind, counter in per.items()}


def _print_report(result: dict[str, Any]) -> None:
    rows = []
    for kind in MIX:
        outcomes = result["per_kind"].get(kind.name, {})
        if not outcomes:
            continue
        other = sum(n for o, n in outcomes.items() if o not in ("answered", "rejected", QUEUE_FULL))
        rows.append(
            [
                kind.name,
                kind.expected or "valid",
                sum(outcomes.values()),
                outcomes.get("answered", 0),
                outcomes.get("rejected", 0),
                outcomes.get(QUEUE_FULL, 0),
                other,
            ]
        )
    print(table(["kind", "expected", "n", "answered", "rejected", "queue full", "other"], rows))
    s, rss = result["summary"], result["rss_mb"]
    lines = [
        ["requests", s["requests"]],
        ["answered", s["answered"]],
        ["cleanly rejected (validation message)", s["rejected"]],
        ["queue-full rejections", s["queue_full"]],
        ["other errors", s["other_errors"]],
        ["HTTP 5xx (besides queue-full 503)", result["http_5xx_server_errors"]],
        ["server tracebacks", result["server_tracebacks"]],
        [
            "latency answered median / p90 (s)",
            f"{s['latency_answered_s']['median']:.3f} / {s['latency_answered_s']['p90']:.3f}",
        ],
        [
            "latency rejected median / p90 (s)",
            f"{s['latency_rejected_s']['median']:.3f} / {s['latency_rejected_s']['p90']:.3f}",
        ],
        ["server RSS after start / warm-up (MB)", f"{rss['after_start']:.0f} / {rss['after_warmup']:.0f}"],
        ["server RSS peak / after run (MB)", f"{rss['peak_during_run']:.0f} / {rss['after_run']:.0f}"],
        ["RSS growth during run (MB)", f"{rss['growth_during_run']:+.1f}"],
        [
            "run time (s)",
            f"{result['run_s']:.1f} (server start {result['startup_s']:.1f}, warm-up {result['warmup_s']:.1f})",
        ],
    ]
    print(table(["figure", "value"], lines))
    if s["errors"]:
        print("errors:", "; ".join(s["errors"]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 clients x 4 requests on the tiny assets (CI)")
    parser.add_argument("--assets", type=Path, default=None, help="assets folder (default: assets/ or tiny)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="requests per client")
    parser.add_argument(
        "--queue-size", type=int, default=16, help="the app's queue max_size (VQA_QUEUE_SIZE)"
    )
    parser.add_argument("--request-timeout", type=float, default=120.0, help="seconds one request may take")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds for the whole run")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds for the app to start")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="OMP_NUM_THREADS for the server (default: torch's choice; 1 in --quick, where tiny ops under "
        "OpenMP contention on a loaded 2-core machine are several times slower with 2 threads)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON results (default: benchmarks/results/)")
    parser.add_argument("--no-fail", action="store_true", help="report missed targets but exit 0")
    from benchmarks import large_images

    large_images.add_args(parser)
    from benchmarks import load_hostile

    load_hostile.add_args(parser)
    args = parser.parse_args(argv)
    given = argv if argv is not None else sys.argv[1:]
    args.clients_set = any(a.startswith("--clients") for a in given)
    args.requests_set = any(a.startswith("--requests") for a in given)
    if args.large_images and not args.requests_set:
        args.requests = 2
    name = (
        "load_test_large_images.json"
        if args.large_images
        else "load_test_hostile.json"
        if args.hostile
        else "load_test.json"
    )
    args.out = args.out or Path(__file__).resolve().parent / "results" / name
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
