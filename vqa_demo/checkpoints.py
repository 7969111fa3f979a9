"""Save and load one trained variant: a self-describing directory, safetensors only.

Layout::

    variant_dir/
      run_config.json            RunConfig: head, pooling, prompt format, K, LoRA and training settings,
                                 base model fingerprint, metrics
      adapter_config.json        peft LoRA config
      adapter_model.safetensors  LoRA weights
      head.safetensors           pooling + classifier weights (absent for cond_gen, which uses the LM head)

Variants trained on the same base share one base model directory. Saving is atomic (write to a
temporary sibling, then rename), so a run killed mid-save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from vqa_demo.backbone import Backbone
from vqa_demo.config import RunConfig
from vqa_demo.heads import build_head
from vqa_demo.safety import refuse_pickles

RUN_CONFIG = "run_config.json"
HEAD_FILE = "head.safetensors"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class CheckpointError(ValueError):
    """A checkpoint directory is incomplete, malformed or does not fit the loaded base."""


def save_variant(
    directory: str | Path, config: RunConfig, backbone: Backbone, head: nn.Module | None, adapter: str
) -> Path:
    """Write the variant's adapter ``adapter`` (from the peft-wrapped backbone), head and config."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    config.base_fingerprint = backbone.fingerprint
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        backbone.model.save_pretrained(staging / "peft", selected_adapters=[adapter], safe_serialization=True)
        # peft writes non-default adapters into a sub-folder named after them.
        saved = staging / "peft" / adapter if adapter != "default" else staging / "peft"
        for name in ADAPTER_FILES:
            shutil.move(str(saved / name), staging / name)
        shutil.rmtree(staging / "peft")
        if head is not None:
            save_file(
                {k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()}, staging / HEAD_FILE
            )
        (staging / RUN_CONFIG).write_text(json.dumps(config.to_dict(), indent=2))
        _replace_dir(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _replace_dir(staging: Path, target: Path) -> None:
    """Move ``staging`` to ``target``; an existing ``target`` is swapped out, then removed."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)


def read_run_config(directory: str | Path) -> RunConfig:
    directory = Path(directory)
    path = directory / RUN_CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a variant checkpoint: {RUN_CONFIG} is missing")
    try:
        return RunConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not a valid run config: {err}") from err


def check_variant_dir(directory: str | Path, backbone: Backbone | None = None) -> RunConfig:
    """Validate a variant directory without loading weights; returns its config.

    Refuses pickle files (before anything is opened), names missing files, and refuses a variant
    trained on another base than ``backbone``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    refuse_pickles(directory)
    config = read_run_config(directory)
    required = list(ADAPTER_FILES) + ([HEAD_FILE] if config.head.head != "cond_gen" else [])
    missing = [name for name in required if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(f"{directory} is missing {', '.join(missing)}")
    if backbone is not None and config.base_fingerprint and config.base_fingerprint != backbone.fingerprint:
        raise CheckpointError(
            f"{directory} was trained on base '{config.backbone.source}' (fingerprint {config.base_fingerprint}), "
            f"but the loaded base is '{backbone.source}' (fingerprint {backbone.fingerprint}); "
            "load the base it was trained on"
        )
    return config


def load_head(directory: str | Path, config: RunConfig, hidden_size: int) -> nn.Module | None:
    """Build the head described by ``config`` and load ``head.safetensors`` into it, checking shapes."""
    head = build_head(config.head, hidden_size)
    if head is None:
        return None
    path = Path(directory) / HEAD_FILE
    state = load_file(path)
    expected = head.state_dict()
    problems = [f"missing tensor '{k}'" for k in expected if k not in state]
    problems += [f"unexpected tensor '{k}'" for k in state if k not in expected]
    problems += [
        f"'{k}' has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(
            f"{path} does not match its run config ({config.variant}, K={config.head.num_options}, "
            f"hidden size {hidden_size}): " + "; ".join(problems)
        )
    head.load_state_dict(state)
    return head.eval()


def attach_adapter(backbone: Backbone, directory: str | Path, adapter: str) -> None:
    """Load the LoRA adapter in ``directory`` into the shared base under the name ``adapter``."""
    from peft import PeftModel

    if hasattr(backbone.model, "peft_config"):
        backbone.model.load_adapter(str(directory), adapter_name=adapter, is_trainable=False)
    else:
        backbone.model = PeftModel.from_pretrained(
            backbone.core, str(directory), adapter_name=adapter, is_trainable=False
        )
    backbone.model.eval()


def load_variants(backbone: Backbone, directories: Sequence[str | Path]):
    """Load every variant directory onto ``backbone``; returns :class:`~vqa_demo.predictor.Variant` objects.

    All directories are validated before any weight is loaded. Names come from the run configs
    (``swag-attentive``...); a repeated name falls back to the directory name.
    """
    from vqa_demo.predictor import Variant

    configs = [check_variant_dir(d, backbone) for d in directories]
    names: list[str] = []
    for directory, config in zip(directories, configs):
        name = config.variant if config.variant not in names else Path(directory).name
        if name in names:
            raise CheckpointError(
                f"two checkpoints are both named '{name}'; give their directories distinct names"
            )
        names.append(name)
    variants = []
    for directory, config, name in zip(directories, configs, names):
        adapter = name.replace("-", "_")  # peft adapter names become attribute names
        attach_adapter(backbone, directory, adapter)
        head = load_head(directory, config, backbone.hidden_size)
        if head is not None:
            head.to(backbone.device)
        variants.append(Variant(name, config, head, adapter))
    return variants
