"""Optimised variants: built from fp32, verified on held-out rows, served only if they pass,
and selectable per request so that a user can compare."""

from __future__ import annotations

import pytest
import torch
from conftest import production_copy
from tuneserve.registry import connect
from tuneserve.settings import VariantSettings
from tuneserve.tasks.classification import ClassificationItem, ClassificationRow
from tuneserve.tasks.handlers import by_size, onnx_runtime, variants
from tuneserve.tasks.handlers.by_size import BY_SIZE, ByBatchSize, Candidate, Speed
from tuneserve.tasks.handlers.cpu import cpu_multiplies_bfloat16
from tuneserve.tasks.handlers.onnx_runtime import OnnxRuntimeModel
from tuneserve.tasks.handlers.variants import as_variant, fingerprint, served_variant, verify
from tuneserve.tasks.ner import NerItem
from tuneserve.tasks.qa import QaItem
from tuneserve.zoo.recipes import RECIPES


def _linears(model: torch.nn.Module) -> list[str]:
    return sorted({type(m).__module__ for m in model.modules() if "Linear" in type(m).__name__})


@pytest.fixture(scope="module")
def heldout() -> list[ClassificationRow]:
    rows = RECIPES["sentiment"].data.generate("heldout", 120, seed=5)
    return [ClassificationRow(**row) for row in rows]


def test_int8_is_a_quantised_copy_and_leaves_fp32_as_it_was(load_handler):
    fp32 = load_handler("sentiment")
    int8 = as_variant(fp32, "int8")
    assert any("quantized" in name for name in _linears(int8.model))
    assert not any("quantized" in name for name in _linears(fp32.model))
    items = [ClassificationItem(text=t) for t in ("A wonderful film.", "Dull and far too long.")]
    assert [o.label for o in int8.predict(items)] == [o.label for o in fp32.predict(items)]


def test_bf16_is_a_bfloat16_copy_whose_head_stays_fp32(load_handler):
    fp32 = load_handler("sentiment")
    bf16 = as_variant(fp32, "bf16")
    dtypes = {name: p.dtype for name, p in bf16.model.named_parameters()}
    assert dtypes["bert.encoder.layer.0.attention.self.query.weight"] == torch.bfloat16
    assert dtypes["classifier.weight"] == dtypes["bert.pooler.dense.weight"] == torch.float32
    assert {p.dtype for p in fp32.model.parameters()} == {torch.float32}
    items = [ClassificationItem(text=t) for t in ("A wonderful film.", "Dull and far too long.")]
    assert bf16.forward(bf16.preprocess(items)).dtype == torch.float32  # scores: fp32 precision
    assert [o.label for o in bf16.predict(items)] == [o.label for o in fp32.predict(items)]


# items of different lengths: a batch with padding, longer than the export's example
ENCODER_ITEMS = {
    "sentiment": [
        ClassificationItem(text="A wonderful film, with a cast that plays every scene well."),
        ClassificationItem(text="Dull."),
    ],
    "entities": [
        NerItem(text="Maria Schmidt flew from Berlin to Lisbon on Monday."),
        NerItem(text="Hi"),
    ],
    "qa": [
        QaItem(question="Where does Anna work?", context="Anna works at a bakery in Porto. " * 4),
        QaItem(question="Who?", context="Nobody said."),
    ],
}


@pytest.mark.parametrize("name", list(ENCODER_ITEMS))
def test_onnx_computes_what_fp32_computes_for_every_encoder_task(load_handler, name):
    """Same precision, same model: the scores match to float rounding. A graph exported with
    its inputs crossed (the attention mask fed in as token types) fails this by 1e-2."""
    fp32 = load_handler(name)
    onnx = as_variant(fp32, "onnx")
    assert isinstance(onnx.model, OnnxRuntimeModel) and onnx.device == fp32.device
    batch = fp32.preprocess(ENCODER_ITEMS[name])
    with torch.inference_mode():
        expected, got = fp32.forward(batch), onnx.forward(batch)
    for a, b in zip(_tensors(expected), _tensors(got), strict=True):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_onnx_int8_quantises_the_graph_and_keeps_the_decisions(load_handler):
    fp32 = load_handler("sentiment")
    int8 = as_variant(fp32, "onnx-int8")
    items = ENCODER_ITEMS["sentiment"]
    batch = fp32.preprocess(items)
    with torch.inference_mode():
        expected, got = fp32.forward(batch), int8.forward(batch)
    assert not torch.allclose(got, expected, atol=1e-6)  # int8 arithmetic, not fp32's
    torch.testing.assert_close(got, expected, atol=0.05, rtol=0)
    assert [o.label for o in int8.predict(items)] == [o.label for o in fp32.predict(items)]


