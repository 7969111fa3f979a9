"""Text and batches for stage-1 pretraining: the tokenizer's corpus and the image-to-text training rows.

Tokenizer corpus, two parts:
- the synthetic data's own strings: every question, answer, distractor and caption of a few thousand
  sampled scenes, plus the prompt scaffolding of all three heads and both prompt styles, so the words
  the fine-tunes see get merges of their own;
- ordinary English from the docstrings of the Python standard library's top-level modules. It is the
  one sizeable English text that exists offline on every machine with Python; files are read in sorted
  order and parsed with ``ast`` (never imported: ``antigravity`` would open a browser), and the size is
  capped, so the corpus is deterministic for one Python version.

Training rows are PaliGemma's generative layout, ``[<image> x N] <bos> prefix \\n | suffix <eos>``, built
by :class:`vqa_demo.model.encoding.RowEncoder` (``token_type_ids`` make the prefix bidirectional, labels
cover the suffix only). Rendering an item costs about 1 ms, so batches are drawn fresh every step
unless a fixed pool is asked for (the smoke run repeats one pool so its loss must fall), and a
background thread renders the next batches while torch computes (:func:`prefetch`).
"""

from __future__ import annotations

import ast
import queue
import random
import sysconfig
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import PaliGemmaProcessor

from training.synthetic import derive_seed, pretraining_items
from training.synthetic_facts import caption, facts
from training.synthetic_scenes import SAMPLERS
from vqa_demo.config import HEAD_NAMES
from vqa_demo.model.backbone import preprocess_images
from vqa_demo.model.encoding import EncodedRows, RowEncoder
from vqa_demo.model.prompts import PromptRow
from vqa_demo.model.strategies import build_rows
from vqa_demo.model.tokenizer import train_byte_level_tokenizer

ENGLISH_MAX_CHARS = 1_000_000
# Extra prompt words the fine-tunes and the app use besides those build_rows produces.
PROMPT_WORDS = ("answer en", "caption en", "question:", "options:", "answer:", "hypothesis:")


