"""OpenAI-compatible chat completions: fields in OpenAI's order, extensions fenced after."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tuneserve.errors import InvalidRequest
from tuneserve.tasks.chat import (
    MAX_STOP_SEQUENCES,
    ChatItem,
    ChatMessage,
    Seed,
    StopString,
    Temperature,
    TopP,
)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the SDK sends fields we do not use

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(
        default=None, ge=1, description="Deprecated by OpenAI for max_completion_tokens."
    )
    max_completion_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Most tokens to generate; above the server's limit is a 400.",
    )
    n: int = Field(default=1, ge=1, le=1, description="Only one choice per request.")
    seed: Seed = None
    stop: list[StopString] | None = Field(
        default=None,
        max_length=MAX_STOP_SEQUENCES,
        description="A string or up to 4 strings; generation ends before the first found.",
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Temperature = 1.0
    top_p: TopP = 1.0
    # --- tuneserve extensions ---
    ignore_eos: bool = Field(default=False, description="Keep generating past end-of-turn.")

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_is_a_list(cls, stop: object) -> object:
        """OpenAI takes one stop string or a list; one shape keeps errors naming ``stop``."""
        return [stop] if isinstance(stop, str) else stop

    def to_item(self, default_max_tokens: int, limit: int) -> ChatItem:
        """Engine parameters of this request; asking for more tokens than ``limit`` is a
        400 naming the field, never silently cut (the client would see a short answer)."""
        for param in ("max_completion_tokens", "max_tokens"):
            asked = getattr(self, param)
            if asked is not None and asked > limit:
                raise InvalidRequest(
                    f"{param} is {asked}; this server generates at most {limit} tokens "
                    f"per completion: ask for {limit} or fewer",
                    param=param,
                )
        max_tokens = self.max_completion_tokens or self.max_tokens or default_max_tokens
        return ChatItem(
            messages=self.messages,
            max_tokens=min(max_tokens, limit),  # only the server's own default is cut
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop or [],
            seed=self.seed,
            ignore_eos=self.ignore_eos,
        )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    # --- tuneserve extension: the concrete version that served ---
    version: int


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    version: int


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())
