"""Chat: a decoder-only model behind a chat template, served OpenAI-style and streamed.

Its route is OpenAI's ``/v1/chat/completions`` (``api/openai.py`` and the chat router), not
a generated one; fine-tuning puts the loss on assistant turns only.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from tuneserve.tasks.spec import TaskSpec

# Below this temperature a completion decodes greedily (argmax): dividing the logits by a
# temperature of, say, 1e-40 overflows float32 to inf and the softmax turns to NaN, while
# the distribution at 1e-4 is already one-hot for any logit gap a model produces.
GREEDY_BELOW_TEMPERATURE = 1e-4
# ``torch.Generator.manual_seed`` takes 64 bits; OpenAI documents the seed as an int64.
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
# OpenAI's limit on stop sequences; their length bounds how much text a stream holds back
# (a possible stop-string prefix is never streamed before it is known not to be one).
MAX_STOP_SEQUENCES, MAX_STOP_CHARS = 4, 64
StopString = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_CHARS)]


# sampling parameters, validated alike wherever a request carries them (OpenAI's body too)
Temperature = Annotated[
    float,
    Field(
        ge=0.0,
        le=2.0,
        allow_inf_nan=False,
        description=f"0 (or below {GREEDY_BELOW_TEMPERATURE}) decodes greedily.",
    ),
]
TopP = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
Seed = Annotated[int | None, Field(ge=SEED_MIN, le=SEED_MAX)]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatItem(BaseModel):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int = Field(default=128, ge=1)
    temperature: Temperature = 1.0
    top_p: TopP = 1.0
    stop: list[StopString] = Field(default_factory=list, max_length=MAX_STOP_SEQUENCES)
    seed: Seed = None
    ignore_eos: bool = Field(default=False, description="Generate past the end-of-turn token.")


class ChatRow(BaseModel):
    messages: list[ChatMessage] = Field(min_length=2)

    @model_validator(mode="after")
    def _has_assistant_turn(self) -> ChatRow:
        if not any(m.role == "assistant" and m.content for m in self.messages):
            raise ValueError("a training dialogue needs at least one non-empty assistant turn")
        return self


class ChatOutput(BaseModel):
    content: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int


class ChatDelta(BaseModel):
    """What one sequence gained in one decoding step."""

    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None = None
    usage: dict[str, int] | None = Field(default=None, description="Set on the last delta.")


class ChatTask(TaskSpec):
    name = "chat"
    Item = ChatItem
    Row = ChatRow
    Output = ChatOutput
    handler = "tuneserve.tasks.handlers.chat:ChatHandler"
    default_model = "chat"
    architectures = ("ForCausalLM",)
    primary_metric = "token_accuracy"
    lower_is_better = frozenset({"loss", "perplexity", "validation_loss"})
    example: ClassVar[dict[str, Any]] = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
    }
    learning_rate = 1e-3  # small models trained from scratch
    streams = True


SPEC = ChatTask()
