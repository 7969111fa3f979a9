"""Latency of ``Predictor.predict`` per variant and for all five variants, and through the app's API.

    python -m benchmarks.latency                                  # the default model in assets/
    python -m benchmarks.latency --standin                        # 6 M random stand-in if assets/ is empty
    python -m benchmarks.latency --app-url http://127.0.0.1:7860  # also time the running app's /answer
    python -m benchmarks.latency --quick                          # tiny in-process model (CI)

One synthetic diagram question with 4 options; every configuration (each variant alone, all five) is
called 20 times after 3 warm-up calls, interleaved round by round, and reported as median and p90.
Each in-process call starts with an empty sentence-embedding cache (a new question's cost); the
app's process keeps its cache, so its repeated question is embedded only once.
``--compare-threads`` adds the five-variant call at 1 torch thread vs all cores, interleaved: on a
loaded 2-core machine, OpenMP contention can make 2 threads several times slower than 1.
Without a default model in ``assets/`` (and without ``--standin``) the script says so and runs the
``--quick`` model instead. Target (full mode): all five variants on one image in under 1 s (median).
The app path uses ``gradio_client`` against ``api_name="/answer"``; its arguments are matched to the
endpoint's parameter names, or given explicitly with ``--app-args`` (JSON list; the strings
"{image}", "{question}", "{options}", "{variants}" are substituted).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import Targets, add_common_args, cold, finish, interleaved, setup, stats, table
from benchmarks.models import assets_exist, build_predictor, load_assets_predictor, make_items
from vqa_demo.loading import DEFAULT_BASE, DEFAULT_CHECKPOINTS

ALL_VARIANTS_TARGET_S = 1.0


def resolve_mode(args: argparse.Namespace) -> None:
    """Without a default model (and without ``--standin``), say so and switch to ``--quick``."""
    if not args.quick and not args.standin and not assets_exist(args.checkpoints, args.base):
        print(
            f"no default model at {args.checkpoints} (base {args.base}); it has not been produced yet. "
            "Falling back to --quick (or pass --standin for the default-size random stand-in)."
        )
        args.quick = True


def choose_predictor(args: argparse.Namespace) -> tuple[Any, str, bool]:
    """``(predictor, description, is_default_model)``."""
    if args.quick:
        return build_predictor("tiny", args.seed), "stand-in: tiny (quick)", False
    if assets_exist(args.checkpoints, args.base):
        return load_assets_predictor(args.checkpoints, args.base), f"assets: {args.checkpoints}", True
    from vqa_demo.model.matching import SentenceMatcher

    return build_predictor("default", args.seed, SentenceMatcher()), "stand-in: default size", True


def _endpoint_args(client, image_path: Path, item, names: list[str]) -> dict[str, Any]:
    """Keyword arguments for /answer matched by parameter name.

    Knows the app's form (``image, question, k, option_a..option_h, use_<variant>``) and similar ones:
    an image, a question, an option count, one text field per option (or one field for all), and
    per-variant ticks or a variant list. Unknown parameters keep their defaults.
    """
    from gradio_client import handle_file

    info = client.view_api(print_info=False, return_format="dict")
    params = info["named_endpoints"]["/answer"]["parameters"]
    option_params = [p["parameter_name"] for p in params if "option" in p["parameter_name"].lower()]
    remaining = list(item.options)
    values: dict[str, Any] = {}
    for param in params:
        key = param["parameter_name"]
        lower = key.lower()
        if "image" in lower:
            values[key] = handle_file(str(image_path))
        elif "question" in lower:
            values[key] = item.question
        elif lower in {"k", "count", "num_options", "n_options"}:
            values[key] = len(item.options)
        elif "option" in lower and len(option_params) > 1:
            values[key] = remaining.pop(0) if remaining else ""
        elif "option" in lower:
            values[key] = "\n".join(item.options)
        elif lower.startswith("use_"):
            values[key] = True
        elif "variant" in lower:
            values[key] = names
    return values


def app_latency(args: argparse.Namespace, item, names: list[str], repeats: int, warmup: int) -> dict:
    """Median/p90 of the app's /answer endpoint; an error is recorded, not raised (the app is optional)."""
    try:
        from gradio_client import Client, handle_file

        client = Client(args.app_url, verbose=False)
        with tempfile.TemporaryDirectory() as tmp:
            image_path = Path(tmp) / "question.png"
            item.image.save(image_path)
            if args.app_args:
                substitutions = {
                    "{image}": handle_file(str(image_path)),
                    "{question}": item.question,
                    "{options}": list(item.options),
                    "{variants}": names,
                }
                positional = [
                    substitutions.get(v, v) if isinstance(v, str) else v for v in json.loads(args.app_args)
                ]
                call = lambda: client.predict(*positional, api_name="/answer")  # noqa: E731
            else:
                keywords = _endpoint_args(client, image_path, item, names)
                call = lambda: client.predict(**keywords, api_name="/answer")  # noqa: E731
            first = call()
            status = (
                first[0] if isinstance(first, list | tuple) and first and isinstance(first[0], str) else None
            )
            if status is not None and status.lstrip().startswith("⚠"):
                raise RuntimeError(f"the app answered with an error message: {status.strip()[:200]}")
            samples, _ = interleaved({"app": call}, repeats, warmup)
        return {"url": args.app_url, "status": status, **stats(samples["app"]), "samples": samples["app"]}
    except Exception as error:  # the app is another process; report what went wrong
        print(f"app latency not measured: {type(error).__name__}: {error}")
        return {"url": args.app_url, "error": f"{type(error).__name__}: {error}"}