def test_onnx_graphs_are_cached_by_what_they_are_built_from(load_handler, tmp_path, monkeypatch):
    """Verification builds the graph a replica then loads; int8 reuses the fp32 graph; and
    changed weights never meet a stale graph."""
    monkeypatch.setattr(onnx_runtime, "CACHE", tmp_path)
    fp32 = load_handler("sentiment")
    batch = fp32.preprocess(ENCODER_ITEMS["sentiment"])
    first = as_variant(fp32, "onnx")
    as_variant(fp32, "onnx-int8")
    graphs = sorted(p.name for p in tmp_path.glob("*.onnx"))
    assert [name.rsplit("-", 1)[1] for name in graphs] == ["fp32.onnx", "int8.onnx"]
    again = as_variant(fp32, "onnx")
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == graphs
    with torch.inference_mode():
        torch.testing.assert_close(again.forward(batch), first.forward(batch))
        fp32.model.classifier.bias += torch.tensor([2.0, -2.0])
        changed = as_variant(fp32, "onnx")
        torch.testing.assert_close(changed.forward(batch), fp32.forward(batch))
    assert len(list(tmp_path.glob("*.onnx"))) == 3


def _tensors(output: torch.Tensor | tuple) -> tuple[torch.Tensor, ...]:
    return output if isinstance(output, tuple) else (output,)


def test_verify_scores_fp32_and_each_variant_on_the_same_rows(load_handler, heldout):
    handler = load_handler("sentiment")
    metrics, verdicts = verify(handler, heldout, VariantSettings(min_speedup=0))
    assert metrics == handler.evaluate(heldout)  # fp32's own metrics, unchanged
    assert set(verdicts) - {BY_SIZE} == {"int8", "bf16", "onnx", "onnx-int8"}
    if mixed := verdicts.get(BY_SIZE):  # two passed, each fastest at one shape (below)
        assert verdicts[mixed["small"]]["serve"] and verdicts[mixed["large"]]["serve"]
        assert mixed["speedup"] >= max(
            verdicts[mixed["small"]]["speedup"], verdicts[mixed["large"]]["speedup"]
        )
    if not cpu_multiplies_bfloat16():  # this CPU would emulate it (the next test)
        assert verdicts.pop("bf16")["reason"].startswith("not tried")
    for verdict in verdicts.values():
        assert verdict["items"] == len(heldout) and verdict["metric"] == "accuracy"
        assert verdict["fp32"] == metrics["accuracy"]
        assert verdict["agreement"] >= 0.99 and verdict["serve"], verdict
    fastest = max(verdicts, key=lambda kind: verdicts[kind]["speedup"])
    assert served_variant(verdicts) == fastest


@pytest.mark.parametrize("native", [True, False])
def test_bf16_is_tried_only_where_the_cpu_multiplies_it(load_handler, heldout, monkeypatch, native):
    """Emulated bf16 runs at a fraction of fp32's speed: scoring it would only cost time.
    The probe is patched, as one machine has one CPU."""
    monkeypatch.setattr(variants, "cpu_multiplies_bfloat16", lambda: native)
    settings = VariantSettings(kinds=["bf16"], min_speedup=0)
    _, verdicts = verify(load_handler("sentiment"), heldout, settings)
    verdict = verdicts["bf16"]
    if native:
        assert verdict["serve"] and verdict["items"] == len(heldout), verdict
    else:
        assert verdict == {
            "serve": False,
            "reason": "not tried: this CPU has no bfloat16 units (AMX or AVX-512 BF16), and "
            "emulated bfloat16 runs at a fraction of fp32's speed",
        }
        assert served_variant(verdicts) == "fp32"
    printed = fingerprint(settings)
    monkeypatch.setattr(variants, "cpu_multiplies_bfloat16", lambda: not native)
    assert fingerprint(settings) != printed  # another CPU: a cached verdict is reached again


