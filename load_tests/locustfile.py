"""Load on tuneserve's five tasks, in a realistic mix, while production moves under it.

    locust -f load_tests/locustfile.py,load_tests/shapes/step.py --headless \
        --host http://127.0.0.1:8000 --csv load_tests/results/step \
        --html load_tests/results/step.html

(``make load-test`` runs it; README "Load testing"). Users are weighted like an NLP
platform's traffic: classification and NER most, QA and translation less, chat a stream now
and then. Chat's time to first token is its own entry ("SSE", "time to first token").
``SwapUser`` (one of it, when ``LOAD_SWAP_EVERY_S`` > 0) promotes and rolls back
``LOAD_SWAP_MODEL`` while the others run: a failed request during a swap is a failure here.

Settings (environment): ``TUNESERVE_API_KEY`` (sent by every user; an admin key for the
swap user), ``LOAD_WAIT_S`` (mean think time between a user's requests),
``LOAD_CLASSIFY_MODEL`` (the classification model called; default: the task's), the swap's.
"""

from __future__ import annotations

import json
import os
import random
import time

from locust import FastHttpUser, between, constant, task
from locust.exception import StopUser

WAIT_S = float(os.environ.get("LOAD_WAIT_S", "0.5"))
SWAP_EVERY_S = float(os.environ.get("LOAD_SWAP_EVERY_S", "10"))
# the classification model the users call (default: the task's) and the one swapped
CLASSIFY_MODEL = os.environ.get("LOAD_CLASSIFY_MODEL")
SWAP_MODEL = os.environ.get("LOAD_SWAP_MODEL", CLASSIFY_MODEL or "sentiment")
CHAT_MAX_TOKENS = int(os.environ.get("LOAD_CHAT_MAX_TOKENS", "16"))

REVIEWS = [
    "A warm, funny film that earns its tears.",
    "The plot makes no sense and the acting is wooden.",
    "Beautifully shot and surprisingly moving.",
    "Two hours of my life I will never get back.",
    "The cast is superb and the script is sharp.",
]
NEWS = [
    "Angela Merkel met Emmanuel Macron in Berlin on Monday.",
    "Apple opened a new office in London next to the BBC.",
    "The United Nations sent aid to Haiti after the storm.",
]
QUESTIONS = [
    ("Who wrote the novel?", "The novel Frankenstein was written by Mary Shelley in 1818."),
    ("Where is the tower?", "The Eiffel Tower stands on the Champ de Mars in Paris."),
]
SENTENCES = ["The woman buys the book.", "A dog runs across the green field."]
PROMPTS = ["Say hello in three words.", "Name a colour.", "What is two plus two?"]


class ApiUser(FastHttpUser):
    """A caller with the key of ``TUNESERVE_API_KEY``, thinking ``LOAD_WAIT_S`` on average."""

    abstract = True
    wait_time = between(0, 2 * WAIT_S)

    def on_start(self) -> None:
        key = os.environ.get("TUNESERVE_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def post(self, path: str, body: dict, **kwargs):
        return self.client.post(path, json=body, headers=self.headers, **kwargs)


class ClassifyUser(ApiUser):
    weight = 4

    @task
    def classify(self) -> None:
        body = {"inputs": random.choice(REVIEWS), "model": CLASSIFY_MODEL}
        self.post("/v1/classify", {k: v for k, v in body.items() if v is not None})


class NerUser(ApiUser):
    weight = 3

    @task
    def ner(self) -> None:
        self.post("/v1/ner", {"inputs": random.choice(NEWS)})


class QaUser(ApiUser):
    weight = 1

    @task
    def qa(self) -> None:
        question, context = random.choice(QUESTIONS)
        self.post("/v1/qa", {"question": question, "context": context})


class TranslateUser(ApiUser):
    weight = 1

    @task
    def translate(self) -> None:
        self.post("/v1/translate", {"inputs": random.choice(SENTENCES), "max_new_tokens": 24})


class ChatUser(ApiUser):
    """A streamed chat completion; the stream must end with [DONE] and no error event."""

    weight = 1

    @task
    def chat(self) -> None:
        body = {
            "messages": [{"role": "user", "content": random.choice(PROMPTS)}],
            "max_tokens": CHAT_MAX_TOKENS,
            "stream": True,
            "stream_options": {"include_usage": True},  # the last chunk counts the tokens
        }
        started = time.perf_counter()
        first_token_ms, tokens = None, 0
        with self.post(
            "/v1/chat/completions", body, stream=True, catch_response=True, name="/v1/chat (stream)"
        ) as response:
            done, error = False, None
            for line in _lines(response):
                payload = line.removeprefix("data: ")
                if payload == "[DONE]":
                    done = True
                    break
                event = json.loads(payload)
                if "error" in event:
                    error = event["error"]["message"]
                elif event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
                elif first_token_ms is None and event["choices"][0]["delta"].get("content"):
                    first_token_ms = (time.perf_counter() - started) * 1000
            if error or not done:
                response.failure(error or "the stream ended without [DONE]")
                return
        if first_token_ms is not None:
            self.environment.events.request.fire(
                request_type="SSE",
                name="time to first token",
                response_time=first_token_ms,
                response_length=0,
                exception=None,
                context={},
            )
        self.environment.events.request.fire(
            request_type="SSE",
            name="whole completion",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=tokens,  # "size" in Locust's tables: tokens per completion
            exception=None,
            context={},
        )


def _lines(response):
    """The ``data:`` lines of a server-sent event stream, as they arrive."""
    buffer = ""
    for chunk in response.iter_content(chunk_size=1024):
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            if line.startswith("data: "):
                yield line


class SwapUser(ApiUser):
    """Promotes another version of ``LOAD_SWAP_MODEL`` and rolls it back, every
    ``LOAD_SWAP_EVERY_S`` seconds, and leaves production as it found it."""

    abstract = SWAP_EVERY_S <= 0  # LOAD_SWAP_EVERY_S=0: no swapping (the class is not run)
    fixed_count = 1  # one, whatever the user count: swaps must not race each other
    wait_time = constant(max(SWAP_EVERY_S, 0))

    def on_start(self) -> None:
        super().on_start()
        path = f"/v1/models/{SWAP_MODEL}/versions"
        versions = self.client.get(path, headers=self.headers).json()["data"]
        production = [v["version"] for v in versions if "production" in v["aliases"]]
        others = [v["version"] for v in versions if "production" not in v["aliases"]]
        if not production or not others:
            raise StopUser(f"{SWAP_MODEL} needs a production version and another to swap")
        self.original, self.other, self.promoted = production[0], max(others), False

    @task
    def swap(self) -> None:
        if self.promoted:
            self.post(f"/v1/models/{SWAP_MODEL}/rollback", {}, name="rollback")
        else:
            body = {"version": self.other, "expected_from": self.original}
            self.post(f"/v1/models/{SWAP_MODEL}/promote", body, name="promote")
        self.promoted = not self.promoted

    def on_stop(self) -> None:
        if getattr(self, "promoted", False):
            self.post(f"/v1/models/{SWAP_MODEL}/rollback", {}, name="rollback")