def thread_comparison(predictor, item, names: list[str], repeats: int) -> dict[str, dict]:
    """All five variants with 1 torch thread vs every core, interleaved (OpenMP contention check)."""
    import os

    import torch

    default = torch.get_num_threads()
    counts = sorted({1, os.cpu_count() or 1})

    def call(count: int):
        torch.set_num_threads(count)
        return predictor.predict(item.image, item.question, item.options, names)

    try:
        samples, _ = interleaved({str(c): (lambda c=c: call(c)) for c in counts}, repeats, warmup=1)
    finally:
        torch.set_num_threads(default)
    return {count: {**stats(s), "samples": s} for count, s in samples.items()}


def main(args: argparse.Namespace) -> int:
    resolve_mode(args)
    machine = setup(args)
    predictor, description, is_default = choose_predictor(args)
    repeats = args.repeats or (5 if args.quick else 20)
    warmup = 1 if args.quick else 3
    names = list(predictor.variants)
    item = make_items(1, 224, args.seed)[0]

    # Cold embedding cache on every call: a new question's options and answer are embedded afresh.
    candidates = {
        name: cold(predictor, lambda n=name: predictor.predict(item.image, item.question, item.options, [n]))
        for name in names
    }
    candidates["all five"] = cold(
        predictor, lambda: predictor.predict(item.image, item.question, item.options, names)
    )
    samples, _ = interleaved(candidates, repeats, warmup)
    latency = {name: {**stats(s), "samples": s} for name, s in samples.items()}
    sum_of_single = sum(latency[n]["median"] for n in names)
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "machine": machine,
        "model": {
            "description": description,
            "parameters": sum(p.numel() for p in predictor.backbone.core.parameters()),
            "image_tokens": predictor.backbone.image_seq_length,
        },
        "repeats": repeats,
        "warmup": warmup,
        "latency": latency,
        "sum_of_single_variant_medians_s": sum_of_single,
        "all_variants_sharing_ratio": sum_of_single / latency["all five"]["median"],
    }
    rows = [[name, 1000 * v["median"], 1000 * v["p90"]] for name, v in latency.items()]
    rows.append(["(sum of the five single-variant calls)", 1000 * sum_of_single, ""])
    if args.compare_threads:
        result["threads"] = thread_comparison(predictor, item, names, repeats)
        for count, entry in result["threads"].items():
            rows.append([f"all five, torch threads = {count}", 1000 * entry["median"], 1000 * entry["p90"]])
    if args.app_url:
        app = app_latency(args, item, names, repeats, warmup)
        result["app"] = app
        if "median" in app:
            rows.append([f"app /answer ({args.app_url})", 1000 * app["median"], 1000 * app["p90"]])
    print(
        f"\nmodel: {description}; {repeats} calls after {warmup} warm-up; load average {machine['load_average_start']}"
    )
    print(table(["predict(...)", "median ms", "p90 ms"], rows))
    targets = Targets(enforce=not args.quick and is_default)
    targets.check(
        "all five variants, one image (median)",
        latency["all five"]["median"],
        "<",
        ALL_VARIANTS_TARGET_S,
        " s",
    )
    if "app" in result and "median" in result["app"]:
        targets.check(
            "app /answer, all five variants (median)",
            result["app"]["median"],
            "<",
            ALL_VARIANTS_TARGET_S,
            " s",
        )
    return finish("latency", result, targets, args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(parser, "latency")
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS, help="variant checkpoints")
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE, help="base model directory")
    parser.add_argument(
        "--standin", action="store_true", help="without assets/, time the default-size stand-in"
    )
    parser.add_argument("--repeats", type=int, default=0, help="timed calls per configuration (default 20)")
    parser.add_argument("--app-url", default=None, help="also time the running app's /answer endpoint")
    parser.add_argument("--app-args", default=None, help="explicit JSON argument list for /answer")
    parser.add_argument(
        "--compare-threads",
        action="store_true",
        help="also time all five variants with 1 torch thread vs all cores, interleaved",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
