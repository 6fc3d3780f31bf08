"""LoRA versions of every task. In-process: adapters learn, store small, load back exactly,
share one base in a replica's AdapterHost, and merge into full weights. Over HTTP: one real
LoRA job through Ray Train, served on its base, then merged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import production_copy
from test_fine_tuning import create_job, upload, wait_for
from tuneserve.registry import connect
from tuneserve.tasks.catalog import builtin_catalog
from tuneserve.tasks.handlers import lora
from tuneserve.tasks.lora import LoraParameters
from tuneserve.zoo.recipes import RECIPES

MODELS = ["sentiment", "entities", "qa", "translate-en-de", "chat"]
ITEMS = {
    "translate-en-de": {"text": "The woman buys the book.", "max_new_tokens": 12},
    "chat": {
        "messages": [{"role": "user", "content": "Hello!"}],
        "max_tokens": 12,
        "temperature": 0,
    },
}
LEARNING_RATE = 1e-2  # a few steps must move the adapters visibly


def _batch(handler, name: str, n: int = 8, seed: int = 99):
    recipe = RECIPES[name]
    rows = [recipe.spec.Row(**row) for row in recipe.data.generate("train", n, seed=seed)]
    return handler.collate(handler.training_features(rows))


def _loss(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(**batch).loss)


def _train(handler, batch, steps: int = 3) -> None:
    trainable = [p for p in handler.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LEARNING_RATE)
    handler.model.train()
    for _ in range(steps):
        handler.model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    handler.model.eval()


def _trained_adapter(load_handler, name: str, folder: Path, seed: int = 99):
    """A LoRA handler of the starter ``name`` trained a few steps and saved to ``folder``."""
    handler = load_handler(name)
    lora.attach(handler, LoraParameters(r=4, alpha=8, dropout=0.0))
    batch = _batch(handler, name, seed=seed)
    _train(handler, batch)
    handler.save(folder)
    return handler, batch


@pytest.mark.parametrize("name", MODELS)
def test_an_adapter_learns_stores_small_and_loads_back_exactly(
    name, load_handler, zoo_settings, tmp_path
):
    base_dir = zoo_settings.zoo.dir / name
    frozen = {k: v.clone() for k, v in load_handler(name).model.state_dict().items()}
    handler = load_handler(name)
    lora.attach(handler, LoraParameters(r=4, alpha=8, dropout=0.0))
    batch = _batch(handler, name)
    before = _loss(handler.model, batch)
    _train(handler, batch)
    assert _loss(handler.model, batch) < before
    handler.save(tmp_path)

    assert (tmp_path / "adapter_config.json").is_file() and not (
        tmp_path / "model.safetensors"
    ).exists()
    full = (base_dir / "model.safetensors").stat().st_size
    assert lora.adapter_bytes(tmp_path) < full / 4, (lora.adapter_bytes(tmp_path), full)
    # the base's own weights did not move: only adapters (and a head, trained whole) did
    base_weights = handler.model.get_base_model().state_dict()
    for key, value in frozen.items():
        if key in base_weights and not key.startswith(handler.head_modules):
            assert torch.equal(base_weights[key], value), key

    loaded = lora.open_version(type(handler), tmp_path, base_dir, max_length=128)
    assert _loss(loaded.model, batch) == pytest.approx(_loss(handler.model, batch), abs=1e-5)


def test_one_base_carries_many_adapters_each_answering_as_alone(
    load_handler, zoo_settings, tmp_path
):
    base_dir = zoo_settings.zoo.dir / "sentiment"
    folders = [tmp_path / "a", tmp_path / "b"]
    batch = None
    for seed, folder in zip((1, 2), folders, strict=True):
        _, batch = _trained_adapter(load_handler, "sentiment", folder, seed=seed)
    handler_class = type(load_handler("sentiment"))
    alone = [lora.open_version(handler_class, f, base_dir, max_length=128) for f in folders]
    host = lora.AdapterHost(handler_class, max_length=128)
    views = [host.add(f"m@{i}", base_dir, f) for i, f in enumerate(folders)]
    assert host.bases() == 1

    def logits(handler):
        with torch.inference_mode():
            return handler.model(**batch).logits

    # interleaved, as batches of two versions reach one replica's model thread
    for view, single in [
        *zip(views, alone, strict=True),
        *zip(views[::-1], alone[::-1], strict=True),
    ]:
        assert torch.allclose(logits(view), logits(single), atol=1e-6)
    assert not torch.allclose(logits(views[0]), logits(views[1]), atol=1e-3)

    host.release("m@0")
    assert host.bases() == 1 and torch.allclose(logits(views[1]), logits(alone[1]), atol=1e-6)
    # a request still queued for the released version reloads its adapter and is right
    assert torch.allclose(logits(views[0]), logits(alone[0]), atol=1e-6)
    host.release("m@1")
    host.release("m@0")
    assert host.bases() == 0


@pytest.mark.parametrize("name", ["translate-en-de", "chat"])
def test_generating_tasks_decode_through_a_shared_base(name, load_handler, zoo_settings, tmp_path):
    """Generation (a KV cache, ``generate``) runs through a shared base's view as through
    the adapter loaded alone."""
    handler, _ = _trained_adapter(load_handler, name, tmp_path)
    base_dir = zoo_settings.zoo.dir / name
    item = handler.spec.Item(**ITEMS[name])
    alone = lora.open_version(type(handler), tmp_path, base_dir, max_length=128)
    view = lora.AdapterHost(type(handler), max_length=128).add("m@2", base_dir, tmp_path)
    assert view.predict([item]) == alone.predict([item])


@pytest.mark.parametrize("name", ["sentiment", "translate-en-de"])
def test_a_merged_adapter_answers_as_the_adapter_does(name, load_handler, zoo_settings, tmp_path):
    handler, batch = _trained_adapter(load_handler, name, tmp_path)
    base_dir = zoo_settings.zoo.dir / name
    merged = lora.load(type(handler), base_dir, tmp_path, merge=True, max_length=128)
    assert not hasattr(merged.model, "peft_config")
    merged.save(tmp_path / "merged")
    plain = type(handler).load(tmp_path / "merged", max_length=128)
    assert _loss(plain.model, batch) == pytest.approx(_loss(handler.model, batch), abs=1e-4)


def test_unknown_target_modules_are_a_clear_error(load_handler):
    handler = load_handler("sentiment")
    with pytest.raises(Exception, match="target_modules") as raised:
        lora.attach(handler, LoraParameters(target_modules=["no_such_layer"]))
    assert getattr(raised.value, "param", None) == "method.lora.target_modules"


# --- over HTTP, through Ray Train -----------------------------------------------------------
def test_lora_jobs_are_checked_when_created(http, ready_service):
    file_id = upload(http, RECIPES["sentiment"].data.generate("train", 16, seed=3))
    base = {"model": "sentiment", "training_file": file_id}
    cases = [
        (base | {"method": {"type": "supervised", "lora": {"r": 4}}}, 422, "method"),
        (base | {"method": {"type": "lora", "lora": {"r": 0}}}, 422, "method"),
        (
            base | {"method": {"type": "lora"}, "hyperparameters": {"allow_new_labels": True}},
            400,
            "method.type",
        ),
    ]
    for body, status, param in cases:
        response = http.post("/v1/fine_tuning/jobs", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["param"].startswith(param), response.text


def test_a_lora_job_stores_an_adapter_serves_it_on_the_base_and_merges(
    http, ready_service, service_settings, starter_models
):
    model = production_copy(service_settings, "sentiment", "sentiment-lora", "classification")
    rows = RECIPES["sentiment"].data
    job = create_job(
        http,
        model=model,
        training_file=upload(http, rows.generate("train", 64, seed=5)),
        validation_file=upload(http, rows.generate("validation", 32, seed=6), "v.jsonl"),
        method={"type": "lora", "lora": {"r": 4, "alpha": 8}},
        hyperparameters={"n_epochs": 1, "batch_size": 16},
        promotion={"auto": False},
    )
    assert job["method"]["type"] == "lora" and job["method"]["lora"]["r"] == 4
    job = wait_for(http, job["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["fine_tuned_model"] == f"{model}@2"
    assert set(job["result"]["candidate_metrics"]) >= {"accuracy", "macro_f1"}

    version = http.get(f"/v1/models/{model}/versions").json()["data"][-1]
    adapter = version["lineage"]["adapter"]
    assert (adapter["model"], adapter["version"]) == (model, 1)
    assert 0 < adapter["bytes"] < 2_000_000 and adapter["lora"]["r"] == 4

    registry, store = connect(service_settings.registry)
    record = registry.get_version(model, 2)
    handler = lora.open_version(
        builtin_catalog().get("classification").handler_class(),
        store.local_path(record.artifact_uri),
        store.local_path(record.weights_base[0]),
        max_length=service_settings.limits.max_sequence_length,
    )
    registry.engine.dispose()
    text = "The staff were friendly and the room was spotless."
    expected = handler.predict([handler.spec.Item(text=text)])[0]
    served = http.post("/v1/classify", json={"model": f"{model}@2", "inputs": text})
    assert served.status_code == 200, served.text
    got = served.json()["results"][0]
    assert got["label"] == expected.label and got["score"] == pytest.approx(expected.score, 1e-5)

    merged = http.post(f"/v1/models/{model}/versions/2/merge", timeout=300)
    assert merged.status_code == 200, merged.text
    assert merged.json()["version"] == 3 and merged.json()["lineage"]["merged_from"] == 2
    assert "adapter" not in merged.json()["lineage"]
    again = http.post("/v1/classify", json={"model": f"{model}@3", "inputs": text})
    assert again.json()["results"][0]["score"] == pytest.approx(expected.score, abs=1e-4)
    twice = http.post(f"/v1/models/{model}/versions/3/merge")
    assert twice.status_code == 400 and twice.json()["error"]["param"] == "version"