def test_speed_is_timed_in_batches_and_alone(load_handler, heldout, monkeypatch):
    """A replica serves both shapes: a verdict's speed-up weighs each (README: bf16 on AMX
    is fast in batches only)."""
    handler = load_handler("sentiment")
    items, shapes, predict = handler.items_of(heldout), [], handler.predict
    monkeypatch.setattr(handler, "predict", lambda some: shapes.append(len(some)) or predict(some))
    outputs, speed = variants._predicted(handler, items)
    assert len(outputs) == len(items) and speed.batched > 0 and speed.alone > 0
    batches = [min(32, len(items) - start) for start in range(0, len(items), 32)]
    alone = [1] * min(variants.ALONE, len(items))
    assert shapes == [1, *batches, *alone]  # a warm-up, every item in batches, some alone


def test_by_size_runs_small_batches_on_one_variant_and_large_on_the_other(load_handler, heldout):
    handler = load_handler("sentiment")
    items = handler.items_of(heldout)[:8]
    mixed = {BY_SIZE: {"small": "onnx", "large": "int8", "from_rows": 4}}
    both = as_variant(handler, BY_SIZE, mixed)
    assert isinstance(both.model, ByBatchSize) and both.model.config is not None
    onnx, int8 = as_variant(handler, "onnx"), as_variant(handler, "int8")
    for size, ran_on in [(1, onnx), (3, onnx), (4, int8), (8, int8)]:
        assert both.predict(items[:size]) == ran_on.predict(items[:size]), size
    assert both.predict(items[:1]) != int8.predict(items[:1])  # the forms do differ
    with pytest.raises(ValueError, match="needs its verdict"):
        as_variant(handler, BY_SIZE, {})


def test_by_size_is_verdicted_where_two_passing_variants_win_at_different_sizes(
    load_handler, monkeypatch
):
    """Which variant wins at which size is the hardware's: the per-size clock is patched
    (each candidate's handler stands for its kind), so that each case reads the same on any
    machine."""
    spec = load_handler("sentiment").spec
    verdict = {"serve": True, "metric": "accuracy", "fp32": 0.9, "items": 9}
    passed = {
        "onnx": Candidate("onnx", Speed(3.0, 4.0), verdict | {"value": 0.9, "agreement": 0.995}),
        "bf16": Candidate("bf16", Speed(1.0, 10.0), verdict | {"value": 0.89, "agreement": 1}),
    }
    onnx_clock = dict.fromkeys(by_size.SIZES, 1.0)
    clock = {"onnx": onnx_clock, "bf16": {2: 3, 4: 2, 8: 0.9, 16: 0.5, 32: 0.4}}
    monkeypatch.setattr(by_size, "_per_item", lambda kind, items: clock[kind])
    mixed = by_size.verdict(spec, Speed(batched=3.0, alone=10.0), passed, ["items"])
    assert mixed["serve"] and mixed["small"] == "onnx" and mixed["large"] == "bf16"
    assert mixed["from_rows"] == 8  # the first size timed at which bf16 is as fast
    assert (mixed["speedup_batched"], mixed["speedup_alone"], mixed["speedup"]) == (3, 2.5, 2.6)
    assert (mixed["value"], mixed["agreement"]) == (0.89, 0.995)  # the worse part's
    parts = {kind: candidate.verdict | {"speedup": 1.5} for kind, candidate in passed.items()}
    assert served_variant({**parts, BY_SIZE: mixed}) == BY_SIZE

    clock["bf16"] = dict.fromkeys(by_size.SIZES, 1.5)  # the one fastest alone stays ahead
    assert by_size.verdict(spec, Speed(3.0, 10.0), passed, ["items"]) is None
    both_ways = {"onnx": Candidate("onnx", Speed(0.5, 4.0), verdict), "bf16": passed["bf16"]}
    assert by_size.verdict(spec, Speed(3.0, 10.0), both_ways, ["items"]) is None
    assert by_size.verdict(spec, Speed(3.0, 10.0), {}, ["items"]) is None


def test_a_variant_that_misses_a_threshold_does_not_serve_and_says_why(load_handler, heldout):
    strict = VariantSettings(kinds=["int8"], min_speedup=1000.0, min_agreement=1.0)
    _, verdicts = verify(load_handler("sentiment"), heldout, strict)
    verdict = verdicts["int8"]
    assert not verdict["serve"] and "fp32's speed (at least 1000.0x)" in verdict["reason"]
    assert served_variant(verdicts) == "fp32"


