"""Serving on a CPU: threads, bounded forwards, int8/bf16 precision, a torch-free CLI start."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vqa_demo import evaluate as cli
from vqa_demo.config import LoraSettings
from vqa_demo.evaluation.record_files import read_predictions
from vqa_demo.model import forward, precision
from vqa_demo.model.backbone import add_lora, build_tiny_backbone
from vqa_demo.model.families.registry import tiny_sources
from vqa_demo.model.precision import (
    Bf16Linear,
    Int8Linear,
    PrecisionPlan,
    apply_precision,
    resolve_precision,
)
from vqa_demo.runtime import use_threads
from vqa_demo.testing import make_tiny_predictor

ROOT = Path(__file__).resolve().parent.parent


def test_evaluate_help_and_arguments_load_no_torch():
    code = (
        "import sys; from vqa_demo.evaluate import parse_args; "
        "a = parse_args(['--data', 'd', '--out', 'o']); "
        "print(a.threads, a.precision, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["1", "None", "False", "False"]


@pytest.mark.parametrize("precision", [None, "auto"])
def test_the_app_builds_its_page_before_any_model_code_loads(precision):
    """Importing ``app`` builds the whole page on the offline default, checking every variant's files
    (torch reads the tensors) without importing transformers, peft or the model code; the holder's
    background import brings them without loading the model, which loads on the first question."""
    code = (
        "import sys; sys.argv = ['app.py']; import app\n"
        "heavy = ('transformers', 'peft', 'accelerate', 'captum', 'vqa_demo.predictor', 'vqa_demo.model.backbone')\n"
        "print(sorted(m for m in heavy if m in sys.modules), len(app.demo.vqa_holder.infos))\n"
        "app.demo.vqa_holder.import_model_code().join()\n"
        "print(sorted(m for m in heavy if m in sys.modules), app.demo.vqa_holder.loaded)\n"
        "predictor = app.demo.vqa_holder.get()\n"
        "print(len(predictor.variants))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("VQA_PRECISION", None)
    if precision:  # the Space recipe's setting: the model card says what it resolves to
        env["VQA_PRECISION"] = precision
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    built, imported, loaded = out.stdout.split("\n")[:3]
    assert built == "[] 5"
    assert imported.startswith(
        "['accelerate', 'peft', 'transformers', 'vqa_demo.model.backbone', 'vqa_demo.predictor']"
    )
    assert imported.endswith("False") and loaded == "5"  # imported in the background, not loaded


@pytest.mark.parametrize("delay", [0.1, 0.25])
def test_a_question_during_the_background_import_waits_for_it(delay):
    """A first question while the model code is still being imported in the background loads the model
    once that import is done (asked 0.2 s after its start, it failed in transformers' lazy module)."""
    code = (
        "import sys, time; sys.argv = ['app.py']; import app\n"
        "holder = app.demo.vqa_holder\n"
        "holder.import_model_code()\n"
        f"time.sleep({delay})\n"
        "print(len(holder.get().variants))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "5"


def test_lora_config_fields_read_from_source_match_peft():
    """The start-up check's LoraConfig fields, read from peft's source, are the imported class's."""
    import dataclasses

    from peft import LoraConfig

    from vqa_demo.checkpoint_checks import LORA_CONFIG_CLASSES, _source_dataclass_fields

    fields = _source_dataclass_fields("peft", LORA_CONFIG_CLASSES)
    assert fields == {f.name for f in dataclasses.fields(LoraConfig)}
    assert {"r", "lora_alpha", "target_modules", "peft_type"} <= fields
    assert _source_dataclass_fields("peft", {"NoSuchConfig": ("config.py", ())}) is None
    assert _source_dataclass_fields("no_such_package_here", LORA_CONFIG_CLASSES) is None


FAKE_CONFIG = """
from dataclasses import InitVar, dataclass, field
from typing import ClassVar

@dataclass
class Base:
    kind: str = "x"

@dataclass
class Config(Base):
    r: int = 8
    names: list = field(default_factory=list)
    registry: ClassVar[dict] = {}
    legacy: InitVar[bool] = False
    def method(self) -> None:
        local: int = 1
"""


@pytest.mark.parametrize(
    "change, expected",
    [
        (None, {"kind", "r", "names"}),  # ClassVar, InitVar and a method's locals are not fields
        (("class Config(Base):", "class Config(Base, Extra):"), None),  # a new base may add fields
        (("@dataclass\nclass Config", "class Config"), None),  # not a dataclass
        (("    r: int = 8", "    if True:\n        r: int = 8"), None),  # a field under an if
        (
            ("class Config(Base):", "class Config(Base):\n    pass\nclass Config(Base):"),
            None,
        ),  # defined twice
    ],
)
def test_source_dataclass_fields_refuse_layouts_they_cannot_read(tmp_path, monkeypatch, change, expected):
    """Where a package's source is laid out otherwise than expected, the caller is told to import it."""
    from vqa_demo.checkpoint_checks import _source_dataclass_fields

    text = FAKE_CONFIG if change is None else FAKE_CONFIG.replace(*change)
    assert text != FAKE_CONFIG or change is None
    package = tmp_path / "fakepeft"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    classes = {"Base": ("config.py", ()), "Config": ("config.py", ("Base",))}
    fields = _source_dataclass_fields("fakepeft", classes)
    assert fields == (None if expected is None else frozenset(expected))


def test_threads_flag_sets_torch_threads():
    args = cli.parse_args(["--data", "d", "--out", "o", "--threads", "2", "--precision", "int8"])
    assert (args.threads, args.precision) == (2, "int8")
    before = torch.get_num_threads()
    try:
        assert use_threads(2) == 2 and torch.get_num_threads() == 2
        assert use_threads(0) == 2  # 0 leaves the setting alone
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="--threads"):
        use_threads(-1)


FAULT_PATTERN = """
import ctypes, resource, sys
from vqa_demo.libc import libc_function
from vqa_demo.runtime import hold_freed_memory
held = sys.argv[1] == "held" and hold_freed_memory()
# glibc's own malloc and free, so nothing else lands on the heap between blocks: with torch tensors
# a small allocation at the heap's top sometimes pins it and hides the trimming (0 to 169 k faults,
# varying with address-space randomisation).
malloc = libc_function("malloc", [ctypes.c_size_t])
malloc.restype = ctypes.c_void_p
free = libc_function("free", [ctypes.c_void_p])
def forward_like():  # a forward's temporaries: several live at once, each within glibc's heap blocks
    live = []
    for mb in (24, 8, 16, 30, 12):
        live.append(malloc(mb << 20))
        ctypes.memset(live[-1], 1, mb << 20)
    for block in live:
        free(block)
for _ in range(3):
    forward_like()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    forward_like()
print(held, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def heap_pages_are_huge() -> bool:
    """Whether heap memory may come in 2 MB pages (then there are too few faults to count)."""
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    always = thp.is_file() and "[always]" in thp.read_text()
    return always or "hugetlb" in os.environ.get("GLIBC_TUNABLES", "")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
@pytest.mark.skipif(heap_pages_are_huge(), reason="huge heap pages: faults are not per 4 KB page")
def test_held_freed_memory_stops_page_faults_of_repeated_forwards():
    """The same temporaries allocated again fault fresh pages in under glibc's defaults (90 MB freed at
    once is more than it keeps, so ten rounds fault 230 k of their 230 k pages), and almost none
    once freed memory is held (0 measured)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    faults = {}
    for mode in ("plain", "held"):
        run = subprocess.run(
            [sys.executable, "-c", FAULT_PATTERN, mode], capture_output=True, text=True, env=env, check=True
        )
        applied, count = run.stdout.split()
        faults[mode] = (applied, int(count))
    assert faults["plain"][0] == "False" and faults["held"][0] == "True"
    pages = 10 * 90 * 256
    assert faults["plain"][1] > pages // 2
    assert faults["held"][1] < pages // 20


