"""The plain Ray Serve baseline: one deployment, ``@serve.batch``, no gateway."""

from __future__ import annotations

import torch
from ray import serve
from starlette.requests import Request
from transformers import AutoModelForSequenceClassification, AutoTokenizer


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
class PlainClassifier:
    def __init__(self, model_dir: str, threads: int):
        torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def classify(self, texts: list[str]) -> list[dict]:
        inputs = self.tokenizer(
            texts, padding=True, truncation=True, max_length=256, return_tensors="pt"
        )
        with torch.inference_mode():
            probs = self.model(**inputs).logits.softmax(-1)
        labels = self.model.config.id2label
        return [{"label": labels[int(p.argmax())], "score": float(p.max())} for p in probs]

    async def __call__(self, request: Request) -> dict:
        return await self.classify((await request.json())["inputs"])
