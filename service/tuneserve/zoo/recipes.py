"""How each starter model is made: its data, its untrained model, its training budget.

Classification, NER and QA put task heads on the packaged MiniLM encoder. Translation and
chat are small models built from a config, with tokenizers trained here on their rows: the
full profile's translation starter learns from the Ding dictionary when Debian's
trans-de-en is installed; the full profile's chat starter is SmolLM2-135M-Instruct, when its
package is installed (the small ones stay for the tiny profile the tests use).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pydantic import BaseModel
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    MarianConfig,
    MarianMTModel,
)

from tuneserve.settings import Settings, ZooProfile
from tuneserve.tasks.catalog import builtin_catalog
from tuneserve.tasks.handlers.base import IGNORED, TaskHandler
from tuneserve.tasks.handlers.translation import LENGTH_RATIO, LENGTH_SLACK
from tuneserve.tasks.spec import TaskSpec
from tuneserve.training.config import TrainingConfig
from tuneserve.zoo.corpora import DING_DE_EN, VADER_SENTIMENT, Corpus
from tuneserve.zoo.data import dialogues, entities, qa, sentiment, translation
from tuneserve.zoo.pretrained import SMOLLM2_135M_INSTRUCT, PretrainedSource
from tuneserve.zoo.tokenizers import train_chat_tokenizer, train_seq2seq_tokenizer


def _handler_class(task: str) -> type[TaskHandler]:
    return builtin_catalog().get(task).handler_class()


NER_TAGS = ["O"] + [f"{p}-{k}" for k in ("PER", "LOC", "ORG", "MISC") for p in ("B", "I")]


@dataclass(frozen=True)
class Budget:
    """What one profile spends on a model: rows, training and (for scratch models) size."""

    train_rows: int
    eval_rows: int
    train: TrainingConfig
    arch: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    name: str
    task: str
    description: str
    data: ModuleType  # a generator module of tuneserve.zoo.data
    create: Callable[[Settings, Budget, list[BaseModel]], TaskHandler]
    budgets: dict[ZooProfile, Budget]
    floor: tuple[str, float]  # (metric, minimum) the full profile must reach
    extra_metrics: Callable[[TaskHandler, list, list], dict[str, float]] | None = None
    # profiles whose starter is a published model rather than one trained here
    pretrained: dict[ZooProfile, PretrainedSource] = field(default_factory=dict)
    # profiles whose starter trains on a downloaded real corpus (generated rows without it)
    corpus: dict[ZooProfile, Corpus] = field(default_factory=dict)

    @property
    def spec(self) -> TaskSpec:
        return builtin_catalog().get(self.task)

    def handler_class(self) -> type[TaskHandler]:
        return self.spec.handler_class()


def _encoder_with_labels(task: str, labels: list[str]) -> Callable[..., TaskHandler]:
    def create(settings: Settings, budget: Budget, rows: list[BaseModel]) -> TaskHandler:
        handler_class = _handler_class(task)
        base = settings.zoo.resolved_encoder_base()
        kwargs: dict[str, Any] = {}
        if labels:
            kwargs = {
                "num_labels": len(labels),
                "id2label": dict(enumerate(labels)),
                "label2id": {label: i for i, label in enumerate(labels)},
            }
        model = handler_class.auto_model.from_pretrained(base, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(base)
        return handler_class(model, tokenizer, max_length=settings.limits.max_sequence_length)

    return create


def _create_translation(settings: Settings, budget: Budget, rows: list[BaseModel]) -> TaskHandler:
    """A Marian-style transformer (the architecture of the OPUS-MT models): on these
    machines it learnt Multi30k several times faster per step than a T5 of the same size."""
    texts = [r.source for r in rows] + [r.target for r in rows]
    tokenizer = train_seq2seq_tokenizer(texts, vocab_size=budget.arch["vocab"])
    d_model, limits = budget.arch["d_model"], settings.limits
    config = MarianConfig(
        vocab_size=len(tokenizer),
        d_model=d_model,
        encoder_layers=budget.arch["layers"],
        decoder_layers=budget.arch["layers"],
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=d_model * 4,
        decoder_ffn_dim=d_model * 4,
        activation_function="gelu",
        dropout=0.1,
        # positions are fixed sinusoids: enough for the longest translation the handler writes
        max_position_embeddings=int(LENGTH_RATIO * limits.max_sequence_length) + LENGTH_SLACK + 1,
        scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = MarianMTModel(config)
    return _handler_class("translation")(model, tokenizer, max_length=limits.max_sequence_length)


def _create_chat(settings: Settings, budget: Budget, rows: list[BaseModel]) -> TaskHandler:
    texts = [f"{m.role}\n{m.content}" for row in rows for m in row.messages]
    tokenizer = train_chat_tokenizer(texts, vocab_size=budget.arch["vocab"])
    hidden = budget.arch["hidden"]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=budget.arch["layers"],
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return _handler_class("chat")(model, tokenizer, max_length=settings.limits.max_sequence_length)


def _chat_unigram_baseline(handler: TaskHandler, train: list, heldout: list) -> dict[str, float]:
    """Accuracy of always predicting the commonest assistant token, and the model's ratio."""
    counts = Counter(
        t for f in handler.training_features(train) for t in f["labels"] if t != IGNORED
    )
    best_token = counts.most_common(1)[0][0]
    held = [t for f in handler.training_features(heldout) for t in f["labels"][1:] if t != IGNORED]
    baseline = sum(t == best_token for t in held) / max(len(held), 1)
    accuracy = handler.evaluate(heldout)["token_accuracy"]
    return {"unigram_token_accuracy": baseline, "token_accuracy_vs_unigram": accuracy / baseline}