def test_row_slices_cover_rows_within_the_budget():
    slices = forward.row_slices(10, 100, token_budget=3 * 100**2)
    assert [(s.start, s.stop) for s in slices] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert [(s.start, s.stop) for s in forward.row_slices(5, 1000, token_budget=1)] == [
        (i, i + 1) for i in range(5)
    ]
    assert len(forward.row_slices(64, 300)) == 1 + (64 - 1) // (forward.TOKEN_BUDGET // 300**2)
    # 3B widths: a 269-token SWAG row holds 269 x 9216 fp32 MLP activations (9.9 MB): three per forward
    # stay within glibc's heap-served 32 MB, where four rows (40 MB) were mapped afresh for every op.
    assert 3 * 269 * 9216 * 4 <= forward.ACTIVATION_BYTES < 4 * 269 * 9216 * 4
    slices = forward.row_slices(4, 269, width=9216)
    assert [(s.start, s.stop) for s in slices] == [(0, 3), (3, 4)]
    assert len(forward.row_slices(4, 269, width=64)) == 1  # a tiny model: attention bounds alone
    assert len(forward.row_slices(2, 4096, width=9216)) == 2  # one row at least
    # Short rows: the attention bound allows 200 per forward, the activation bound 9.
    assert forward.TOKEN_BUDGET // 100**2 >= 20 and len(forward.row_slices(20, 100)) == 1
    assert [s.stop - s.start for s in forward.row_slices(20, 100, width=9216)] == [9, 9, 2]
    # The shipped default at 257 prompt tokens (+ 64 image tokens): its MLP is narrow (512), but eager
    # attention's fp32 scores take 4 heads x 321^2 x 4 B = 1.6 MB a row: 10 rows per forward, not 19.
    assert 10 * 4 * 321**2 * 4 <= forward.SCORE_BYTES < 11 * 4 * 321**2 * 4
    assert len(forward.row_slices(64, 321, width=512)) == 4  # the attention budget alone: 19 rows
    assert [s.stop - s.start for s in forward.row_slices(64, 321, width=512, heads=4)] == [10] * 6 + [4]
    assert len(forward.row_slices(64, 40, width=512, heads=4)) == 1  # short rows: neither binds


