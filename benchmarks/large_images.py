"""Large-image mode of the load test: does the server give memory back after answering on huge images?

    python -m benchmarks.load_test --large-images                     # 8 clients x 2 requests, 31.5 MP PNGs
    python -m benchmarks.load_test --large-images --clients 2 --requests 1 --session-ttl 5   # a short run

``python app.py`` runs in a subprocess (as in the mixed load test) with a short session time to live
(``--session-ttl``, default 20 s). Two 31.5-megapixel PNGs are drawn in-process (flat colour fields
and gradients, a few hundred KB on disk, ~95 MB each once decoded). After a warm-up answer on a
small image (which loads the model; its resident memory is the baseline), ``--clients`` clients
ask at once, every request under a new session (``Client.reset_session``: nothing of an earlier
request's session is reused), alternating the two images. The server then sits idle past the time to
live and Gradio's one-second state sweep.

Resident memory (RSS of the server process) is reported after start, after the warm-up, at its
peak during the run, after the run and after idle. Targets (a miss prints TARGET MISSED, exit 1):
every request answered, no HTTP 5xx, no server tracebacks, growth after idle (after idle minus
after warm-up) under 300 MB.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.common import Targets, finish, machine_info, table
from benchmarks.load_test import (
    MemorySampler,
    Server,
    counting_http_statuses,
    load_examples,
    resolve_assets,
)
from vqa_demo.ui.answer_api import answer_arguments

IDLE_GROWTH_LIMIT_MB = 300.0
IMAGE_SIZE = (7000, 4500)  # 31.5 MP


def large_png(path: Path, size: tuple[int, int] = IMAGE_SIZE, seed: int = 0) -> Path:
    """A synthetic document page of ``size`` pixels: gradients, bands and filled boxes (compresses well)."""
    width, height = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 250, width, dtype=np.float32)
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    for channel in range(3):
        pixels[..., channel] = np.roll(ramp, channel * width // 3).astype(np.uint8)[None, :]
    band = height // 12
    for row in range(0, height, 2 * band):
        pixels[row : row + band // 4] = rng.integers(0, 256, 3, dtype=np.uint8)
    for _ in range(12):
        x, y = int(rng.integers(0, width - 600)), int(rng.integers(0, height - 400))
        pixels[y : y + 400, x : x + 600] = rng.integers(0, 256, 3, dtype=np.uint8)
    Image.fromarray(pixels).save(path, compress_level=6)
    return path


def connect(url: str, timeout: float):
    """A ``gradio_client.Client`` whose HTTP calls wait up to ``timeout`` s (a busy server answers late)."""
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": timeout})


def ask_in_fresh_session(client, image: Path, example, timeout: float) -> tuple[str, float]:
    """One ``/answer`` under a new session of ``client``; returns (outcome, seconds)."""
    from gradio_client import handle_file
    from gradio_client.utils import QueueError

    started = time.perf_counter()
    try:
        client.reset_session()
        arguments = answer_arguments(handle_file(str(image)), example.question, example.options[:4])
        job = client.submit(**arguments, api_name="/answer")
        status = job.result(timeout=timeout)[0]
        outcome = "answered" if isinstance(status, str) and status.startswith("✓") else f"refused:{status}"
    except QueueError:
        outcome = "queue_full"
    except Exception as error:  # reported as an error, never a crash of the benchmark
        outcome = f"exception:{type(error).__name__}:{str(error)[:80]}"
    return outcome, time.perf_counter() - started


def run_clients(clients: list, images: list[Path], example, args) -> list[dict[str, Any]]:
    """One thread per client, each sending ``args.requests`` requests one after another."""
    records: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client_loop(index: int) -> None:
        for request in range(args.requests):
            image = images[(index + request) % len(images)]
            outcome, seconds = ask_in_fresh_session(clients[index], image, example, args.request_timeout)
            with lock:
                records.append({"client": index, "outcome": outcome, "seconds": seconds})

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.deadline)
    return records


def wait_idle(server: Server, seconds: float) -> list[float]:
    """Sleep ``seconds`` with the server idle; returns the RSS sampled every second (MB)."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(server.rss_mb())
        time.sleep(1.0)
    return samples


