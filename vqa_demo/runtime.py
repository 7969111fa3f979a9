"""Run-time settings every command that runs a model shares: CPU threads, serving precision and
how freed memory is kept.

Torch-free at import, so a CLI can build its parser (and answer ``--help``) without loading torch;
:func:`use_threads` imports torch only when it is called.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_BASE = ASSETS_DIR / "base"
DEFAULT_CHECKPOINTS = ASSETS_DIR / "checkpoints"

# auto: int8 language model + bf16 vision on a CPU with native bf16, int8 + fp32 vision on other
# CPUs, bf16 on CUDA (vqa_demo.model.precision.resolve_precision).
PRECISIONS = ("auto", "fp32", "bf16", "int8")
DEFAULT_THREADS = 1  # one thread: on a shared small CPU more threads contend and run slower


# glibc's mallopt parameters, and what a batch CLI sets them to: blocks up to 32 MB (glibc's largest
# threshold) come from the heap, and up to 1 GB of freed main-heap top stays mapped for the next forward.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HELD_HEAP_BYTES, HEAP_BLOCK_BYTES = 1 << 30, 32 << 20


def hold_freed_memory() -> bool:
    """Let a batch process reuse freed activation memory instead of faulting fresh pages in.

    By default glibc returns a freed block above its (adaptive) mmap threshold to the kernel and trims
    the heap's free top, so the next forward's temporaries of the same size page-fault on first
    touch: at 3B-224 widths on a 2-core CPU, 0.9-1.4 M faults and 1.5-2.6 s of kernel time per
    five-variant answer, none once held (the wall-clock gain, a few percent, is within that machine's
    run-to-run spread). A fixed mmap threshold of 32 MB and trimming only beyond 1 GB keep freed
    blocks for reuse; a thread's own arena (64 MB heaps) then is never trimmed either, and
    ``malloc_trim`` does not reach its top. So it is for ``evaluate`` and benchmarks, which exit when
    done; the app, which hands memory back between sessions
    (:func:`~vqa_demo.ui.session_memory.return_freed_memory`), keeps glibc's defaults. Process-wide,
    never for library calls. Returns whether both settings were taken: False where the C library is
    not glibc (nothing changed; an allocator preloaded over glibc's, such as tcmalloc, may ignore them)."""
    import ctypes
    import platform

    from vqa_demo.libc import libc_function

    mallopt = libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    if platform.libc_ver()[0] != "glibc" or mallopt is None:
        return False
    held = mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES) == 1
    return held and mallopt(M_TRIM_THRESHOLD, HELD_HEAP_BYTES) == 1


def add_threads_argument(parser: argparse.ArgumentParser, default: int = DEFAULT_THREADS) -> None:
    """``--threads N``: torch CPU threads (0 keeps torch's default of one per core)."""
    parser.add_argument(
        "--threads",
        type=int,
        default=default,
        help=f"torch CPU threads (default {default}; 0: one per core, torch's default)",
    )


def add_precision_argument(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--precision``: how the base model's weights are held while serving (see :data:`PRECISIONS`)."""
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=default,
        help="base weights while serving: fp32, bf16, int8 (dynamic int8 language model, fp32 vision) "
        "or auto (int8 + bf16 vision on CPUs with native bf16, int8 + fp32 vision on other CPUs, bf16 "
        "on CUDA); default: as stored for training, fp32 on CPU and bf16 on CUDA",
    )


def use_threads(threads: int) -> int:
    """Set torch's CPU threads (0 leaves torch's default); returns the number in use."""
    if threads < 0:
        raise ValueError(f"--threads must be 0 (torch's default) or more, got {threads}")
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