def test_eager_attention_scores_bound_cpu_micro_batches(images, monkeypatch):
    """On the CPU a classifier's micro-batches hold at most SCORE_BYTES of eager attention scores,
    counted from the model's own heads and the rows' length, and still give the one-batch scores."""
    name = "swag-last_token"
    predictor = make_tiny_predictor(variants=(name,))
    text = predictor.backbone.core.config.get_text_config()
    assert text._attn_implementation == "eager"
    assert forward.cpu_bounds(predictor.backbone.core) == {
        "width": text.intermediate_size,
        "heads": text.num_attention_heads,
    }
    questions = ["What colour is the large shape in this picture?", "Which one?"]
    options = [["red", "green", "blue"], ["circle", "square", "star", "a long triangle"]]
    shapes = []
    hook = predictor.backbone.core.model.language_model.register_forward_hook(
        lambda module, args, kwargs, out: shapes.append(tuple(kwargs["inputs_embeds"].shape[:2])),
        with_kwargs=True,
    )
    try:
        monkeypatch.setattr(forward, "TOKEN_BUDGET", 10**12)
        whole = predictor.predict_batch(images[:2], questions, options)
        ((rows, tokens),) = shapes
        assert rows == 7 and text.num_attention_heads * tokens > text.intermediate_size
        # Room for two rows' scores: the attention budget alone would allow all seven.
        monkeypatch.setattr(forward, "SCORE_BYTES", 2 * 4 * text.num_attention_heads * tokens**2 + 1)
        shapes[:] = []
        bounded = predictor.predict_batch(images[:2], questions, options)
    finally:
        hook.remove()
    assert shapes == [(2, tokens), (2, tokens), (2, tokens), (1, tokens)]
    for a, b in zip(whole, bounded):
        np.testing.assert_allclose(a[name].option_scores, b[name].option_scores, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["swag-last_token", "swag-attentive", "multi_class-attentive"])
