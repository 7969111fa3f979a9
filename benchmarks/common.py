"""Timing, targets, tables and JSON shared by the benchmark scripts.

These machines are shared and noisy, so a claim is always a ratio of two code paths timed in the same
process, interleaved (A B B A ...) so that a load change hits both alike. Every result file records the
machine and the load average before and after the run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages ([] where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the numbers were measured on."""
    import transformers

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
        "load_average_start": load_average(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import psutil

        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["ram_available_gb"] = round(psutil.virtual_memory().available / 2**30, 1)
    except ImportError:
        pass
    return info


def synchronize(device: str | torch.device = "cpu") -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str | torch.device = "cpu") -> tuple[float, Any]:
    """``(seconds, result)`` of one call."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def stats(samples: list[float]) -> dict[str, float]:
    """Median, p90, min, mean (seconds) and the count of a list of timings."""
    if not samples:
        return {"n": 0}
    return {
        "median": float(statistics.median(samples)),
        "p90": float(np.percentile(samples, 90)),
        "min": float(min(samples)),
        "mean": float(statistics.fmean(samples)),
        "n": len(samples),
    }


def interleaved(
    candidates: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Time every candidate ``repeats`` times, reversing the order each round (A B, B A, A B ...).

    Returns ``({name: [seconds...]}, {name: result of the last call})``. ``warmup`` untimed rounds
    run first (allocator, lazy init).
    """
    names = list(candidates)
    results: dict[str, Any] = {}
    for _ in range(warmup):
        for name in names:
            results[name] = candidates[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            seconds, results[name] = timed(candidates[name], device)
            samples[name].append(seconds)
    return samples, results


def count_flops(fn: Callable[[], Any]) -> int:
    """Matmul/attention/convolution FLOPs of one call (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def flop_ratio(naive: Callable[[], Any], optimised: Callable[[], Any]) -> dict[str, float]:
    """FLOPs of one call of each path and their ratio: how much of a speed-up is work saved."""
    naive_flops, optimised_flops = count_flops(naive), count_flops(optimised)
    return {
        "naive_gflop": naive_flops / 1e9,
        "optimised_gflop": optimised_flops / 1e9,
        "flop_ratio": naive_flops / max(optimised_flops, 1),
    }


def speedup(naive: list[float], optimised: list[float]) -> dict[str, float]:
    """Naive / optimised: the ratio of medians and the median of the per-round ratios."""
    paired = [a / b for a, b in zip(naive, optimised) if b > 0]
    return {
        "ratio": float(statistics.median(naive) / statistics.median(optimised)),
        "paired_median": float(statistics.median(paired)) if paired else float("nan"),
        "naive_s": float(statistics.median(naive)),
        "optimised_s": float(statistics.median(optimised)),
    }


@dataclass
class Targets:
    """Collects target checks; in full mode a miss fails the script (exit code 1)."""

    enforce: bool
    checks: list[dict[str, Any]] = field(default_factory=list)

    def check(self, name: str, value: float, op: str, threshold: float, unit: str = "") -> bool:
        ok = value > threshold if op == ">" else value >= threshold if op == ">=" else value < threshold
        self.checks.append(
            {"name": name, "value": value, "op": op, "threshold": threshold, "unit": unit, "passed": bool(ok)}
        )
        return bool(ok)

    @property
    def misses(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["passed"]]

    def as_json(self) -> dict[str, Any]:
        return {"enforced": self.enforce, "checks": self.checks, "all_passed": not self.misses}


def describe(check: dict[str, Any]) -> str:
    return f"{check['name']}: {check['value']:.3g}{check['unit']} (target {check['op']} {check['threshold']:g}{check['unit']})"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain fixed-width table; floats get 3 significant digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in text)
    return "\n".join(lines)


def add_common_args(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny in-process model, runs in seconds (CI)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR / f"{name}.json", help="where to write the JSON results"
    )
    parser.add_argument("--no-fail", action="store_true", help="report missed targets but exit 0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (default: torch's choice; 1 in --quick, where tiny ops under OpenMP contention "
        "on a loaded 2-core machine are several times slower with 2 threads)",
    )


def setup(args: argparse.Namespace, device: str = "cpu") -> dict[str, Any]:
    """Apply seed and thread settings; returns :func:`machine_info`."""
    threads = args.threads or (1 if getattr(args, "quick", False) else 0)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(args.seed)
    return machine_info(device)


def finish(name: str, result: dict[str, Any], targets: Targets, args: argparse.Namespace) -> int:
    """Print the target lines, write the JSON, and return the exit code."""
    result["benchmark"] = name
    result["targets"] = targets.as_json()
    result.setdefault("machine", {})["load_average_end"] = load_average()
    for check in targets.checks:
        print(("target met: " if check["passed"] else "TARGET MISSED: ") + describe(check))
    if not targets.enforce and targets.checks:
        print("(targets are checked but not enforced in this mode)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=_plain))
    print(f"wrote {out}; load average {result['machine'].get('load_average_start')} -> {load_average()}")
    if targets.enforce and targets.misses and not args.no_fail:
        return 1
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_main(main: Callable[[argparse.Namespace], int], parse: Callable[[], argparse.Namespace]) -> None:
    sys.exit(main(parse()))


def cold(predictor, run: Callable[[], Any]) -> Callable[[], Any]:
    """``run`` with the sentence-embedding cache emptied first, so no call reuses another's embeddings."""

    def wrapped():
        getattr(predictor.matcher, "clear_cache", lambda: None)()
        return run()

    return wrapped
