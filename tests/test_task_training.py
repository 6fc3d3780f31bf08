"""Fine-tuning contract of every handler: features, label alignment, and a step that learns."""

from __future__ import annotations

import pytest
import torch
from tuneserve.errors import InvalidRequest
from tuneserve.tasks.chat import ChatRow
from tuneserve.tasks.classification import ClassificationItem, ClassificationRow
from tuneserve.tasks.handlers.base import IGNORED
from tuneserve.tasks.handlers.cpu import cpu_multiplies_bfloat16
from tuneserve.tasks.ner import NerRow
from tuneserve.tasks.qa import QaRow
from tuneserve.tasks.translation import TranslationRow
from tuneserve.training.config import TrainingConfig
from tuneserve.training.fit import make_optimizer, train_step, uses_bfloat16
from tuneserve.zoo.recipes import RECIPES

MODELS = ["sentiment", "entities", "qa", "translate-en-de", "chat"]


def _rows(name: str, n: int = 8):
    recipe = RECIPES[name]
    row_class = recipe.spec.Row
    return [row_class(**row) for row in recipe.data.generate("train", n, seed=99)]


def _eval_loss(handler, batch) -> float:
    handler.model.eval()
    with torch.no_grad():
        return float(handler.model(**batch).loss)


@pytest.mark.parametrize("name", MODELS)
def test_a_few_training_steps_lower_the_loss(name, load_handler):
    handler = load_handler(name)  # a private copy: this test changes its weights
    batch = handler.collate(handler.training_features(_rows(name)))
    before = _eval_loss(handler, batch)
    optimizer = torch.optim.AdamW(
        handler.model.parameters(), lr=1e-3 if name in {"translate-en-de", "chat"} else 5e-5
    )
    handler.model.train()
    for _ in range(3):
        handler.model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert _eval_loss(handler, batch) < before


@pytest.mark.parametrize("name", ["sentiment", "translate-en-de"])
def test_bfloat16_steps_follow_float32_steps(name, load_handler):
    """Mixed precision on CPU changes the arithmetic, not what a step learns."""
    losses = {}
    for bfloat16 in (False, True):
        handler = load_handler(name)  # the same starting weights each time
        batch = handler.collate(handler.training_features(_rows(name)))
        config = TrainingConfig(learning_rate=1e-3 if name == "translate-en-de" else 5e-5)
        optimizer = make_optimizer(handler.model, config)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        handler.model.train()
        torch.manual_seed(7)  # the same dropout masks each time: only the arithmetic differs
        for _ in range(3):
            train_step(handler.model, batch, optimizer, schedule, 1.0, bfloat16)
        losses[bfloat16] = _eval_loss(handler, batch)
    assert losses[True] == pytest.approx(losses[False], rel=0.05)


def test_bfloat16_is_chosen_by_setting_then_by_the_hardware():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert uses_bfloat16(TrainingConfig(cpu_bfloat16=False), gpu)
    assert not uses_bfloat16(TrainingConfig(cpu_bfloat16=False), cpu)
    assert uses_bfloat16(TrainingConfig(cpu_bfloat16=True), cpu)
    assert uses_bfloat16(TrainingConfig(), cpu) == cpu_multiplies_bfloat16()


def test_ner_labels_only_the_first_piece_of_each_word(handlers):
    handler = handlers["entities"]
    row = NerRow(
        tokens=["Anna", "Schmidtberger", "visited", "Reykjavik", "."],
        tags=["B-PER", "I-PER", "O", "B-LOC", "O"],
    )
    feature = handler.training_features([row])[0]
    labelled = [label for label in feature["labels"] if label != IGNORED]
    id2label = handler.model.config.id2label
    assert [id2label[label] for label in labelled] == row.tags
    assert len(feature["input_ids"]) > len(row.tokens) + 2  # some words really were split