def main(args: argparse.Namespace) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="vqa-large-"))
    targets = Targets(enforce=True)
    result: dict[str, Any] = {"mode": "large_images", "machine": machine_info("cpu")}
    server = None
    try:
        assets, description = resolve_assets(args, scratch)
        example = load_examples(assets)[0]
        images = [large_png(scratch / f"large_{seed}.png", seed=seed) for seed in range(2)]
        megapixels = IMAGE_SIZE[0] * IMAGE_SIZE[1] / 1e6
        print(
            f"{description}; {args.clients} clients x {args.requests} requests, a fresh session each, "
            f"on {megapixels:.1f} MP PNGs ({', '.join(f'{p.stat().st_size // 1024} KB' for p in images)}); "
            f"session TTL {args.session_ttl} s"
        )
        extra = ["--session-ttl", str(args.session_ttl)]
        server = Server(assets, args.queue_size, scratch / "server.log", args.threads or 1, extra)
        server.wait_ready(args.start_timeout)
        rss: dict[str, float] = {"after_start": server.rss_mb()}
        with counting_http_statuses() as http:
            # Connected one after another: a Client's start-up requests time out under 8 at once.
            clients = [connect(server.url, args.request_timeout) for _ in range(args.clients)]
            warm_outcome, _ = ask_in_fresh_session(clients[0], example.image, example, args.request_timeout)
            rss["after_warmup"] = server.rss_mb()
            with MemorySampler(server) as sampler:
                started = time.monotonic()
                records = run_clients(clients, images, example, args)
                run_s = time.monotonic() - started
            for client in clients:
                client.close()
            rss["peak_during_run"] = sampler.peak
            rss["after_run"] = server.rss_mb()
            idle_s = args.session_ttl + args.idle_margin
            idle_samples = wait_idle(server, idle_s)
            rss["after_idle"] = server.rss_mb()
        log = server.log_text()
    finally:
        if server is not None:
            server.stop()
    rss["growth_after_run"] = rss["after_run"] - rss["after_warmup"]
    rss["growth_after_idle"] = rss["after_idle"] - rss["after_warmup"]
    statuses = {f"{route} {status}": n for (route, status), n in sorted(http.items())}
    server_5xx = sum(n for (route, status), n in http.items() if status >= 500)
    answered = sum(r["outcome"] == "answered" for r in records)
    result.update(
        {
            "assets": str(assets),
            "clients": args.clients,
            "requests_per_client": args.requests,
            "image_megapixels": megapixels,
            "image_kb_on_disk": [p.stat().st_size // 1024 for p in images],
            "session_ttl_s": args.session_ttl,
            "idle_s": idle_s,
            "warmup": warm_outcome,
            "run_s": run_s,
            "answered": answered,
            "outcomes": sorted({r["outcome"] for r in records}),
            "latency_median_s": float(np.median([r["seconds"] for r in records])) if records else None,
            "http_statuses": statuses,
            "http_5xx": server_5xx,
            "server_tracebacks": log.count("Traceback (most recent call last)"),
            "rss_mb": rss,
            "rss_idle_samples_mb": [round(s, 1) for s in idle_samples],
        }
    )
    print_report(result)
    targets.check("requests answered", answered, ">=", args.clients * args.requests)
    targets.check("HTTP 5xx", server_5xx, "<", 1)
    targets.check("server tracebacks", result["server_tracebacks"], "<", 1)
    targets.check("RSS growth after idle", rss["growth_after_idle"], "<", IDLE_GROWTH_LIMIT_MB, " MB")
    shutil.rmtree(scratch, ignore_errors=True)
    return finish("load_test_large_images", result, targets, args)


def print_report(result: dict[str, Any]) -> None:
    rss = result["rss_mb"]
    rows = [
        ["requests answered", f"{result['answered']} of {result['clients'] * result['requests_per_client']}"],
        ["outcomes", ", ".join(result["outcomes"])],
        [
            "median request time (s)",
            f"{result['latency_median_s']:.2f}" if result["latency_median_s"] else "-",
        ],
        ["HTTP 5xx / server tracebacks", f"{result['http_5xx']} / {result['server_tracebacks']}"],
        ["server RSS after start / warm-up (MB)", f"{rss['after_start']:.0f} / {rss['after_warmup']:.0f}"],
        ["server RSS peak during run (MB)", f"{rss['peak_during_run']:.0f}"],
        ["server RSS after run (MB)", f"{rss['after_run']:.0f} ({rss['growth_after_run']:+.0f})"],
        [
            f"server RSS after {result['idle_s']:.0f} s idle (MB)",
            f"{rss['after_idle']:.0f} ({rss['growth_after_idle']:+.0f})",
        ],
    ]
    print(table(["figure", "value"], rows))


def add_args(parser: argparse.ArgumentParser) -> None:
    """The large-image mode's own options (``--clients``, ``--requests`` etc. are shared)."""
    parser.add_argument(
        "--large-images",
        action="store_true",
        help="fresh sessions answering on 31.5 MP PNGs; reports RSS before, after and after idle",
    )
    parser.add_argument(
        "--session-ttl", type=int, default=20, help="--large-images: the server's session time to live (s)"
    )
    parser.add_argument(
        "--idle-margin", type=float, default=10.0, help="--large-images: seconds idle beyond the TTL"
    )
