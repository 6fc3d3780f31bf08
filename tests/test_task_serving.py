"""Every task handler end to end on its tiny starter model: a batch in, typed outputs out."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from tuneserve.errors import InvalidRequest
from tuneserve.tasks.chat import ChatItem
from tuneserve.tasks.classification import ClassificationItem
from tuneserve.tasks.ner import NerItem, iob2_spans
from tuneserve.tasks.qa import QaItem
from tuneserve.tasks.translation import TranslationItem

UNICODE = "Zoë Müller flew to Zürich 😀 — 東京 → ok."
LONG = "The restaurant was wonderful. " * 200  # far past 128 tokens


def test_classification_batch_is_ragged_unicode_empty_and_long(handlers):
    texts = [
        "Wonderful!",
        "The movie was terrible and dull from start to finish.",
        "",
        UNICODE,
        LONG,
    ]
    outputs = handlers["sentiment"].predict([ClassificationItem(text=t, top_k=2) for t in texts])
    assert len(outputs) == len(texts)
    for out in outputs:
        assert out.label in {"positive", "negative"}
        assert [s.label for s in out.top] and out.top[0].label == out.label
        assert abs(sum(s.score for s in out.top) - 1.0) < 1e-4
        assert out.top[0].score >= out.top[1].score
    assert [o.truncated for o in outputs] == [False, False, False, False, True]


def test_classification_predicts_sentiment(handlers):
    items = [
        ClassificationItem(text="The concert was absolutely wonderful."),
        ClassificationItem(text="What a dreadful, boring film."),
    ]
    assert [o.label for o in handlers["sentiment"].predict(items)] == ["positive", "negative"]


def test_classification_scores_do_not_depend_on_batch_padding(handlers):
    short = ClassificationItem(text="Great.")
    alone = handlers["sentiment"].predict([short])[0]
    batched = handlers["sentiment"].predict([short, ClassificationItem(text=LONG)])[0]
    assert alone.score == pytest.approx(batched.score, abs=1e-4)


def test_ner_entities_point_into_the_text(handlers):
    texts = ["Anna Schmidt flew to Paris on Monday.", "", UNICODE, "x" * 3, LONG]
    outputs = handlers["entities"].predict([NerItem(text=t) for t in texts])
    assert outputs[1].entities == []
    for text, out in zip(texts, outputs, strict=True):
        for entity in out.entities:
            assert 0 <= entity.start < entity.end <= len(text)
            assert entity.text == text[entity.start : entity.end]
            assert entity.label in {"PER", "LOC", "ORG", "MISC"}
            assert 0.0 <= entity.score <= 1.0
    assert [o.truncated for o in outputs] == [False, False, False, False, True]


def test_ner_groups_iob2_tags_into_spans():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-ORG", "B-ORG", "O", "I-MISC"]
    assert iob2_spans(tags) == [
        ("PER", 0, 1),
        ("LOC", 3, 4),
        ("ORG", 5, 5),
        ("ORG", 6, 6),
        ("MISC", 8, 8),
    ]


def test_qa_answers_are_spans_of_the_context(handlers):
    items = [
        QaItem(question="Where was Maria Rossi born?", context="Maria Rossi was born in Vienna."),
        QaItem(question="Who?", context=UNICODE),
        QaItem(question="What does Tom Brown do?", context=LONG + " Tom Brown works as a baker."),
    ]
    for item, out in zip(items, handlers["qa"].predict(items), strict=True):
        assert item.context[out.start : out.end] == out.answer
        assert out.answer and 0.0 <= out.score <= 1.0


def test_qa_long_context_is_read_in_overlapping_windows(handlers):
    handler = handlers["qa"]
    item = QaItem(question="What does Tom Brown do?", context=LONG + " Tom Brown is a baker.")
    batch = handler.preprocess([item])
    assert len(batch.meta["item_of"]) > 1  # several windows, one item
    assert set(batch.meta["item_of"]) == {0}


def test_qa_rejects_empty_fields_and_overlong_questions(handlers):
    with pytest.raises(ValidationError):
        QaItem(question="", context="text")
    with pytest.raises(InvalidRequest) as error:
        handlers["qa"].predict([QaItem(question="why " * 200, context="Because.")])
    assert error.value.param == "inputs[0].question"


def test_translation_generates_text_within_its_token_budget(handlers):
    handler = handlers["translate-en-de"]
    texts = ["The woman buys the book.", "", UNICODE, LONG]
    budgets = [64, 5, 3, 1]
    items = [TranslationItem(text=t, max_new_tokens=n) for t, n in zip(texts, budgets, strict=True)]
    outputs = handler.predict(items)
    assert [o.truncated for o in outputs] == [False, False, False, True]
    # greedy decoding: a smaller budget gives a prefix of what a larger one gives
    unbounded = handler.predict([TranslationItem(text=t, max_new_tokens=64) for t in texts])
    for short, full in zip(outputs, unbounded, strict=True):
        assert full.translation.startswith(short.translation)
    assert (
        len(outputs[3].translation) < len(unbounded[3].translation) or not unbounded[3].translation
    )


def _chat(content: str, **params) -> ChatItem:
    return ChatItem(messages=[{"role": "user", "content": content}], **params)


def test_chat_greedy_is_deterministic_and_independent_of_batch_padding(handlers):
    handler = handlers["chat"]
    short = _chat("Hi", max_tokens=12, temperature=0)
    longer = ChatItem(
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France? " * 3},
        ],
        max_tokens=5,
        temperature=0,
    )
    alone = handler.predict([short])[0]
    batched = handler.predict([short, longer])
    assert batched[0] == alone
    assert batched[1].completion_tokens <= 5
    assert alone.prompt_tokens > 0 and alone.finish_reason in {"stop", "length"}


def test_chat_sampling_honours_seed_temperature_and_top_p(handlers):
    item = _chat("Hello!", max_tokens=16, temperature=1.5, top_p=0.9, seed=7)
    first, second = handlers["chat"].predict([item, item])
    assert first.content == second.content  # same seed, same tokens


def test_chat_max_tokens_ends_with_length(handlers):
    out = handlers["chat"].predict([_chat("Hello!", max_tokens=1, temperature=1.0, seed=1)])[0]
    assert out.completion_tokens == 1
    if out.finish_reason == "length":
        assert out.content == handlers["chat"].tokenizer.decode(
            handlers["chat"].tokenizer(out.content, add_special_tokens=False)["input_ids"]
        )


def test_chat_stream_deltas_add_up_to_the_answer_and_stop_strings_are_cut(handlers):
    handler = handlers["chat"]
    free = handler.predict([_chat("Hello!", max_tokens=24, temperature=1.0, seed=3)])[0]
    assert len(free.content) >= 4
    stop = free.content[2:4]
    item = _chat("Hello!", max_tokens=24, temperature=1.0, seed=3, stop=[stop])
    streamed = {0: ""}
    reasons = []
    for step in handler.stream([item]):
        for delta in step:
            streamed[delta.index] += delta.text
            reasons.append(delta.finish_reason)
    final = handler.predict([item])[0]
    assert streamed[0] == final.content == free.content[: free.content.find(stop)]
    assert stop not in final.content
    assert final.finish_reason == "stop" and reasons[-1] == "stop"
    assert all(reason is None for reason in reasons[:-1])


def test_chat_rejects_a_prompt_longer_than_the_context(handlers):
    with pytest.raises(InvalidRequest) as error:
        handlers["chat"].predict([_chat("capital " * 400)])
    assert error.value.param == "messages"


def test_empty_batches_need_no_model(handlers):
    with torch.inference_mode():
        assert handlers["sentiment"].predict([]) == []


def test_token_counts_ignore_padding_and_count_what_was_generated(handlers):
    """What the input/output token metrics add up: real tokens, whatever the batching."""
    sentiment, translator = handlers["sentiment"], handlers["translate-en-de"]
    texts = ["Short.", "A much longer review that pads the short one in its batch."]
    alone = [len(sentiment.tokenizer(text)["input_ids"]) for text in texts]
    _, counts = sentiment.predict_counted([ClassificationItem(text=t) for t in texts])
    assert counts.input == sum(alone) and counts.output == 0

    items = [TranslationItem(text="The dog sleeps.", max_new_tokens=n) for n in (2, 6)]
    outputs, counts = translator.predict_counted(items)
    assert [o.translation for o in outputs] == [o.translation for o in translator.predict(items)]
    singles = [translator.predict_counted([item])[1].output for item in items]
    assert counts.output == sum(singles) and 0 < singles[0] <= 2 and singles[1] <= 6