def test_bounded_forwards_give_the_one_batch_scores(name, images, monkeypatch):
    predictor = make_tiny_predictor(variants=(name,))
    questions = ["What colour is it?", "Which shape is shown here in the picture?", "Count them."]
    options = [["red", "green", "blue", "grey"], ["circle", "square", "a long triangle", "star"], ["1", "2"]]
    if name.startswith("multi_class"):
        options[2] = ["1", "2", "3", "4"]
    calls = []
    hook = predictor.backbone.core.model.language_model.register_forward_hook(
        lambda module, args, out: calls.append(1)
    )
    try:
        monkeypatch.setattr(forward, "TOKEN_BUDGET", 10**12)
        whole = predictor.predict_batch(images[:3], questions, options)
        one_batch_calls, calls[:] = len(calls), []
        monkeypatch.setattr(forward, "TOKEN_BUDGET", 1)  # one row per forward
        bounded = predictor.predict_batch(images[:3], questions, options)
    finally:
        hook.remove()
    rows = 3 if name.startswith("multi_class") else sum(len(o) for o in options)
    assert (one_batch_calls, len(calls)) == (1, rows)
    for a, b in zip(whole, bounded):
        np.testing.assert_allclose(a[name].option_scores, b[name].option_scores, rtol=0, atol=1e-5)
        assert a[name].choice == b[name].choice


def test_precision_plans(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", cpu).label == "int8+bf16-vision"
    assert resolve_precision("auto", cpu).outliers == resolve_precision("int8", cpu).outliers == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", cpu).label == "int8+fp32-vision"
    assert resolve_precision("auto", cpu).outliers == resolve_precision("int8", cpu).outliers == "int8-weight"
    assert resolve_precision("auto", cuda).label == "bf16"
    assert resolve_precision("fp32", cpu).load_dtype == torch.float32
    assert resolve_precision("int8", cpu).load_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="CPU precision"):
        resolve_precision("int8", cuda)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int4", cpu)


def test_int8_linear_is_close_and_keeps_fp32_adapters():
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    quantized = Int8Linear.from_linear(linear)
    x = torch.randn(3, 5, 64)
    exact = linear(x)
    error = (quantized(x) - exact).abs().max() / exact.abs().max()
    assert error < 0.03
    assert isinstance(quantized, nn.Linear) and quantized.weight.shape == (32, 64)

    backbone = build_tiny_backbone()
    summary = apply_precision(backbone.core, PrecisionPlan("int8", "int8", "fp32", "test"), ("vision_tower",))
    assert summary["quantized_linears"] > 0
    embedding = backbone.core.model.language_model.embed_tokens.weight
    assert (
        type(backbone.core.lm_head) is nn.Linear and backbone.core.lm_head.weight is embedding
    )  # still tied
    downs = [m for n, m in backbone.core.named_modules() if n.endswith("down_proj")]
    assert downs and all(isinstance(m, Int8Linear) and m.weight_only for m in downs)
    assert backbone.core.model.language_model.embed_tokens.weight.dtype == torch.float32
    assert all(type(m) is not Int8Linear for m in backbone.core.model.vision_tower.modules())
    model = add_lora(backbone, LoraSettings(init_weights=False))
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    assert lora and all(p.dtype == torch.float32 for p in lora)
    ids = torch.tensor([[2, 5, 7, 9]])
    with_adapter = model(input_ids=ids).logits
    with model.disable_adapter():
        without = model(input_ids=ids).logits
    assert (with_adapter - without).abs().max() > 1e-4  # the adapters run beside the int8 weights


def test_int8_activations_are_scaled_per_token():
    torch.manual_seed(0)
    linear = nn.Linear(64, 32, bias=False)
    x = torch.randn(4, 64)
    x[0] *= 1000.0  # one outlier row must not coarsen the others
    exact = linear(x)
    for quantized in (Int8Linear.from_linear(linear), Int8Linear.from_linear(linear, weight_only=True)):
        error = (quantized(x) - exact)[1:].abs().max() / exact[1:].abs().max()
        assert error < 0.03