def stdlib_docstrings(max_chars: int = ENGLISH_MAX_CHARS) -> list[str]:
    """Docstrings of the standard library's top-level ``*.py`` modules, in sorted file order, capped."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts, total = [], 0
    for path in sorted(root.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    texts.append(doc)
                    total += len(doc)
                    if total >= max_chars:
                        return texts
    return texts


def synthetic_texts(num_scenes: int, seed: int) -> list[str]:
    """Every question, answer, distractor and caption of ``num_scenes`` scenes, and their prompts.

    Each scene also contributes one prompt per head and style (built by :func:`build_rows`), so the
    scaffolding (``Options:``, ``A)``, ``Hypothesis:``, ``choose from:``) is as frequent as the content.
    """
    families = tuple(SAMPLERS)
    texts = list(PROMPT_WORDS)
    for index in range(num_scenes):
        rng = random.Random(derive_seed(seed, "tokenizer", index))
        scene = SAMPLERS[families[index % len(families)]](rng)
        texts.append(caption(scene))
        for fact in facts(scene, rng):
            options = [fact.answer, *fact.distractors]
            texts.extend([fact.question, *options])
            head = HEAD_NAMES[index % 3]
            style = ("default", "choose_from")[(index // 3) % 2]
            texts.extend(row.prefix for row in build_rows(head, fact.question, options, style))
    return texts


def build_tokenizer(
    vocab_size: int, seed: int, num_scenes: int = 3000, english_chars: int = ENGLISH_MAX_CHARS
):
    """The byte-level BPE tokenizer trained on synthetic strings plus standard-library English."""
    corpus = synthetic_texts(num_scenes, seed) + stdlib_docstrings(english_chars)
    return train_byte_level_tokenizer(corpus, vocab_size=vocab_size)


@dataclass
class PretrainItem:
    """One generative task: an image, its prefix (``answer en ...`` / ``caption en``) and target."""

    image: Image.Image
    prefix: str
    suffix: str
    family: str

    @property
    def task(self) -> str:
        return "caption" if self.prefix.startswith("caption") else "question"


def make_items(n: int, seed: int, image_size: int, lettered: float = 0.0) -> list[PretrainItem]:
    """``n`` items from :func:`pretraining_items`; families take turns, so item i is family i mod 5."""
    families = tuple(SAMPLERS)
    return [
        PretrainItem(image, prefix, suffix, families[i % len(families)])
        for i, (image, prefix, suffix) in enumerate(pretraining_items(n, seed, image_size, lettered=lettered))
    ]


def stream_items(
    seed: int, image_size: int, question_keep: float = 1.0, chunk: int = 256, lettered: float = 0.0
) -> Iterator[PretrainItem]:
    """An endless item stream: consecutive chunks of :func:`make_items` with derived seeds.

    ``question_keep`` < 1 drops that share of the open questions (captions are always kept): a
    caption supervises every object of an image at once, ~25 target tokens for the price of one
    image pass, against 1-3 for a question.
    """
    keep_rng = random.Random(derive_seed(seed, "keep"))
    for index in range(1 << 62):
        for item in make_items(chunk, derive_seed(seed, "stream", index), image_size, lettered):
            if item.task == "caption" or keep_rng.random() < question_keep:
                yield item


class BatchMaker:
    """Turns items into model inputs: ``pixel_values float[B, 3, S, S]`` and encoded rows ``[B, T]``."""

    def __init__(self, processor: PaliGemmaProcessor, max_suffix_tokens: int = 64):
        self.processor = processor
        self.encoder = RowEncoder(
            processor.tokenizer,
            processor.image_token_id,
            int(processor.image_seq_length),
            max_suffix_tokens=max_suffix_tokens,
        )

    def pixel_values(self, images: list[Image.Image]) -> torch.Tensor:
        return preprocess_images(self.processor, images)

    def rows(self, items: list[PretrainItem], with_suffix: bool = True) -> EncodedRows:
        # The separator after the prefix is the encoder's own, as in every fine-tuning prompt.
        prompt_rows = [PromptRow("", item.prefix, "", item.suffix) for item in items]
        return self.encoder.encode(prompt_rows, with_suffix=with_suffix)

    def __call__(self, items: list[PretrainItem]) -> tuple[torch.Tensor, EncodedRows]:
        return self.pixel_values([item.image for item in items]), self.rows(items)


def batches(
    maker: BatchMaker,
    batch_size: int,
    seed: int,
    image_size: int,
    pool_size: int = 0,
    question_keep: float = 1.0,
    lettered: float = 0.0,
) -> Iterator[tuple[torch.Tensor, EncodedRows]]:
    """Endless training batches: fresh items, or shuffled passes over a fixed pool when ``pool_size``."""
    if not pool_size:
        stream = stream_items(seed, image_size, question_keep, lettered=lettered)
        while True:
            yield maker([next(stream) for _ in range(batch_size)])
    pool = make_items(pool_size, derive_seed(seed, "pool"), image_size, lettered)
    rng = random.Random(seed)
    while True:
        order = list(range(pool_size))
        rng.shuffle(order)
        for start in range(0, pool_size - batch_size + 1, batch_size):
            yield maker([pool[i] for i in order[start : start + batch_size]])


_DONE = object()


def prefetch(iterator: Iterator, depth: int = 4) -> Iterator:
    """Yield ``iterator``'s items, produced ``depth`` ahead by a background thread, in the same order.

    Torch releases the GIL while it computes, so rendering the next batch overlaps the current step
    (about 10-15 % of a step for the small default model). Closing the generator stops the thread.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_DONE, None))
        except BaseException as error:  # handed to the consumer, which re-raises it
            buffer.put((None, error))

    worker = threading.Thread(target=fill, name="batch-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
