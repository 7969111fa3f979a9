"""Hostile mode of the load test (issue 21's acceptance): page loads, oversized inputs, a scan bomb, big images.

    python -m benchmarks.load_test --hostile              # the four checks below on the tiny assets
    python -m benchmarks.load_test --hostile --sessions 50 --session-ttl 10    # a shorter run
    python -m benchmarks.load_test --hostile --page-loads-only                 # check 1 alone

``python app.py`` runs in a subprocess on loopback (as in the other modes); resident memory is that
process's plus its children's (the image decode worker). After one warm answer:

1. ``--page-loads`` (20) parallel ``GET /config`` and ``GET /``: RSS growth under 100 MB, ``/config``
   p95 under 0.5 s;
2. ``--sessions`` (200) fresh sessions each sending a 12 MB input (refused, 413), then as many sending
   the most each event may carry (three text inputs just under the per-value limit, refused for a bad
   ``k``): RSS growth under the stated bound (``MAX_EVENT_BYTES`` + ``GRADIO_SESSION_BYTES`` per
   accepted session);
3. a 6000 x 6000 progressive JPEG with one scan repeated 20 000 times (1.3 MB): refused within 2 s
   while a normal request sent 0.2 s after it is answered within 3 s (the same request alone first
   gives the machine's own latency);
4. 8 fresh ``gradio_client`` sessions answering on 36 MP PNGs: RSS growth after idle past the session
   time to live under 100 MB.

Every figure and the machine load (``uptime``) at each step go to the JSON and the printed report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.common import Targets, finish, machine_info, table
from benchmarks.hostile_files import scan_bomb_jpeg
from benchmarks.large_images import ask_in_fresh_session, connect, large_png, wait_idle
from benchmarks.load_test import MemorySampler, Server, load_examples, resolve_assets
from vqa_demo.ui.answer_api import answer_inputs
from vqa_demo.ui.server_settings import GRADIO_SESSION_BYTES, MAX_EVENT_BYTES, MAX_INPUT_BYTES

PAGE_LOAD_GROWTH_MB, CONFIG_P95_S = 100.0, 0.5
BOMB_REFUSED_S, NORMAL_ANSWERED_S = 2.0, 3.0
BIG_IMAGE_IDLE_GROWTH_MB = 100.0
REFUSED_INPUT_BYTES = 12 * 1024 * 1024
# The stated bound of one session: raw input values (one event body at most) plus Gradio's own
# state of a session (see README "Limits and safety").
SESSION_BOUND_BYTES = MAX_EVENT_BYTES + GRADIO_SESSION_BYTES
BIG_IMAGE = (6000, 6000)  # 36 MP


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def page_loads(server: Server, count: int) -> dict[str, Any]:
    """``count`` parallel loads of ``/config`` then ``/``: latencies and RSS."""

    # One client for all: making an httpx client costs about 70 ms of CPU (its SSL context), which
    # twenty threads made at once would add to every timing, as no browser does.
    client = httpx.Client(
        timeout=120, limits=httpx.Limits(max_connections=count, max_keepalive_connections=0)
    )

    def load(path: str) -> tuple[str, float, int]:
        started = time.perf_counter()
        status = client.get(server.url + path).status_code
        return path, time.perf_counter() - started, status

    alone = sorted(load("/config")[1] for _ in range(5))
    before = server.rss_mb()
    with MemorySampler(server) as sampler, ThreadPoolExecutor(count) as pool:
        results = list(pool.map(load, ["/config"] * count)) + list(pool.map(load, ["/"] * count))
    client.close()
    config_s = sorted(s for path, s, _ in results if path == "/config")
    return {
        "config_alone_median_s": alone[2],
        "config_bytes": len(httpx.get(server.url + "/config", timeout=120).content),
        "loads": len(results),
        "non_200": sum(status != 200 for *_, status in results),
        "config_p50_s": float(np.percentile(config_s, 50)),
        "config_p95_s": float(np.percentile(config_s, 95)),
        "config_max_s": config_s[-1],
        "rss_before_mb": before,
        "rss_peak_mb": sampler.peak,
        "rss_after_mb": server.rss_mb(),
        "growth_mb": server.rss_mb() - before,
        "uptime": uptime(),
    }


def join(server: Server, fn: int, data: list | None = None, body: bytes | None = None) -> int:
    """POST one event to the queue under a fresh session; the HTTP status (413 when refused)."""
    session = uuid.uuid4().hex[:12]
    content = (
        body if body is not None else json.dumps({"data": data, "fn_index": fn, "session_hash": session})
    )
    try:
        response = httpx.post(
            f"{server.url}/gradio_api/queue/join",
            content=content,
            headers={"content-type": "application/json"},
            timeout=60,
        )
    except httpx.HTTPError:  # the server may close a refused upload early
        return 413
    return response.status_code


def session_inputs(server: Server, fn: int, sessions: int) -> dict[str, Any]:
    """``sessions`` x a 12 MB input (refused), then ``sessions`` x the most an event may carry."""
    huge = json.dumps(
        {"data": [None, "q" * REFUSED_INPUT_BYTES], "fn_index": fn, "session_hash": "x"}
    ).encode()
    near = "q" * (MAX_INPUT_BYTES - 64)
    full = answer_inputs({"path": "x"}, near, [near, near, "c", "d"], [True] * 5, k="x")
    out: dict[str, Any] = {"rss_before_mb": server.rss_mb()}
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: join(server, fn, body=huge), range(sessions)))
    out["huge_statuses"] = {str(s): statuses.count(s) for s in set(statuses)}
    out["rss_after_huge_mb"] = server.rss_mb()
    # Two at a time: the refused events still pass the queue (16 places), which 8 at once overfilled.
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda _: join(server, fn, data=full), range(sessions)))
    out["full_statuses"] = {str(s): statuses.count(s) for s in set(statuses)}
    out["rss_after_full_mb"] = server.rss_mb()
    out["growth_huge_mb"] = out["rss_after_huge_mb"] - out["rss_before_mb"]
    out["growth_total_mb"] = out["rss_after_full_mb"] - out["rss_before_mb"]
    out["bound_mb"] = statuses.count(200) * SESSION_BOUND_BYTES / 2**20
    out["uptime"] = uptime()
    return out


def scan_bomb(server: Server, scratch: Path, example, timeout: float) -> dict[str, Any]:
    """The bomb answered in one session while a normal request follows 0.2 s later in another."""
    bomb = scratch / "scans.jpg"
    bomb.write_bytes(scan_bomb_jpeg(20_000, side=6000))
    clients = [connect(server.url, timeout) for _ in range(2)]
    results: dict[str, tuple[str, float]] = {}
    results["alone"] = ask_in_fresh_session(clients[1], example.image, example, timeout)

    def run(name: str, image: Path, delay: float, client) -> None:
        time.sleep(delay)
        results[name] = ask_in_fresh_session(client, image, example, timeout)

    threads = [
        threading.Thread(target=run, args=("bomb", bomb, 0.0, clients[0])),
        threading.Thread(target=run, args=("normal", example.image, 0.2, clients[1])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    return {
        "bomb_kb": bomb.stat().st_size // 1024,
        "bomb_outcome": results["bomb"][0][:160],
        "bomb_s": results["bomb"][1],
        "normal_outcome": results["normal"][0][:80],
        "normal_s": results["normal"][1],
        "normal_alone_s": results["alone"][1],
        "uptime": uptime(),
    }


def big_images(server: Server, scratch: Path, example, args) -> dict[str, Any]:
    """8 fresh sessions (one client each, at once) answering on 36 MP PNGs; RSS after idle."""
    images = [large_png(scratch / f"big_{seed}.png", BIG_IMAGE, seed=seed) for seed in range(2)]
    clients = [connect(server.url, args.request_timeout) for _ in range(8)]
    before = server.rss_mb()
    with MemorySampler(server) as sampler, ThreadPoolExecutor(8) as pool:
        outcomes = list(
            pool.map(
                lambda i: ask_in_fresh_session(clients[i], images[i % 2], example, args.request_timeout),
                range(8),
            )
        )
    for client in clients:
        client.close()
    after_run = server.rss_mb()
    wait_idle(server, args.session_ttl + args.idle_margin)
    after_idle = server.rss_mb()
    return {
        "answered": sum(o == "answered" for o, _ in outcomes),
        "outcomes": sorted({o[:80] for o, _ in outcomes}),
        "latency_max_s": max(s for _, s in outcomes),
        "rss_before_mb": before,
        "rss_peak_mb": sampler.peak,
        "rss_after_run_mb": after_run,
        "rss_after_idle_mb": after_idle,
        "idle_growth_mb": after_idle - before,
        "uptime": uptime(),
    }


def main(args: argparse.Namespace) -> int:
    scratch = Path(tempfile.mkdtemp(prefix="vqa-hostile-"))
    targets = Targets(enforce=True)
    result: dict[str, Any] = {"mode": "hostile", "machine": machine_info("cpu"), "uptime_start": uptime()}
    server = None
    try:
        assets, description = resolve_assets(args, scratch)
        example = load_examples(assets)[0]
        print(f"{description}; {uptime()}")
        extra = ["--session-ttl", str(args.session_ttl)]
        server = Server(assets, args.queue_size, scratch / "server.log", args.threads or 1, extra)
        server.wait_ready(args.start_timeout)
        warm = connect(server.url, args.request_timeout)
        result["warmup"] = ask_in_fresh_session(warm, example.image, example, args.request_timeout)[0]
        warm.close()
        result["rss_after_warmup_mb"] = server.rss_mb()
        fn = answer_fn_index(server)
        result["page_loads"] = page_loads(server, args.page_loads)
        if args.page_loads_only:
            print_page_loads(result)
            return page_load_targets(result, targets, args)
        result["sessions"] = session_inputs(server, fn, args.sessions)
        result["scan_bomb"] = scan_bomb(server, scratch, example, args.request_timeout)
        result["big_images"] = big_images(server, scratch, example, args)
        log = server.log_text()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    result["server_tracebacks"] = log.count("Traceback (most recent call last)")
    print_report(result)
    loads, sessions, bomb, big = (result[k] for k in ("page_loads", "sessions", "scan_bomb", "big_images"))
    page_load_checks(loads, targets)
    targets.check("sessions: RSS growth", sessions["growth_total_mb"], "<", sessions["bound_mb"], " MB")
    targets.check("scan bomb: refused after", bomb["bomb_s"], "<", BOMB_REFUSED_S, " s")
    targets.check(
        "scan bomb: refused",
        float("image_too_slow" in bomb["bomb_outcome"] or "scans" in bomb["bomb_outcome"]),
        ">=",
        1.0,
    )
    targets.check("scan bomb: normal answer after", bomb["normal_s"], "<", NORMAL_ANSWERED_S, " s")
    targets.check("36 MP: answered", big["answered"], ">=", 8)
    targets.check("36 MP: RSS growth after idle", big["idle_growth_mb"], "<", BIG_IMAGE_IDLE_GROWTH_MB, " MB")
    return finish("load_test_hostile", result, targets, args)


def page_load_checks(loads: dict[str, Any], targets: Targets) -> None:
    targets.check("page loads: RSS growth", loads["growth_mb"], "<", PAGE_LOAD_GROWTH_MB, " MB")
    targets.check("page loads: /config p95", loads["config_p95_s"], "<", CONFIG_P95_S, " s")
    targets.check("page loads: non-200", loads["non_200"], "<", 1)


def page_load_targets(result: dict[str, Any], targets: Targets, args: argparse.Namespace) -> int:
    """``--page-loads-only``: the page-load check alone (after the warm answer), with its targets."""
    page_load_checks(result["page_loads"], targets)
    return finish("load_test_page_loads", result, targets, args)


def print_page_loads(result: dict[str, Any]) -> None:
    loads = result["page_loads"]
    print(
        f"{loads['loads']} page loads: /config {loads['config_bytes'] // 1024} KB, "
        f"p50 {loads['config_p50_s']:.3f} s, p95 {loads['config_p95_s']:.3f} s, max {loads['config_max_s']:.3f} s "
        f"(one alone {loads['config_alone_median_s']:.3f} s); RSS +{loads['growth_mb']:.1f} MB; {loads['uptime']}"
    )


def answer_fn_index(server: Server) -> int:
    """The ``fn_index`` of ``/answer`` from the server's config."""
    config = httpx.get(f"{server.url}/config", timeout=60).json()
    (index,) = [d["id"] for d in config["dependencies"] if d.get("api_name") == "answer"]
    return index


