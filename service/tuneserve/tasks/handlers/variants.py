"""Optimised variants of a version, and their verification against its fp32 weights.

A variant is made from the version's own fp32 weights when it loads (int8 dynamic
quantisation takes well under a second for an encoder), so it needs no artifact of its own:
what is stored, in the version's record, is the verdict. ``verify`` scores each variant on
the same held-out rows as fp32 and serves it only if its primary metric is within the
tolerance, its outputs agree with fp32's on enough items, and it is faster. A verdict is
kept for every variant of the settings, served, refused or not tried on this hardware, so
that ``/v1/models/{name}/versions`` shows why a version serves what it serves.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pydantic import BaseModel

from tuneserve.settings.sections import VariantSettings
from tuneserve.tasks.handlers import by_size, onnx_runtime
from tuneserve.tasks.handlers.base import TaskHandler
from tuneserve.tasks.handlers.by_size import BY_SIZE, ByBatchSize, Candidate, Speed
from tuneserve.tasks.handlers.cpu import cpu_multiplies_bfloat16
from tuneserve.tasks.handlers.onnx_runtime import onnx_model
from tuneserve.tasks.spec import TaskSpec

FP32 = "fp32"  # the version as trained: always servable, the reference of every verdict
ALONE = 32  # items a verdict times one at a time (beside every item in batches of 32)


def _int8(handler: TaskHandler) -> torch.nn.Module:
    """``handler``'s model (a copy) with its encoder's linear layers quantised to
    int8 dynamically: weights per output channel, activations per batch; CPU only (fbgemm /
    qnnpack kernels).

    The task's head and the pooler stay fp32: they are a sliver of
    the work and decide the answer. Measured on the full sentiment starter's 1,000 held-out
    rows: per-tensor weights over every linear layer lost 0.8 points of accuracy and agreed
    with fp32 on 95.4% of items; this, 0.2 points and 97.4%, at the same 2.3-2.4x speed.
    """
    model, skipped = copy.deepcopy(handler.model), (*handler.head_modules, "pooler")
    layers = {
        name: torch.ao.quantization.per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and not any(part in skipped for part in name.split("."))
    }
    with warnings.catch_warnings():  # torch.ao's eager API is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            model, layers, dtype=torch.qint8, inplace=True
        )


def _bf16(handler: TaskHandler) -> torch.nn.Module:
    """``handler``'s model (a copy) in bfloat16, but for the task's head and the pooler,
    which stay fp32 and are fed fp32: the scores keep their precision.

    Fast where the CPU has bf16 matrix units (AMX, AVX-512 BF16: oneDNN runs the matmuls
    there) or on a GPU; elsewhere several times slower than fp32, and not tried there.
    Measured on the full sentiment starter's 1,000 held-out rows on a Xeon with AMX: +0.1
    points, agreement with fp32 99.9%, 2.96x fp32's speed (int8 there: 97.3%, 1.8x).
    """
    model = copy.deepcopy(handler.model).to(torch.bfloat16)
    for name, module in model.named_modules():
        if name.split(".")[-1] in (*handler.head_modules, "pooler"):
            module.float()
            module.register_forward_pre_hook(_floating_as_fp32)
    return model


def _floating_as_fp32(module: torch.nn.Module, args: tuple) -> tuple:
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _onnx(handler: TaskHandler) -> torch.nn.Module:
    """The model run by ONNX Runtime, fp32, its graph fused (``onnx_runtime``). Measured
    on a MiniLM-L6 classifier on a 2-core AVX2 EPYC: 1.8x torch fp32's speed in batches of
    32, and agreeing with it, since it computes the same thing in the same precision."""
    return onnx_model(handler, int8=False)


def _onnx_int8(handler: TaskHandler) -> torch.nn.Module:
    """The fused ONNX graph with int8 weights, head and pooler kept fp32: 2.5x torch fp32
    on the same machine, with int8's loss of agreement."""
    return onnx_model(handler, int8=True)


BUILDERS: dict[str, Callable[[TaskHandler], torch.nn.Module]] = {
    "int8": _int8,
    "bf16": _bf16,
    "onnx": _onnx,
    "onnx-int8": _onnx_int8,
}