@pytest.mark.parametrize("weight_only", [False, True])
def test_int8_linear_backward_is_the_dequantized_linear_maps(weight_only):
    """Attributions differentiate through the int8 layers: the gradient is that of ``x @ W.T`` with W
    the dequantized weight (torch's own autograd of that product), close to the fp32 layer's, and the
    forward is the int8 one (fbgemm's kernels have no backward of their own)."""
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    quantized = Int8Linear.from_linear(linear, weight_only=weight_only)
    weight = quantized.dequantized_weight()
    assert (weight - linear.weight).abs().max() <= linear.weight.abs().max() / 127
    x = torch.randn(3, 5, 64, requires_grad=True)
    upstream = torch.randn(3, 5, 32)
    out = quantized(x)
    with torch.no_grad():
        torch.testing.assert_close(out, quantized(x), rtol=0, atol=0)
    (out * upstream).sum().backward()
    reference = x.detach().clone().requires_grad_(True)
    (nn.functional.linear(reference, weight) * upstream).sum().backward()
    torch.testing.assert_close(x.grad, reference.grad, rtol=1e-5, atol=1e-5)
    exact = x.detach().clone().requires_grad_(True)
    (linear(exact) * upstream).sum().backward()
    assert (x.grad - exact.grad).abs().max() / exact.grad.abs().max() < 0.03


def test_attribution_through_an_int8_base_matches_fp32(images):
    """Integrated gradients of the tiny model served int8 (both outlier forms) against fp32: the
    token attributions keep their pattern (before, the gradient ran through per-row scales alone)."""
    from vqa_demo.explain.attribution import attribute
    from vqa_demo.testing import random_variant_predictor

    question, options = "What colour is the square?", ["red", "blue", "green"]

    def token_scores(plan):
        backbone = build_tiny_backbone()
        if plan is not None:
            apply_precision(backbone.core, plan, backbone.family.vision_modules)
        predictor = random_variant_predictor(backbone, variants=("swag-last_token",), seed=3)
        (result,) = attribute(predictor, [images[0]], [question], [options], "swag-last_token", targets=[1])
        return result.token_scores

    exact = token_scores(None)
    for outliers in ("int8-weight", "bf16"):
        served = token_scores(PrecisionPlan("int8", "int8", "fp32", "test", outliers=outliers))
        assert served.shape == exact.shape and np.isfinite(served).all()
        assert np.corrcoef(exact, served)[0, 1] > 0.95, outliers


@pytest.mark.parametrize("shape", [(1, 64), (1, 1, 64), (3, 5, 64)])
def test_weight_only_int8_equals_the_dequantized_weight(shape):
    """One row (a generation step: torch's int8 weight-only kernel) and many (output scaled per channel)
    both give ``x @ (q * scale).T + bias``, the weight dequantized as torch would."""
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    quantized = Int8Linear.from_linear(linear, weight_only=True)
    x = torch.randn(*shape)
    dequantized = quantized.qweight.float() * quantized.scale
    reference = nn.functional.linear(x, dequantized, quantized.bias)
    out = quantized(x)
    assert out.shape == (*shape[:-1], 32)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("native_bf16", [False, True])
def test_streamed_int8_base_equals_quantizing_after_load(native_bf16, tmp_path, monkeypatch):
    from vqa_demo.config import BackboneConfig
    from vqa_demo.loading import load_base
    from vqa_demo.model.backbone import load_backbone, save_backbone

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native_bf16)
    folder = save_backbone(build_tiny_backbone(), tmp_path / "base")
    streamed, summary = load_base(str(folder), "cpu", "int8")
    assert summary["streamed"] and summary["quantized_linears"] > 0
    assert summary["outliers"] == ("bf16" if native_bf16 else "int8-weight")
    loaded = load_backbone(BackboneConfig(source=str(folder), device="cpu", dtype="float32"))
    plan = resolve_precision("int8", torch.device("cpu"))
    after = apply_precision(loaded.core, plan, loaded.family.vision_modules)
    assert after["quantized_linears"] == summary["quantized_linears"] and not after["streamed"]
    assert after["bf16_lm_head"] == summary["bf16_lm_head"] == native_bf16
    ids = torch.tensor([[2, 5, 7, 9, 11]])
    size = loaded.processor.image_processor.size
    pixels = torch.randn(1, 3, size["height"], size["width"])
    with torch.no_grad():
        a = streamed.core.model.get_image_features(pixel_values=pixels).pooler_output
        b = loaded.core.model.get_image_features(pixel_values=pixels).pooler_output
        assert torch.equal(a, b)
        assert torch.equal(streamed.core(input_ids=ids).logits, loaded.core(input_ids=ids).logits)
    embedding = streamed.core.model.language_model.embed_tokens.weight
    assert embedding.dtype == torch.float32  # lookups stay exact
    if native_bf16:  # its own bf16 copy of the tied weight
        assert type(streamed.core.lm_head) is Bf16Linear
        assert torch.equal(streamed.core.lm_head.bf16_weight, embedding.bfloat16())
    else:
        assert streamed.core.lm_head.weight is embedding


