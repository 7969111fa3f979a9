"""Resumable training state, written atomically.

``state/`` holds the LoRA weights, the head, the optimizer and scheduler, the torch RNG state and
the step counter. Under several processes the main process writes it and every process reads it
back (their LoRA, head and optimizer states are identical: DDP keeps them in step). It is written to a temporary sibling and renamed into place, so a run killed
while saving resumes from the previous complete state.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from peft import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file

from vqa_demo.checkpoints import atomic_directory, save_tensors
from vqa_demo.data.jsonl import read_jsonl, write_jsonl


def save_state(
    directory: Path, backbone, head, optimizer, scheduler, adapter: str, step: int, best: dict
) -> None:
    with atomic_directory(directory) as staging:
        lora = get_peft_model_state_dict(backbone.model, adapter_name=adapter)
        save_tensors(lora, staging / "lora.safetensors")
        if head is not None:
            save_tensors(head.state_dict(), staging / "head.safetensors")
        save_tensors({"torch_rng": torch.get_rng_state()}, staging / "rng.safetensors")
        # Optimizer state is nested dicts of tensors; it is re-read with weights_only=True (no code execution).
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / "optim.pt"
        )
        (staging / "state.json").write_text(json.dumps({"step": step, "best": best}))


def load_state(directory: Path, backbone, head, optimizer, scheduler, adapter: str) -> tuple[int, dict]:
    """Restore everything saved by :func:`save_state`; returns ``(step, best)``."""
    directory = Path(directory)
    meta = json.loads((directory / "state.json").read_text())
    set_peft_model_state_dict(backbone.model, load_file(directory / "lora.safetensors"), adapter_name=adapter)
    if head is not None:
        head.load_state_dict(load_file(directory / "head.safetensors"))
    optim = torch.load(directory / "optim.pt", weights_only=True)
    optimizer.load_state_dict(optim["optimizer"])
    scheduler.load_state_dict(optim["scheduler"])
    torch.set_rng_state(load_file(directory / "rng.safetensors")["torch_rng"])
    return meta["step"], meta["best"]


def trim_metrics(metrics: Path, step: int) -> None:
    """Drop ``metrics.jsonl`` records after ``step`` (the run was killed later than its last save).

    A separate step from :func:`load_state`, which every process runs: only the main process writes.
    """
    metrics = Path(metrics)
    if metrics.is_file():
        write_jsonl(metrics, [record for record in read_jsonl(metrics) if record["step"] <= step])


def seconds_spent(metrics: Path, step: int) -> float:
    """Training seconds already spent up to ``step``: the last ``seconds`` logged at or before it (0 if none).

    A resumed run counts on from there, so its curve's clock and its total training time include the
    interrupted part instead of restarting at zero.
    """
    metrics = Path(metrics)
    if not metrics.is_file():
        return 0.0
    logged = [r["seconds"] for r in read_jsonl(metrics) if r.get("step", step + 1) <= step and "seconds" in r]
    return float(logged[-1]) if logged else 0.0
