"""``/v1/classify``, ``/v1/ner``, ``/v1/qa``, ``/v1/translate``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from tuneserve.api.tasks import (
    ClassifyRequest,
    ClassifyResponse,
    ErrorBody,
    NerRequest,
    NerResponse,
    QaRequest,
    QaResponse,
    TranslateRequest,
    TranslateResponse,
)
from tuneserve.errors import InvalidRequest
from tuneserve.serving.gateway import GatewayDep
from tuneserve.serving.resolver import Target

ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 413, 422, 503)}
router = APIRouter(prefix="/v1", tags=["tasks"], responses=ERRORS)


def _served(target: Target, results: list[dict]) -> JSONResponse:
    """The response body. Results were validated by the task server's output models, so
    this skips FastAPI's second validation pass (``response_model`` still documents it)."""
    return JSONResponse({"model": target.name, "version": target.version, "results": results})


def _texts(inputs: str | list[str]) -> list[str]:
    return [inputs] if isinstance(inputs, str) else inputs


@router.post("/classify", response_model=ClassifyResponse)
async def classify(body: ClassifyRequest, gateway: GatewayDep) -> JSONResponse:
    """Label each input text, best labels first."""
    texts = _texts(body.inputs)
    gateway.check_texts(texts)
    target = await gateway.resolve(body.model, "classification")
    results = await gateway.predict(target, [{"text": t, "top_k": body.top_k} for t in texts])
    return _served(target, results)


@router.post("/ner", response_model=NerResponse)
async def ner(body: NerRequest, gateway: GatewayDep) -> JSONResponse:
    """Entities of each input text, with character offsets."""
    texts = _texts(body.inputs)
    gateway.check_texts(texts)
    target = await gateway.resolve(body.model, "ner")
    results = await gateway.predict(target, [{"text": t} for t in texts])
    return _served(target, results)


@router.post("/qa", response_model=QaResponse)
async def qa(body: QaRequest, gateway: GatewayDep) -> JSONResponse:
    """The answer span of each question in its context."""
    if body.inputs is not None and (body.question or body.context):
        raise InvalidRequest("give either question and context, or inputs", param="inputs")
    if body.inputs is None:
        if not (body.question and body.context):
            raise InvalidRequest("question and context are required", param="question")
        pairs = [{"question": body.question, "context": body.context}]
    else:
        pairs = [pair.model_dump() for pair in body.inputs]
    gateway.check_texts([p["context"] for p in pairs], "inputs")
    target = await gateway.resolve(body.model, "qa")
    results = await gateway.predict(target, pairs)
    return _served(target, results)


@router.post("/translate", response_model=TranslateResponse)
async def translate(body: TranslateRequest, gateway: GatewayDep) -> JSONResponse:
    """Translate each input text."""
    texts = _texts(body.inputs)
    gateway.check_texts(texts)
    target = await gateway.resolve(body.model, "translation")
    max_new = min(body.max_new_tokens, gateway.settings.max_new_tokens)
    results = await gateway.predict(target, [{"text": t, "max_new_tokens": max_new} for t in texts])
    return _served(target, results)
