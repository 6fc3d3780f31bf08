"""Decoding rules and metrics, with exact expectations."""

from __future__ import annotations

import pytest
import torch
from tuneserve.tasks.handlers.generation import SamplingParams, SequenceState, sample_next
from tuneserve.tasks.metrics import classification_report, squad_scores


@pytest.fixture(scope="module")
def tokenizer(handlers):
    return handlers["chat"].tokenizer


def _feed(state: SequenceState, tokenizer, text: str) -> str:
    streamed = ""
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        streamed += state.push(token)
        if state.finished:
            break
    return streamed


def test_stop_string_is_cut_and_never_streamed(tokenizer):
    state = SequenceState(SamplingParams(max_tokens=50, stop=["capital"]), tokenizer, {-1})
    streamed = _feed(state, tokenizer, "The capital of France is Paris.")
    assert state.finish_reason == "stop"
    assert state.text == streamed == "The "


def test_max_tokens_ends_with_length_and_releases_everything(tokenizer):
    ids = tokenizer("The capital of France", add_special_tokens=False)["input_ids"]
    state = SequenceState(SamplingParams(max_tokens=len(ids), stop=["zzz"]), tokenizer, {-1})
    streamed = "".join(state.push(t) for t in ids)
    assert state.finish_reason == "length" and streamed == "The capital of France"


def test_end_token_stops_without_adding_text(tokenizer):
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    state = SequenceState(SamplingParams(max_tokens=10), tokenizer, {end})
    streamed = _feed(state, tokenizer, "Hi") + state.push(end)
    assert state.finish_reason == "stop" and streamed == "Hi" and state.generated == 2


def test_sampling_rules():
    logits = torch.tensor([0.0, 5.0, 4.9, -3.0])
    generator = torch.Generator().manual_seed(0)
    assert sample_next(logits, SamplingParams(max_tokens=1, temperature=0), generator) == 1
    nucleus = SamplingParams(max_tokens=1, temperature=1.0, top_p=0.01)
    assert {sample_next(logits, nucleus, generator) for _ in range(20)} == {1}
    subnormal = SamplingParams(max_tokens=1, temperature=1.0, top_p=5e-324)  # 0 in float32
    assert sample_next(logits, subnormal, generator) == 1
    wide = SamplingParams(max_tokens=1, temperature=2.0)
    first = [sample_next(logits, wide, torch.Generator().manual_seed(5)) for _ in range(3)]
    assert len(set(first)) == 1  # same seed, same draw


def test_classification_report_exact():
    report = classification_report(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert report["accuracy"] == 0.75
    assert report["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert report["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert report["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_squad_scores_normalize_like_the_official_script():
    scores = squad_scores(["The Berlin.", "red car", "nothing"], [["berlin"], ["a red bus"], ["x"]])
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_incremental_text_equals_a_full_decode_across_split_characters(tokenizer):
    text = "Zoë Müller 😀 visited 東京 and said: “héllo” — twice. " * 3
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    state = SequenceState(SamplingParams(max_tokens=len(ids)), tokenizer, {-1})
    streamed = "".join(state.push(token) for token in ids)
    assert state.text == streamed == tokenizer.decode(ids, skip_special_tokens=True)
    assert "\ufffd" not in streamed
