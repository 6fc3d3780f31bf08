"""Task metrics written out here (the hub's ``evaluate`` fetches scripts at run time)."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence


def classification_report(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]):
    """Accuracy, macro-F1 and per-class precision / recall / F1."""
    per_class: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        predicted = sum(p == label for p in pred)
        actual = sum(g == label for g in gold)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
    present = [label for label in labels if per_class[label]["support"]] or list(labels)
    accuracy = sum(g == p for g, p in zip(gold, pred, strict=True)) / max(len(gold), 1)
    macro_f1 = sum(per_class[label]["f1"] for label in present) / max(len(present), 1)
    return {"accuracy": accuracy, "macro_f1": macro_f1, "per_class": per_class}


def _normalize_answer(text: str) -> str:
    """SQuAD's official normalization: lower, drop punctuation, articles and extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, truth: str) -> float:
    pred_tokens = _normalize_answer(prediction).split()
    truth_tokens = _normalize_answer(truth).split()
    common = Counter(pred_tokens) & Counter(truth_tokens)
    same = sum(common.values())
    if not pred_tokens or not truth_tokens:
        return float(pred_tokens == truth_tokens)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], answers: Sequence[Sequence[str]]):
    """SQuAD v1.1 exact match and F1 (each the max over the gold answers), in [0, 1]."""
    exact = f1 = 0.0
    for prediction, truths in zip(predictions, answers, strict=True):
        exact += max(float(_normalize_answer(prediction) == _normalize_answer(t)) for t in truths)
        f1 += max(_token_f1(prediction, t) for t in truths)
    n = max(len(predictions), 1)
    return {"exact_match": exact / n, "f1": f1 / n}
