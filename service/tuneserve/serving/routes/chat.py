"""``/v1/chat/completions``: OpenAI-compatible, streamed as server-sent events or whole."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from tuneserve.api.openai import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
    completion_id,
    now,
)
from tuneserve.api.tasks import ErrorBody
from tuneserve.control.resolver import Target
from tuneserve.serving.deps import InferenceCaller, TaskServerDep
from tuneserve.serving.errors import as_tuneserve_error
from tuneserve.serving.names import CHAT_PATH

# 500: the model failed mid-completion; 504: the stream ran past serving.chat_stream_timeout_s
ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422, 500, 503, 504)}
# ``stream: true`` answers 200 with server-sent events. Before OpenAPI 3.2 a stream's schema
# describes one event (its fields); each event's data is one ChatCompletionChunk as JSON, whose
# schema is added to the components for clients to generate their types (``stream_schemas``).
STREAMED = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {
                    "type": "string",
                    "description": "A ChatCompletionChunk "
                    "(#/components/schemas/ChatCompletionChunk) as JSON; the last event is "
                    '[DONE]. A stream that fails after its first chunk sends {"error": {...}}.',
                }
            },
        }
    }
}


def stream_schemas() -> dict[str, dict]:
    """The streamed chunk's schemas, for the OpenAPI document's components: no route returns
    the model itself, so FastAPI would not list it, and clients generate their types from it."""
    schema = ChatCompletionChunk.model_json_schema(ref_template="#/components/schemas/{model}")
    return schema.pop("$defs", {}) | {"ChatCompletionChunk": schema}


router = APIRouter(tags=["chat"], responses=ERRORS)


@router.post(CHAT_PATH, response_model=ChatCompletion, responses={200: {"content": STREAMED}})
async def chat_completions(body: ChatCompletionRequest, server: TaskServerDep, _: InferenceCaller):
    """Generate the assistant's next message; ``stream: true`` sends it token by token."""
    front = server.front
    front.check_texts([m.content for m in body.messages], "messages")
    target = await front.resolve(body.model)
    settings = server.settings
    item = body.to_item(settings.serving.default_chat_max_tokens, settings.limits.max_new_tokens)
    events = front.chat_stream(target, item)
    try:
        first = await anext(events)  # a bad prompt fails here, before any header is sent
    except BaseException:
        await events.aclose()
        raise
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _sse(target, first, events, include_usage), media_type="text/event-stream"
        )
    return await _whole(target, first, events)


async def _whole(target: Target, first: dict, events: AsyncGenerator[dict, None]) -> dict:
    content, last = [first["text"]], first
    try:
        async for event in events:
            content.append(event["text"])
            last = event
    finally:  # a client gone mid-way: the engine drops the sequence
        await events.aclose()
    usage = last["usage"]
    return ChatCompletion(
        id=completion_id(),
        created=now(),
        model=target.name,
        version=target.version,
        choices=[
            Choice(
                message=AssistantMessage(content="".join(content)),
                finish_reason=last["finish_reason"],
            )
        ],
        usage=Usage(**usage, total_tokens=usage["prompt_tokens"] + usage["completion_tokens"]),
    ).model_dump()


def _data(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


async def _sse(
    target: Target, first: dict, events: AsyncGenerator[dict, None], include_usage: bool
) -> AsyncIterator[str]:
    """Chunks as OpenAI sends them: role first, then content, finish reason, [DONE].

    A client that disconnects closes this generator; closing the replica's stream makes the
    engine drop the sequence at its next decoding step.
    """
    chunk = {
        "id": completion_id(),
        "created": now(),
        "model": target.name,
        "version": target.version,
    }
    yield _data(
        ChatCompletionChunk(
            **chunk, choices=[ChunkChoice(delta=Delta(role="assistant", content=""))]
        ).model_dump(exclude_none=True)
    )
    try:
        event = first
        while True:
            choice = ChunkChoice(
                delta=Delta(content=event["text"]), finish_reason=event["finish_reason"]
            )
            yield _data(
                ChatCompletionChunk(**chunk, choices=[choice]).model_dump(exclude_none=True)
            )
            if event["finish_reason"] is not None:
                break
            event = await anext(events)
        if include_usage:
            usage = event["usage"]
            total = usage["prompt_tokens"] + usage["completion_tokens"]
            final = ChatCompletionChunk(
                **chunk, choices=[], usage=Usage(**usage, total_tokens=total)
            )
            yield _data(final.model_dump(exclude_none=True))
    except Exception as error:  # a failed stream ends with an error event, not a cut line
        yield _data({"error": as_tuneserve_error(error).to_dict()})
    finally:
        await events.aclose()
    yield _data("[DONE]")