def test_bf16_linear_is_torchs_bf16_product_and_keeps_fp32_adapters():
    """The outlier layers on a CPU with native bf16: torch's own bf16 linear, returned as fp32; the LoRA
    adapters beside it stay fp32 (peft would cast them to a floating base weight's dtype)."""
    torch.manual_seed(0)
    linear = nn.Linear(64, 32)
    layer = Bf16Linear(linear.weight, linear.bias)
    x = torch.randn(3, 5, 64)
    reference = nn.functional.linear(x.bfloat16(), linear.weight.bfloat16()).float() + linear.bias
    out = layer(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, reference, rtol=0, atol=0)
    assert (out - linear(x)).abs().max() / linear(x).abs().max() < 0.02
    outlier = x.clone()
    outlier[0, 0] *= 1000.0  # floating point: one outlier row leaves the others exact to bf16
    error = (layer(outlier) - linear(outlier))[1:].abs().max() / linear(outlier)[1:].abs().max()
    assert error < 0.02

    backbone = build_tiny_backbone()
    plan = PrecisionPlan("int8", "int8", "fp32", "test", outliers="bf16")
    summary = apply_precision(backbone.core, plan, ("vision_tower",))
    downs = [m for n, m in backbone.core.named_modules() if n.endswith("down_proj")]
    assert downs and all(type(m) is Bf16Linear for m in downs)
    assert summary["bf16_lm_head"] and type(backbone.core.lm_head) is Bf16Linear
    assert backbone.core.model.language_model.embed_tokens.weight.dtype == torch.float32
    model = add_lora(backbone, LoraSettings(init_weights=False))
    lora = [p for n, p in model.named_parameters() if "lora_" in n and "down_proj" in n]
    assert lora and all(p.dtype == torch.float32 for p in lora)
    ids = torch.tensor([[2, 5, 7, 9]])
    with_adapter = model(input_ids=ids).logits
    with model.disable_adapter():
        without = model(input_ids=ids).logits
    assert with_adapter.dtype == torch.float32 and (with_adapter - without).abs().max() > 1e-4


def test_streaming_refuses_a_base_with_nan(tmp_path):
    from safetensors.torch import load_file, save_file

    from vqa_demo.loading import load_base
    from vqa_demo.model.backbone import save_backbone
    from vqa_demo.model.base_checks import UnsafeBaseError

    folder = save_backbone(build_tiny_backbone(), tmp_path / "base")
    weights = load_file(folder / "model.safetensors")
    name = next(n for n in weights if n.endswith("down_proj.weight"))
    weights[name][0, 0] = float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(UnsafeBaseError, match="NaN"):
        load_base(str(folder), "cpu", "int8")


@pytest.mark.parametrize("requested", ["int8", "bf16"])
def test_evaluate_with_a_serving_precision_agrees_and_records_it(requested, app_assets, tmp_path):
    root = app_assets.root
    common = ["--checkpoints", str(root / "checkpoints"), "--data", str(root / "validation")]
    exact = cli.main(cli.parse_args([*common, "--out", str(tmp_path / "fp32")]))
    served = cli.main(cli.parse_args([*common, "--out", str(tmp_path / requested), "--precision", requested]))
    written = json.loads((tmp_path / requested / "metrics.json").read_text())
    assert written["precision"]["requested"] == requested and "precision" not in exact
    assert written["threads"] == 1
    exact_rows = read_predictions(tmp_path / "fp32" / "predictions.jsonl")
    served_rows = read_predictions(tmp_path / requested / "predictions.jsonl")
    same = [
        a["variants"][name]["choice"] == b["variants"][name]["choice"]
        for a, b in zip(exact_rows, served_rows)
        for name in a["variants"]
    ]
    assert len(same) > 10 and np.mean(same) >= 0.8, f"{requested} changed too many choices"
    for variant, m in served["variants"].items():
        assert abs(m["accuracy"]["accuracy"] - exact["variants"][variant]["accuracy"]["accuracy"]) <= 0.25