def test_qa_features_point_at_the_answer_tokens(handlers):
    handler = handlers["qa"]
    context = (
        "Tom Brown works as a baker. " + "Anna likes red. " * 80 + "Olga Chen was born in Oslo."
    )
    row = QaRow(
        question="Where was Olga Chen born?",
        context=context,
        answers={"text": ["Oslo"], "answer_start": [context.rindex("Oslo")]},
    )
    features = handler.training_features([row])
    assert len(features) > 1  # the context is windowed
    spans = [(f["start_positions"], f["end_positions"]) for f in features]
    inside = [(f, s) for f, s in zip(features, spans, strict=True) if s != (0, 0)]
    assert inside, "the answer is in some window"
    feature, (start, end) = inside[-1]
    assert handler.tokenizer.decode(feature["input_ids"][start : end + 1]) == "oslo"


def test_qa_rows_must_quote_the_context():
    with pytest.raises(ValueError, match="not at character"):
        QaRow(question="q", context="abc", answers={"text": ["b"], "answer_start": [0]})


def test_translation_targets_are_teacher_forced(handlers):
    handler = handlers["translate-en-de"]
    row = TranslationRow(source="The dog sees the ball.", target="Der Hund sieht den Ball.")
    batch = handler.collate(handler.training_features([row]))
    assert handler.tokenizer.decode(batch["labels"][0], skip_special_tokens=True) == row.target
    # the decoder reads the target shifted right, starting from the decoder start token
    assert batch["decoder_input_ids"][0, 0] == handler.model.config.decoder_start_token_id
    assert torch.equal(batch["decoder_input_ids"][0, 1:], batch["labels"][0, :-1])


def test_chat_loss_is_masked_to_assistant_turns(handlers):
    handler = handlers["chat"]
    row = ChatRow(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What colour is snow?"},
            {"role": "assistant", "content": "Snow is white."},
            {"role": "user", "content": "Thanks!"},
            {"role": "assistant", "content": "You're welcome!"},
        ]
    )
    labels = handler.training_features([row])[0]["labels"]
    learned = handler.tokenizer.decode([t for t in labels if t != IGNORED])
    assert learned == "Snow is white.<|im_end|>You're welcome!<|im_end|>"


def test_unknown_labels_name_the_row(handlers):
    rows = [
        ClassificationRow(text="fine", label="positive"),
        ClassificationRow(text="meh", label="neutral"),
    ]
    with pytest.raises(InvalidRequest) as error:
        handlers["sentiment"].training_features(rows)
    assert error.value.param == "rows[1].label"
    assert "negative, positive" in error.value.message


@pytest.mark.parametrize("name", MODELS)
def test_evaluate_reports_the_primary_metric(name, handlers):
    handler = handlers[name]
    metrics = handler.evaluate(_rows(name, 6))
    assert (
        0.0
        <= float(metrics[handler.spec.primary_metric])
        <= (100.0 if name == "translate-en-de" else 1.0)
    )


def test_new_labels_grow_the_head_and_keep_the_old_predictions(load_handler):
    handler = load_handler("sentiment")
    item = ClassificationItem(text="The concert was absolutely wonderful.", top_k=2)
    before = handler.predict([item])[0]
    handler.add_labels(["neutral"])
    assert handler.model.config.id2label == {0: "negative", 1: "positive", 2: "neutral"}
    after = handler.predict([ClassificationItem(text=item.text, top_k=3)])[0]
    assert after.label == before.label and len(after.top) == 3
    rows = [ClassificationRow(text="It was fine, I guess.", label="neutral")]
    batch = handler.collate(handler.training_features(rows))
    assert batch["labels"].tolist() == [2] and float(handler.model(**batch).loss) > 0


def test_ner_new_entity_types_add_both_tags(load_handler):
    handler = load_handler("entities")
    row = NerRow(tokens=["Monday", "Night", "Football"], tags=["B-EVENT", "I-EVENT", "I-EVENT"])
    assert handler.spec.head_labels({"B-EVENT"}) == ["B-EVENT", "I-EVENT"]
    handler.add_labels(handler.spec.head_labels(set(handler.spec.row_labels(row.model_dump()))))
    assert (
        handler.training_features([row])[0]["labels"][1] == handler.model.config.label2id["B-EVENT"]
    )
