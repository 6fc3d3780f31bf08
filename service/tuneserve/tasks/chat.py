"""Chat: a decoder-only model behind a chat template, served OpenAI-style and streamed.

Its route is OpenAI's ``/v1/chat/completions`` (``api/openai.py`` and the chat router), not
a generated one; fine-tuning puts the loss on assistant turns only.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, model_validator

from tuneserve.tasks.spec import TaskSpec


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatItem(BaseModel):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int = Field(default=128, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = None
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
    primary_metric = "token_accuracy"
    lower_is_better = frozenset({"loss", "perplexity", "validation_loss"})
    example: ClassVar[dict[str, Any]] = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
    }
    learning_rate = 1e-3  # small models trained from scratch
    streams = True


SPEC = ChatTask()
