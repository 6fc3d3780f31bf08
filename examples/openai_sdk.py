"""The OpenAI Python SDK against tuneserve: chat (whole and streamed) and fine-tuning.

    TUNESERVE_URL=http://127.0.0.1:8000 TUNESERVE_API_KEY=… python examples/openai_sdk.py

Only ``base_url`` changes (the service's ``/v1``); the key is a tuneserve API key. The job
trains a new model ``<model>:sdk`` (``EXAMPLE_MODEL``, default ``sentiment``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from openai import OpenAI

DATA = Path(__file__).parent / "data"
MODEL = os.environ.get("EXAMPLE_MODEL", "sentiment")
URL = os.environ.get("TUNESERVE_URL", "http://127.0.0.1:8000").rstrip("/")

client = OpenAI(base_url=f"{URL}/v1", api_key=os.environ.get("TUNESERVE_API_KEY", "none"))

messages = [{"role": "user", "content": "Name a colour."}]
reply = client.chat.completions.create(model="chat", messages=messages, max_tokens=8)
print("chat:", reply.choices[0].message.content, f"({reply.usage.total_tokens} tokens)")
stream = client.chat.completions.create(model="chat", messages=messages, max_tokens=8, stream=True)
pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
print("streamed:", "".join(pieces))

with open(DATA / "reviews.jsonl", "rb") as rows:
    training = client.files.create(file=rows, purpose="fine-tune")
job = client.fine_tuning.jobs.create(
    model=MODEL,
    training_file=training.id,
    suffix="sdk",
    method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
)
print("job:", job.id, job.status)
while job.status not in ("succeeded", "failed", "cancelled"):
    time.sleep(1)
    job = client.fine_tuning.jobs.retrieve(job.id)
for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=5).data):
    print("  ", event.message)
print("ended:", job.status, job.fine_tuned_model)
if job.status != "succeeded":
    raise SystemExit(1)
