"""The naive baseline: FastAPI + transformers, one forward per request, no batching.

Run as ``python -m bench.naive_server MODEL_DIR PORT THREADS``.
"""

from __future__ import annotations

import sys

import torch
import uvicorn
from fastapi import FastAPI
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main() -> None:
    model_dir, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    app = FastAPI()

    @app.post("/classify")
    def classify(body: dict) -> dict:
        inputs = tokenizer(body["inputs"], truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            probs = model(**inputs).logits.softmax(-1)[0]
        return {"label": model.config.id2label[int(probs.argmax())], "score": float(probs.max())}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
