"""A random-weight PaliGemma 2 3B-224 base written to disk, and one serving measurement on it.

:func:`write_random_base` writes the base tensor by tensor (shards of about 1 GB, in bf16 as the
published checkpoints are), so writing never holds the model. :func:`measure` runs in its own process
(``python -m benchmarks.serving_model DIR --precision auto --threads 2``): it loads the base with the
package's loader (:func:`vqa_demo.loading.load_base`), attaches five random variants and times
answers; its peak memory is the process's own high-water mark, so each precision is measured alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.real_shapes import (
    QUICK_TEXT,
    QUICK_VISION,
    REAL_TEXT,
    REAL_VISION,
    build_config,
    build_processor,
)

SHARD_BYTES = 1 << 30


def rss_mb() -> float:
    """This process's resident memory now, MiB (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def random_tensor(
    name: str, shape: torch.Size, dtype: torch.dtype, generator: torch.Generator
) -> torch.Tensor:
    """Matrices ~ N(0, 0.02); biases 0; SigLIP LayerNorm scales 1; Gemma RMSNorm weights 0 (1 + w)."""
    if len(shape) >= 2:
        return (torch.randn(shape, generator=generator) * 0.02).to(dtype)
    if name.endswith("weight") and "vision_tower" in name and "norm" in name:
        return torch.ones(shape, dtype=dtype)
    return torch.zeros(shape, dtype=dtype)


def write_random_base(out: Path, quick: bool, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Path:
    """Config, processor and random weights of the (quick: scaled-down) 3B-224 base in ``out``."""
    from safetensors.torch import save_file
    from transformers import PaliGemmaForConditionalGeneration

    text, vision = (QUICK_TEXT, QUICK_VISION) if quick else (REAL_TEXT, REAL_VISION)
    processor = build_processor(quick, vision)
    config = build_config(processor, text, vision)
    with torch.device("meta"):
        model = PaliGemmaForConditionalGeneration(config)
    shapes = {name: p.shape for name, p in model.state_dict().items() if name != "lm_head.weight"}
    out.mkdir(parents=True, exist_ok=True)
    config.dtype = dtype
    config.save_pretrained(out)
    processor.save_pretrained(out)
    generator = torch.Generator().manual_seed(seed)
    shard, size, index = {}, 0, {}
    files = []

    def flush():
        nonlocal shard, size
        name = f"model-{len(files) + 1:05d}.safetensors"
        save_file(shard, str(out / name), metadata={"format": "pt"})
        index.update(dict.fromkeys(shard, name))
        files.append(name)
        shard, size = {}, 0

    for name, shape in shapes.items():
        shard[name] = random_tensor(name, shape, dtype, generator)
        size += shard[name].nbytes
        if size >= SHARD_BYTES:
            flush()
    if shard:
        flush()
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": index}))
    return out


def measure(base: Path, precision: str, threads: list[int], rounds: int, seed: int = 0) -> dict:
    """Load ``base`` in ``precision``, then per thread count time 4-option COND_GEN (one variant) and
    all five variants answering one item (medians of ``rounds`` after one untimed answer; ``rounds``
    0: only the load, the first answer and the memory)."""
    from benchmarks.models import make_items
    from vqa_demo.loading import load_base
    from vqa_demo.testing import random_variant_predictor

    torch.set_num_threads(threads[0])
    start = time.perf_counter()
    backbone, serving = load_base(str(base), "cpu", precision)
    load_s = time.perf_counter() - start
    loaded_rss, loaded_peak = rss_mb(), peak_rss_mb()
    predictor = random_variant_predictor(backbone, seed=seed, batch_size=4)
    item = make_items(1, backbone.processor.image_processor.size["height"], seed, 4)[0]
    image, question, options = item.image, item.question, list(item.options[:4])

    def answer(variants):
        begin = time.perf_counter()
        predictor.predict(image, question, options, variants=variants)
        return time.perf_counter() - begin

    first_s = answer(["cond_gen"])
    first_answer_peak = peak_rss_mb()
    per_threads = {}
    for count in threads if rounds else []:
        torch.set_num_threads(count)
        answer(None)  # untimed: first passes at this thread count
        cond_gen = [answer(["cond_gen"]) for _ in range(rounds)]
        all_variants = [answer(None) for _ in range(rounds)]
        per_threads[count] = {
            "cond_gen_4_options_s": float(np.median(cond_gen)),
            "cond_gen_runs": cond_gen,
            "all_variants_s": float(np.median(all_variants)),
            "all_variants_runs": all_variants,
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    return {
        "precision": precision,
        "serving": serving,
        "load_s": load_s,
        "first_answer_s": first_s,
        "rss_after_load_mb": loaded_rss,
        "peak_rss_load_mb": loaded_peak,
        "peak_rss_first_answer_mb": first_answer_peak,
        "running_rss_mb": rss_mb(),
        "peak_rss_mb": peak_rss_mb(),
        "unmerged_reason": predictor.adapters.unmerged_reason,
        "threads": per_threads,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("base", type=Path, help="a base written by write_random_base")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=1, help="0: memory and the first answer only")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    result = measure(args.base, args.precision, args.threads, args.rounds)
    args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