def _budgets(full: Budget, tiny: Budget) -> dict[ZooProfile, Budget]:
    return {"full": full, "tiny": tiny}


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "sentiment",
            "classification",
            "Positive / negative sentiment of English text: MiniLM-L6 with a classifier head.",
            sentiment,
            _encoder_with_labels("classification", ["negative", "positive"]),
            _budgets(
                Budget(8000, 1000, TrainingConfig(n_epochs=2, batch_size=32, learning_rate=5e-5)),
                Budget(480, 200, TrainingConfig(n_epochs=1, batch_size=16, learning_rate=1e-4)),
            ),
            ("accuracy", 0.80),
            corpus={"full": VADER_SENTIMENT},
        ),
        Recipe(
            "entities",
            "ner",
            "People, locations, organisations and misc names (IOB2).",
            entities,
            _encoder_with_labels("ner", NER_TAGS),
            _budgets(
                Budget(3000, 400, TrainingConfig(n_epochs=2, batch_size=32, learning_rate=1e-4)),
                Budget(640, 64, TrainingConfig(n_epochs=1, batch_size=16, learning_rate=2e-4)),
            ),
            ("f1", 0.80),
        ),
        Recipe(
            "qa",
            "qa",
            "Extractive question answering over short English biographies.",
            qa,
            _encoder_with_labels("qa", []),
            _budgets(
                Budget(1500, 300, TrainingConfig(n_epochs=2, batch_size=16, learning_rate=2e-4)),
                Budget(320, 32, TrainingConfig(n_epochs=1, batch_size=16, learning_rate=2e-4)),
            ),
            ("exact_match", 0.60),
        ),
        Recipe(
            "translate-en-de",
            "translation",
            "English → German, a small Marian transformer trained here.",
            translation,
            _create_translation,
            _budgets(
                Budget(  # every Ding sentence (≈20k) twice, and ≈16k of its words and phrases
                    36000,
                    400,
                    TrainingConfig(n_epochs=2, batch_size=64, learning_rate=1e-3),
                    {"vocab": 8000, "d_model": 256, "layers": 3},
                ),
                Budget(
                    512,
                    64,
                    TrainingConfig(n_epochs=1, batch_size=32, learning_rate=2e-3),
                    {"vocab": 400, "d_model": 32, "layers": 1},
                ),
            ),
            ("bleu", 1.0),
            corpus={"full": DING_DE_EN},
        ),
        Recipe(
            "chat",
            "chat",
            "A small Llama-style assistant trained here on generated dialogues.",
            dialogues,
            _create_chat,
            _budgets(
                Budget(
                    3000,
                    300,
                    TrainingConfig(n_epochs=3, batch_size=32, learning_rate=2e-3),
                    {"vocab": 600, "hidden": 128, "layers": 2},
                ),
                Budget(
                    256,
                    64,
                    TrainingConfig(n_epochs=1, batch_size=32, learning_rate=2e-3),
                    {"vocab": 400, "hidden": 32, "layers": 1},
                ),
            ),
            ("token_accuracy_vs_unigram", 2.0),
            _chat_unigram_baseline,
            pretrained={"full": SMOLLM2_135M_INSTRUCT},
        ),
    )
}
