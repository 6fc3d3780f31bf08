"""The tuneserve-client tour: every task, a streamed chat, and a fine-tuning job followed
to promotion. Run it against any tuneserve service:

    TUNESERVE_URL=http://127.0.0.1:8000 TUNESERVE_API_KEY=… python examples/client_tour.py

The job trains a new model ``<model>:tour`` (``EXAMPLE_MODEL``, default ``sentiment``), so
the base model's production is untouched; it needs an admin key to promote.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tuneserve_client import AsyncClient, BadRequestError, Client

DATA = Path(__file__).parent / "data"
MODEL = os.environ.get("EXAMPLE_MODEL", "sentiment")


def tasks(client: Client) -> None:
    labels = client.classify(["A wonderful film.", "A dull mess."], model=MODEL)
    print("classify:", [(r.label, round(r.score, 3)) for r in labels.results], labels.version)
    entities = client.ner("Angela Merkel visited Paris in May.").results[0].entities
    print("ner:", [(e.text, e.label) for e in entities])
    answer = client.qa("Who wrote it?", "The book was written by Mary Shelley in 1818.")
    print("qa:", answer.results[0].answer)
    print("translate:", client.translate("The woman buys the book.").results[0].translation)
    try:
        client.classify("Fine.", top_k=0)
    except BadRequestError as error:  # the service's error body, typed
        print(f"refused: {error.status_code} {error.type} param={error.param}")


def chat(client: Client) -> None:
    messages = [{"role": "user", "content": "Say hello in three words."}]
    reply = client.chat.completions.create(messages, max_completion_tokens=12)
    print("chat:", reply.choices[0].message.content, reply.usage.completion_tokens, "tokens")
    print("chat streamed: ", end="")
    for chunk in client.chat.completions.create(messages, stream=True, max_completion_tokens=12):
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    print()


def fine_tune(client: Client) -> None:
    training = client.files.create(DATA / "reviews.jsonl")
    heldout = client.files.create(DATA / "reviews-heldout.jsonl")
    job = client.fine_tuning.jobs.create(
        MODEL,
        training.id,
        validation_file=heldout.id,
        suffix="tour",
        hyperparameters={"n_epochs": 2, "batch_size": 8, "seed": 1},
    )
    print("job:", job.id, job.status)
    for event in client.fine_tuning.jobs.follow(job.id, poll_interval_s=0.5):
        print(f"  {event.message}")
    job = client.fine_tuning.jobs.get(job.id)
    if job.status != "succeeded":
        raise SystemExit(f"the job ended {job.status}: {job.error}")
    result, name = job.result, f"{MODEL}:tour"
    print("gate:", "promoted" if result["promoted"] else "not promoted", "-", result["reason"])
    if not result["promoted"]:  # the gate said no: promoting is then a person's decision
        client.models.promote(name, result["candidate_version"])
    production = client.models.get(name).aliases["production"]
    print(f"{name} production is version {production}")
    assert production == result["candidate_version"]
    print("served by:", client.classify("A joy.", model=name).version)


async def concurrently() -> None:
    async with AsyncClient() as client:
        answers = await asyncio.gather(*(client.classify(f"Review {i}: great!") for i in range(8)))
        print("async:", len(answers), "answers from version", answers[0].version)


if __name__ == "__main__":
    with Client() as client:
        tasks(client)
        chat(client)
        fine_tune(client)
    asyncio.run(concurrently())
    print("tour done")
