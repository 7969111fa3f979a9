"""Load a saved base straight into its serving precision, one tensor at a time.

transformers' loader holds the whole base in its load dtype (and maps every safetensors file) before
:func:`~vqa_demo.model.precision.apply_precision` can shrink it: at PaliGemma 2 3B-224 shapes that
peaked at 1.6x the running memory. Here the model is built on the meta device (parameters only;
buffers such as rotary frequencies are computed as usual), and each tensor is read from its file with
plain reads (no memory map, whose touched pages would count as resident), checked, converted to the
plan's precision (language linears straight to :func:`~vqa_demo.model.precision.serving_linear`) and
put in place before the next is read. The result equals loading in the file's dtype and converting
afterwards (tested on the tiny model), at the running size plus one tensor.

Checkpoint names go through transformers' own renamings for the model class (old PaliGemma files
name ``language_model.model.layers...``); a checkpoint that needs a tensor conversion (fused or split
weights) is refused here and loads through transformers instead (:func:`streams`).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from torch import nn

from vqa_demo.model.base_checks import UnsafeBaseError
from vqa_demo.model.precision import (
    DTYPES,
    PrecisionPlan,
    bf16_output_layer,
    language_dtype,
    language_linears,
    serving_linear,
    summary,
    vision_module_ids,
)

SAFETENSORS_DTYPES = {
    "F32": torch.float32,
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F64": torch.float64,
}
MAX_HEADER_BYTES = 100 << 20


def read_header(path: Path) -> tuple[dict, int]:
    """The tensor entries of a safetensors file (name -> dtype, shape, data_offsets) and where its data
    starts; refuses a header that is not a safetensors one."""
    with path.open("rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        if size > MAX_HEADER_BYTES:
            raise UnsafeBaseError(f"{path} is not a safetensors file (header of {size} bytes)")
        header = json.loads(handle.read(size))
    header.pop("__metadata__", None)
    return header, 8 + size


def read_tensor(path: Path, entry: dict, data_start: int) -> torch.Tensor:
    """One tensor of a safetensors file, read into fresh memory (no memory map)."""
    dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
    if dtype is None:
        raise UnsafeBaseError(f"{path} holds a {entry['dtype']} tensor; a base's weights must be floating")
    begin, end = entry["data_offsets"]
    shape = list(entry["shape"])
    expected = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
    if end - begin != expected:
        raise UnsafeBaseError(f"{path}: a tensor's byte range does not match its shape {shape}")
    raw = torch.empty(end - begin, dtype=torch.uint8)
    with path.open("rb") as handle:
        handle.seek(data_start + begin)
        if handle.readinto(memoryview(raw.numpy())) != end - begin:
            raise UnsafeBaseError(f"{path} is truncated: restore the base from its original files")
    return raw.view(dtype).reshape(shape)


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a saved base (sharded or single)."""
    return sorted(folder.glob("*.safetensors"))


def can_stream(folder: Path) -> bool:
    """Whether ``folder`` is a saved base with a config and safetensors weights."""
    return folder.is_dir() and (folder / "config.json").is_file() and bool(weight_files(folder))


def empty_model(model_class: type, folder: Path) -> nn.Module:
    """``model_class`` built from ``folder``'s config with its parameters on the meta device."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    with init_empty_weights(include_buffers=False):
        model = model_class(config)
    return model.eval()


def tensor_locations(model: nn.Module, folder: Path) -> dict[str, tuple[Path, dict, int]]:
    """Model parameter name -> (file, header entry, data start), through the model class's renamings."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightRenaming, rename_source_key

    transforms = get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if not isinstance(t, WeightRenaming)]
    expected = model.state_dict()
    locations, unexpected = {}, []
    for path in weight_files(folder):
        header, data_start = read_header(path)
        for key, entry in header.items():
            name, converted = rename_source_key(key, renamings, converters, model.base_model_prefix, expected)
            if converted is not None:
                raise UnsafeBaseError(
                    f"the base {folder} stores {key} in a layout that needs converting; load it with "
                    "--precision fp32 or without a precision"
                )
            if name not in expected:
                unexpected.append(key)
            locations[name] = (path, entry, data_start)
    if unexpected:
        raise UnsafeBaseError(
            f"the base {folder} holds weights the model does not have: {', '.join(sorted(unexpected)[:5])}; "
            "give a complete checkpoint whose config.json matches its weights"
        )
    return locations


def read_checked(
    folder: Path, name: str, location: tuple[Path, dict, int], shape: torch.Size
) -> torch.Tensor:
    """The tensor ``name`` from its ``location``, refused when mis-shaped or not finite."""
    tensor = read_tensor(*location)
    if tensor.shape != shape:
        raise UnsafeBaseError(
            f"the base {folder} holds weights of the wrong shape for {name} ({list(tensor.shape)}, "
            f"model {list(shape)}); give a checkpoint whose config.json matches its weights"
        )
    if tensor.numel() and not all(bool(torch.isfinite(v)) for v in torch.aminmax(tensor.float())):
        raise UnsafeBaseError(
            f"the base {folder} has NaN or infinite values in {name}; every answer would be "
            "meaningless, so it is refused: restore the base from its original files"
        )
    return tensor


