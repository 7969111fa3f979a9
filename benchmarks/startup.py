"""Start-up a user pays: ``python app.py`` until the page is served, and until its first answer.

    python -m benchmarks.startup                         # 3 runs of this checkout's app on assets/
    python -m benchmarks.startup --vs /path/to/checkout  # runs interleaved with another checkout's app.py
    python -m benchmarks.startup --quick                 # 1 run (CI)

Each run starts the Space's entry point in a fresh process on 127.0.0.1 (:class:`~benchmarks.load_test.
Server`), polls ``/gradio_api/info`` every 0.1 s (*page*: from the process start until it answers), then
sends one ``/answer`` of a validation example with every variant ticked (*first answer*: from the
process start until the answer comes back; the model loads on this request). Resident memory is
read when the page is served and after the answer. With ``--vs`` the two checkouts alternate run by
run, on the same assets, so the machine's drift affects both alike; each figure is the median.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Targets, finish, machine_info, table
from benchmarks.load_test import (
    DEFAULT_ASSETS,
    MIX,
    REPO,
    Server,
    form_kwargs,
    load_examples,
    outcome_of,
    prepare_files,
    served_variants,
)

POLL_S = 0.1


def one_start(repo: Path, assets: Path, files: dict[str, Any], log: Path, timeout: float) -> dict[str, float]:
    """One cold start of ``repo``'s app: seconds to the page and to the first answer, and RSS (MB)."""
    from gradio_client import Client

    started = time.monotonic()
    server = Server(assets, 4, log, threads=1, repo=repo)
    try:
        server.wait_ready(timeout, poll=POLL_S)
        page_s = time.monotonic() - started
        page_rss = server.rss_mb()
        client = Client(server.url, verbose=False, download_files=False)
        variants = served_variants(client, assets)
        result = client.predict(**form_kwargs(MIX[0], files, variants), api_name="/answer")
        answer_s = time.monotonic() - started
        if outcome_of(MIX[0], result) != "answered":
            raise RuntimeError(f"the first question was not answered: {str(result)[:300]}")
        return {
            "page_s": page_s,
            "first_answer_s": answer_s,
            "page_rss_mb": page_rss,
            "answer_rss_mb": server.rss_mb(),
        }
    finally:
        server.stop()


def commit_of(repo: Path) -> str | None:
    """The checkout's commit, with ``+changes`` when its tracked files differ from it (None: not git)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    return (commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")) or None


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main(args: argparse.Namespace) -> int:
    assets = Path(args.assets)
    scratch = Path(tempfile.mkdtemp(prefix="vqa-startup-"))
    files = prepare_files(scratch, load_examples(assets))
    arms = {"this": REPO} | ({"vs": Path(args.vs).resolve()} if args.vs else {})
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
    for i in range(1 if args.quick else args.runs):
        for name, repo in arms.items():
            run = one_start(repo, assets, files, scratch / f"{name}-{i}.log", args.start_timeout)
            runs[name].append(run)
            print(f"run {i + 1} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in run.items()))
    result: dict[str, Any] = {
        "machine": machine_info("cpu"),
        "assets": str(assets),
        "runs": runs,
        "median": {name: medians(r) for name, r in runs.items()},
        "repos": {name: {"path": str(repo), "commit": commit_of(repo)} for name, repo in arms.items()},
    }
    headers = ["checkout", "page s", "first answer s", "RSS at page MB", "RSS after answer MB"]
    rows = [
        [name, m["page_s"], m["first_answer_s"], m["page_rss_mb"], m["answer_rss_mb"]]
        for name, m in result["median"].items()
    ]
    print(table(headers, rows))
    targets = Targets(enforce=not args.quick)
    if args.vs:
        this, other = result["median"]["this"], result["median"]["vs"]
        result["page_ratio"] = this["page_s"] / other["page_s"]
        result["first_answer_ratio"] = this["first_answer_s"] / other["first_answer_s"]
        targets.check("page served, this / vs", result["page_ratio"], "<", 1.0)
        targets.check("first answer, this / vs", result["first_answer_ratio"], "<", 1.05)
    return finish("startup", result, targets, args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--assets", default=str(DEFAULT_ASSETS), help="the assets folder the app serves")
    parser.add_argument("--vs", help="another checkout whose app.py runs interleaved with this one's")
    parser.add_argument("--runs", type=int, default=3, help="runs of each checkout (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run, targets not enforced")
    parser.add_argument("--start-timeout", type=float, default=180.0, help="seconds to wait for the page")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "startup.json"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