def fingerprint(settings: VariantSettings) -> str:
    """What a verdict depends on besides the model: the thresholds, each builder's code and
    which kinds this CPU tries (a cached verdict with another print is reached again)."""
    builders = [inspect.getsource(BUILDERS[kind]) for kind in settings.kinds]
    builders += [inspect.getsource(_predicted), inspect.getsource(by_size)]  # speed, mixing
    if any(kind.startswith("onnx") for kind in settings.kinds):
        builders.append(inspect.getsource(onnx_runtime))
    tried = [kind for kind in settings.kinds if not _not_worth_trying(kind)]
    text = json.dumps([settings.model_dump(), builders, tried], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def as_variant(
    handler: TaskHandler, kind: str, verdicts: dict[str, dict] | None = None
) -> TaskHandler:
    """``handler`` as variant ``kind``: a new handler over a converted copy of its model
    (``by-size``: copies as two variants, mixed as its verdict in ``verdicts`` says)."""
    if kind == FP32:
        return handler
    if handler.device.type != "cpu":
        raise ValueError(f"variant {kind!r} runs on CPU only; this model is on {handler.device}")
    if kind == BY_SIZE:
        mix = (verdicts or {}).get(BY_SIZE)
        if mix is None:
            raise ValueError("variant 'by-size' needs its verdict: none was recorded")
        small, large = BUILDERS[mix["small"]](handler), BUILDERS[mix["large"]](handler)
        model = ByBatchSize(small, large, mix["from_rows"])
    else:
        model = BUILDERS[kind](handler)
    return type(handler)(
        model, handler.tokenizer, max_length=handler.max_length, options=handler.options
    )


def served_variant(verdicts: dict[str, dict]) -> str:
    """The variant a version serves by default: the fastest one verified, else fp32."""
    passed = [(v["speedup"], kind) for kind, v in verdicts.items() if v.get("serve")]
    return max(passed)[1] if passed else FP32


# --- verification ------------------------------------------------------------------------
def verify(
    handler: TaskHandler, rows: Sequence[BaseModel], settings: VariantSettings
) -> tuple[dict[str, Any], dict[str, dict]]:
    """fp32's metrics on ``rows``, and a verdict per variant of ``settings.kinds`` (and a
    ``by-size`` one where two that passed are each fastest at one shape: ``by_size``).

    Each model runs the task's own ``evaluate`` on the rows (the metrics), then predicts
    the request items that ask for them, as a replica would (the agreement and the time).
    """
    metrics = handler.evaluate(rows)
    if handler.spec.name not in settings.tasks or handler.device.type != "cpu":
        return metrics, {}
    items = handler.items_of(rows)
    reference = (metrics, *_predicted(handler, items))
    verdicts, passed = {}, {}
    for kind in settings.kinds:
        if reason := _not_worth_trying(kind):
            verdicts[kind] = {"serve": False, "reason": reason}
            continue
        variant = as_variant(handler, kind)
        scored = (variant.evaluate(rows), *_predicted(variant, items))
        verdicts[kind] = _verdict(handler.spec, reference, scored, settings)
        if verdicts[kind]["serve"]:
            passed[kind] = Candidate(variant, scored[2], verdicts[kind])
    if mixed := by_size.verdict(handler.spec, reference[2], passed, items):
        verdicts[BY_SIZE] = mixed
    return metrics, verdicts


def _not_worth_trying(kind: str) -> str | None:
    """Why ``kind`` is not tried on this machine, or None. bf16 where the CPU emulates it
    ran at 0.17-0.23x fp32's speed (a 2-core AVX2 EPYC): the speed rule refused it every
    time, after scoring every row at a fifth of fp32's speed."""
    if kind == "bf16" and not cpu_multiplies_bfloat16():
        return (
            "not tried: this CPU has no bfloat16 units (AMX or AVX-512 BF16), and emulated "
            "bfloat16 runs at a fraction of fp32's speed"
        )
    return None


def _predicted(handler: TaskHandler, items: list) -> tuple[list, Speed]:
    """Outputs for ``items`` in batches of 32, and the seconds an item takes, on average,
    served in such a batch and served alone (after a warm-up).

    Both shapes, since a replica serves both: batches under load, one item at a time when
    requests come one by one. Timed on batches alone, a variant whose matrix kernels only
    gain on large batches (bf16 on AMX: 2.9x fp32 in batches of 32, 1.0x on one sentence)
    beat one that gains on every request (ONNX Runtime there: 0.9x and 2.3x), and served
    lone requests slower than the other would have.
    """
    handler.predict(items[:1])
    started = time.perf_counter()
    outputs = handler.predict_in_chunks(items, 32)
    in_batches = (time.perf_counter() - started) / max(len(items), 1)
    alone = items[:ALONE]
    started = time.perf_counter()
    for item in alone:
        handler.predict([item])
    return outputs, Speed(in_batches, (time.perf_counter() - started) / max(len(alone), 1))


def _verdict(
    spec: TaskSpec,
    fp32: tuple[dict, list, Speed],
    variant: tuple[dict, list, Speed],
    settings: VariantSettings,
) -> dict[str, Any]:
    (reference, reference_outputs, reference_speed), (scores, outputs, speed) = fp32, variant
    agreeing = sum(
        _decisions(a) == _decisions(b) for a, b in zip(reference_outputs, outputs, strict=True)
    )
    agreement = agreeing / max(len(outputs), 1)
    metric = spec.primary_metric
    drop_points = -100 * spec.gain(metric, float(scores[metric]), float(reference[metric]))
    speedups = speed.speedups(reference_speed)
    speedup = speedups["speedup"]
    problems = []
    if drop_points > settings.tolerance_points:
        limit = settings.tolerance_points
        problems.append(f"{metric} {drop_points:.2f} points below fp32 (at most {limit})")
    if agreement < settings.min_agreement:
        least = settings.min_agreement
        problems.append(f"agrees with fp32 on {agreement:.1%} of items (at least {least:.0%})")
    if speedup < settings.min_speedup:
        problems.append(f"{speedup:.2f}x fp32's speed (at least {settings.min_speedup}x)")
    return {
        "serve": not problems,
        "reason": "; ".join(problems) or "within tolerance, agreeing and faster: serves",
        "metric": metric,
        "fp32": float(reference[metric]),
        "value": float(scores[metric]),
        "agreement": round(agreement, 4),
        **{name: round(ratio, 2) for name, ratio in speedups.items()},
        "items": len(outputs),
    }


def _decisions(output: BaseModel) -> Any:
    """An output without its scores: what a user acts on (labels, spans, entities)."""
    return _without_floats(output.model_dump())


def _without_floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_floats(v) for k, v in value.items() if not isinstance(v, float)}
    if isinstance(value, list):
        return [_without_floats(v) for v in value if not isinstance(v, float)]
    return value