def print_report(result: dict[str, Any]) -> None:
    loads, sessions, bomb, big = (result[k] for k in ("page_loads", "sessions", "scan_bomb", "big_images"))
    rows = [
        ["RSS after warm answer", f"{result['rss_after_warmup_mb']:.0f} MB"],
        [
            "page loads",
            f"{loads['loads']}, /config p50 {loads['config_p50_s']:.3f} s, p95 {loads['config_p95_s']:.3f} s, max {loads['config_max_s']:.3f} s "
            f"(one alone {loads['config_alone_median_s']:.3f} s, {loads['config_bytes'] // 1024} KB)",
        ],
        ["page loads RSS", f"+{loads['growth_mb']:.1f} MB (peak {loads['rss_peak_mb']:.0f} MB)"],
        ["12 MB inputs", f"{sessions['huge_statuses']}, +{sessions['growth_huge_mb']:.1f} MB"],
        [
            "inputs at the limits",
            f"{sessions['full_statuses']}, +{sessions['growth_total_mb']:.1f} MB in all (bound {sessions['bound_mb']:.1f} MB)",
        ],
        ["scan bomb", f"{bomb['bomb_kb']} KB, {bomb['bomb_s']:.2f} s: {bomb['bomb_outcome'][:60]}"],
        [
            "normal request beside it",
            f"{bomb['normal_s']:.2f} s: {bomb['normal_outcome']} (alone before: {bomb['normal_alone_s']:.2f} s)",
        ],
        ["36 MP answers", f"{big['answered']} of 8, max {big['latency_max_s']:.1f} s"],
        [
            "36 MP RSS",
            f"peak {big['rss_peak_mb']:.0f}, after run {big['rss_after_run_mb']:.0f}, after idle {big['rss_after_idle_mb']:.0f} MB (+{big['idle_growth_mb']:.1f})",
        ],
        ["server tracebacks", result["server_tracebacks"]],
    ]
    print(table(["check", "result"], rows))
    for name in ("page_loads", "sessions", "scan_bomb", "big_images"):
        print(f"uptime after {name}: {result[name]['uptime']}")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hostile", action="store_true", help="issue 21's acceptance checks (benchmarks/load_hostile.py)"
    )
    parser.add_argument("--page-loads", type=int, default=20, help="--hostile: parallel page loads")
    parser.add_argument(
        "--page-loads-only", action="store_true", help="--hostile: stop after the page-load check"
    )
    parser.add_argument(
        "--sessions", type=int, default=200, help="--hostile: sessions sending oversized inputs"
    )