def stream_model(
    model_class: type, folder: Path, plan: PrecisionPlan, vision_modules: tuple[str, ...]
) -> tuple[nn.Module, dict]:
    """``model_class`` from ``folder`` in ``plan``'s precision, read and converted one tensor at a time;
    returns the model (eval mode, on the CPU) and :func:`~vqa_demo.model.precision.summary`."""
    model = empty_model(model_class, folder)
    locations = tensor_locations(model, folder)
    quantized = language_linears(model, vision_modules) if plan.language == "int8" else []
    for name in quantized:
        linear = model.get_submodule(name)
        weight = read_checked(
            folder, f"{name}.weight", need(locations, folder, f"{name}.weight"), linear.weight.shape
        )
        bias = None
        if linear.bias is not None:
            bias = read_checked(
                folder, f"{name}.bias", need(locations, folder, f"{name}.bias"), linear.bias.shape
            )
        model.set_submodule(name, serving_linear(name, weight, bias, plan))
        del weight, bias, linear
    in_vision = vision_module_ids(model, vision_modules)
    for module_name, module in model.named_modules():
        dtype = DTYPES[plan.vision] if id(module) in in_vision else language_dtype(plan)
        tensors = [("parameter", n) for n, _ in module.named_parameters(recurse=False)]
        tensors += [("buffer", n) for n, _ in module.named_buffers(recurse=False)]
        for kind, local in tensors:
            full = f"{module_name}.{local}" if module_name else local
            if full not in locations:
                continue  # a tied weight (tie_weights below) or missing (refused below)
            current = getattr(module, local)
            tensor = read_checked(folder, full, locations[full], current.shape)
            tensor = tensor.to(dtype) if tensor.is_floating_point() else tensor
            if kind == "parameter":
                setattr(module, local, nn.Parameter(tensor, requires_grad=False))
            else:
                setattr(module, local, tensor)
    model.tie_weights()
    missing = sorted(
        n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"
    )
    if missing:
        raise UnsafeBaseError(
            f"the base {folder} has no weights for {', '.join(missing[:5])}; they would be random, so it is "
            "refused: give a complete checkpoint whose config.json matches its weights"
        )
    bf16_head = bf16_output_layer(model, plan)
    return model.eval(), summary(plan, len(quantized), streamed=True, bf16_head=bf16_head)


def need(locations: dict, folder: Path, name: str) -> tuple[Path, dict, int]:
    """Where ``name`` is stored; refused when the checkpoint lacks it."""
    if name not in locations:
        raise UnsafeBaseError(
            f"the base {folder} has no weights for {name}; they would be random, so it is refused: "
            "give a complete checkpoint whose config.json matches its weights"
        )
    return locations[name]


def streams(source: str, plan: PrecisionPlan) -> bool:
    """Whether :func:`stream_backbone` loads ``source`` in ``plan``: an int8 plan (the one whose
    conversion used to peak) and a local base whose family loads through the default loader."""
    from vqa_demo.model.families.registry import tiny_family
    from vqa_demo.model.family import BackboneFamily

    folder = Path(source)
    if plan.language != "int8" or tiny_family(source) is not None or not can_stream(folder):
        return False
    from transformers import AutoConfig

    from vqa_demo.model.families.registry import family_for

    try:
        family = family_for(AutoConfig.from_pretrained(folder))
    except (AttributeError, KeyError, TypeError, ValueError):
        return False  # the regular loader refuses it with the reason
    return type(family).load_pretrained is BackboneFamily.load_pretrained


def stream_backbone(source: str, plan: PrecisionPlan):
    """The :class:`~vqa_demo.model.backbone.Backbone` of the local base ``source`` in ``plan``, streamed
    (:func:`stream_model`), with the same safety checks and processor as the regular loader."""
    from transformers import AutoConfig, AutoProcessor

    from vqa_demo.checkpoint_checks import refuse_pickles
    from vqa_demo.model.backbone import Backbone
    from vqa_demo.model.base_checks import check_weight_dtypes
    from vqa_demo.model.families.registry import family_for
    from vqa_demo.model.template_guard import check_chat_template

    folder = Path(source)
    refuse_pickles(folder)
    check_weight_dtypes(folder)
    family = family_for(AutoConfig.from_pretrained(folder))
    model, serving = stream_model(family.model_class, folder, plan, family.vision_modules)
    processor = family.fit_processor(model, AutoProcessor.from_pretrained(folder))
    check_chat_template(processor, source)
    return Backbone(model, processor, source, torch.device("cpu"), torch.float32), serving