def test_tasks_without_variants_get_none(load_handler):
    translation = load_handler("translate-en-de")
    rows = RECIPES["translate-en-de"].data.generate("heldout", 4, seed=5)
    spec = translation.spec
    metrics, verdicts = verify(translation, [spec.Row(**r) for r in rows], VariantSettings())
    assert verdicts == {} and metrics


def test_starter_builds_record_their_verdicts(starter_models, zoo_settings):
    """Verdicts from other thresholds or another builder's code (or none: a build from before
    variants) are reached again for the cached model, in seconds, without a rebuild."""
    assert set(starter_models["sentiment"].variants) - {BY_SIZE} == set(VariantSettings().kinds)
    assert starter_models["chat"].variants == {}
    expected = fingerprint(zoo_settings.tasks.variants)
    assert {report.variants_fingerprint for report in starter_models.values()} == {expected}
    assert fingerprint(VariantSettings(min_agreement=0.5)) != expected


# --- served ----------------------------------------------------------------------------
def test_a_request_gets_the_verified_variant_or_the_one_it_names(
    ready_service, http, service_settings
):
    model = production_copy(service_settings, "sentiment", "variant-sentiment", "classification")
    registry, _ = connect(service_settings.registry)
    verdicts = registry.get_version(model, 1).variants
    registry.engine.dispose()
    texts = ["A wonderful film.", "Dull and far too long.", "I loved every minute."]
    served = http.post("/v1/classify", json={"inputs": texts, "model": model}).json()
    assert served["variant"] == served_variant(verdicts)
    kinds = ["fp32", *VariantSettings().kinds]
    named = {
        kind: http.post(
            "/v1/classify", json={"inputs": texts, "model": model, "variant": kind}
        ).json()
        for kind in kinds
    }
    assert [answer["variant"] for answer in named.values()] == kinds
    labels = {kind: [r["label"] for r in answer["results"]] for kind, answer in named.items()}
    assert all(found == labels["fp32"] for found in labels.values()), labels
    listed = http.get(f"/v1/models/{model}/versions").json()["data"]
    assert listed[0]["variants"] == verdicts and set(verdicts) - {BY_SIZE} == set(kinds[1:])


def test_an_unknown_variant_is_a_422_naming_the_field(ready_service, http):
    refused = http.post("/v1/classify", json={"inputs": "Fine.", "variant": "fp8"})
    assert refused.status_code == 422
    assert refused.json()["error"]["param"] == "variant"


def test_a_variant_of_a_task_without_variants_is_a_400_naming_the_field(ready_service, http):
    """Translation and chat are decoders: no variant of theirs is built, verified or run."""
    refused = http.post("/v1/translate", json={"inputs": "The dog.", "variant": "onnx"})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "variant"
    assert "translation model" in refused.json()["error"]["message"]
    assert http.post("/v1/translate", json={"inputs": "The dog.", "variant": "fp32"}).is_success


def test_a_version_verified_by_size_serves_by_size_and_others_refuse_it(
    ready_service, http, service_settings
):
    """Whether the starter's own verification finds a mix depends on the machine: one copy
    is recorded with a ``by-size`` verdict, another without, to serve and refuse it."""
    mixed = {"serve": True, "speedup": 100.0, "small": "onnx", "large": "int8", "from_rows": 2}
    model = production_copy(
        service_settings,
        "sentiment",
        "mixed-sentiment",
        "classification",
        lambda v: v | {BY_SIZE: mixed},
    )
    texts = ["A wonderful film.", "Dull and far too long.", "I loved every minute."]
    for inputs in (texts[:1], texts):  # one row: onnx; three: int8
        served = http.post("/v1/classify", json={"inputs": inputs, "model": model}).json()
        fp32 = http.post(
            "/v1/classify", json={"inputs": inputs, "model": model, "variant": "fp32"}
        ).json()
        assert served["variant"] == BY_SIZE, served
        assert [r["label"] for r in served["results"]] == [r["label"] for r in fp32["results"]]
    unmixed = production_copy(
        service_settings,
        "sentiment",
        "unmixed-sentiment",
        "classification",
        lambda v: {k: v[k] for k in v if k != BY_SIZE},
    )
    body = {"inputs": texts, "model": unmixed, "variant": BY_SIZE}
    refused = http.post("/v1/classify", json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "variant"
    assert f"was not verified for {unmixed}@1" in refused.json()["error"]["message"]