@pytest.mark.slow  # a benchmark run
def test_serving_benchmark_quick_writes_the_promised_keys(tmp_path):
    from benchmarks import serving

    before = torch.get_num_threads()
    try:
        code = serving.main(serving.parse_args(["--quick", "--json", str(tmp_path / "serving.json")]))
    finally:
        torch.set_num_threads(before)
    assert code == 0
    data = json.loads((tmp_path / "serving.json").read_text())
    for key in ("cond_gen_4_options_s", "all_variants_s", "peak_rss_mb", "running_rss_mb", "threads",
                "precision", "default_accuracy_fp32", "default_accuracy_quantized", "default_same_choice"):  # fmt: skip
        assert key in data, key
    assert data["precision"].startswith("int8")
    assert data["running_rss_mb"] > 0 and data["peak_rss_mb"] > 0
    for swag in (data["bounded_swag"], data["bounded_swag_default"]):
        assert swag["max_abs_diff"] < 1e-4 and swag["micro_batches"] > 1
    # The shipped default's long rows: 64 image + about 256 prompt tokens, bounded by their scores,
    # measured in a process per allocator setting.
    swag = data["bounded_swag_default"]
    assert 250 <= swag["prompt_tokens"] <= 270 and swag["rows"] == 16
    assert swag["held_memory"]["held_freed_memory"] is (platform.libc_ver()[0] == "glibc")
    assert swag["default_allocator"]["held_freed_memory"] is False
    assert swag["held_memory"]["micro_batches"] == swag["micro_batches"] > 1


@pytest.mark.parametrize("native_bf16", [False, True])
def test_model_card_states_the_serving_precision(native_bf16, app_assets, monkeypatch):
    from vqa_demo.ui.holder import check_variants
    from vqa_demo.ui.model_card import build_model_card, card_markdown

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native_bf16)
    checkpoints = [app_assets.root / "checkpoints"]
    infos, _ = check_variants(checkpoints)
    plain = card_markdown(build_model_card(infos, None, checkpoints))
    served = card_markdown(build_model_card(infos, None, checkpoints, precision="int8", device="cpu"))
    assert "Serving precision" not in plain
    assert "**Serving precision:** `int8+fp32-vision` (requested `int8`" in served
    if native_bf16:
        assert "outlier channels, and the LM head (where the model exposes one" in served
    else:
        assert "keep int8 weights with fp32 activations, and the LM head stays fp32" in served


@pytest.mark.parametrize("source", [s for s in tiny_sources() if s != "tiny:vilt"])
def test_bf16_outliers_serve_every_decoder_family_close_to_fp32(source, images):
    """The int8 plan of a CPU with native bf16 on each family's tiny model (ViLT has no COND_GEN to
    compare): every variant answers, its option scores stay near fp32's, and where the family has a
    ``down_proj`` it is computed in bf16."""
    from vqa_demo.testing import random_variant_predictor

    question, options = "What is shown here?", ["a cat", "a dog", "a bird"]
    exact = random_variant_predictor(build_tiny_backbone(source=source), seed=1).predict(
        images[0], question, options
    )
    backbone = build_tiny_backbone(source=source)
    language = precision.language_linears(backbone.core, backbone.family.vision_modules)
    outliers = [n for n in language if precision.is_outlier_layer(n)]
    assert outliers or source == "tiny:blip", "a decoder family without down_proj"
    plan = PrecisionPlan("int8", "int8", "fp32", "test", outliers="bf16")
    has_head = type(backbone.core.get_output_embeddings()) is nn.Linear
    summary = apply_precision(backbone.core, plan, backbone.family.vision_modules)
    assert summary["quantized_linears"] > 0 and summary["bf16_lm_head"] == has_head
    assert has_head == (type(backbone.core.get_output_embeddings()) is Bf16Linear)
    layers = dict(backbone.core.named_modules())
    assert all(type(layers[n]) is Bf16Linear for n in outliers)
    served = random_variant_predictor(backbone, seed=1).predict(images[0], question, options)
    assert set(served) == set(exact)
    for name in exact:
        assert np.abs(exact[name].option_scores - served[name].option_scores).max() < 0.15, name
