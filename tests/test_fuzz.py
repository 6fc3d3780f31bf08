"""Schemathesis against the session service: every documented operation, fuzzed and bounded.

For each operation in the running service's ``/openapi.json`` it sends generated requests,
valid and invalid, a fixed number per operation and derandomized (the same cases every run),
with the admin key, and checks every answer: never a 5xx, a status code the operation
documents, the documented content type, and a body that conforms to the documented schema.

The service is shared with the other test modules, so nothing here may move production,
train, or cost much. What is constrained, and why:

- ``promote`` / ``rollback`` act on a throwaway copy of ``sentiment`` (``fuzz-sentiment``),
  never on a starter model: a generated ``{"version": 1}`` would otherwise be a real move.
- ``POST /v1/fine_tuning/jobs``: a job is created only for a training file that exists, so
  every generated file id is prefixed with one that no file has (``file-fuzz-absent-``):
  a valid body is then a 404 naming the file, never a queued job.
- ``POST /v1/models`` (import): every generated ``source`` is put under a folder that does
  not exist (``/fuzz-absent/``): a valid body is then a 404, never a download or a model
  loaded (a bare ``/`` or a hub id would otherwise be tried).
- chat and translate: a token budget within the server's limit is cut to
  ``FUZZ_MAX_TOKENS`` (one over the limit is kept: its 400 is part of what is tested), and
  fewer cases run for them (``SLOW_EXAMPLES``): each valid case runs the model.
- key revocation, file deletion, job cancellation: generated ids name nothing (404).
  Created keys and uploaded files are cheap and touch no other tenant's state.

Schemathesis's own pytest integration is not used: its lazy ``from_fixture`` loader reads
``Function._nodeid``, which pytest 9.2 no longer has. The generation is the same
(``APIOperation.as_strategy``, both modes), driven by Hypothesis here, one subtest per
operation. The counts (cases and statuses per operation) are printed at the end of the
module (``-s`` shows them) and written as JSON next to the session's temporary files.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict

import hypothesis
import pytest
import schemathesis
from conftest import production_copy
from hypothesis import strategies as st
from schemathesis import GenerationMode

SEED = 20260117  # the same cases every run, whatever else changes in this file
EXAMPLES = 50  # per operation
SLOW_EXAMPLES = 15  # chat and translate: every valid case generates tokens
FUZZ_MAX_TOKENS = 4
THROWAWAY_MODEL = "fuzz-sentiment"
ABSENT_FILE_PREFIX = "file-fuzz-absent-"
ABSENT_FOLDER = "/fuzz-absent/"
SLOW_PATHS = re.compile(r"^/v1/(chat/completions|translate)$")
MOVES_PRODUCTION = re.compile(r"^/v1/models/\{name\}/(promote|rollback)$")
TOKEN_BUDGETS = {
    "/v1/chat/completions": ("max_tokens", "max_completion_tokens"),
    "/v1/translate": ("max_new_tokens",),
}
# cases every run includes besides the generated ones: answers generation rarely reaches
# (a streamed completion answers with server-sent events, another documented media type)
ALWAYS = {
    "/v1/chat/completions": [
        {
            "messages": [{"role": "user", "content": "Hello"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ]
}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
FUZZ_SETTINGS = hypothesis.settings(
    derandomize=True,  # with SEED: no randomness and no example database between runs
    database=None,
    deadline=None,  # the service's latency is not what is tested here
    # generation speed on a loaded 2-core machine is not either; failures still shrink
    suppress_health_check=list(hypothesis.HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed_api(ready_service: str, admin_headers: dict[str, str], service_settings):
    """The running service's own OpenAPI document (and the throwaway model it may move)."""
    production_copy(service_settings, "sentiment", THROWAWAY_MODEL, "classification")
    return schemathesis.openapi.from_url(f"{ready_service}/openapi.json", headers=admin_headers)


@pytest.fixture(scope="module")
def fuzz_log(tmp_path_factory: pytest.TempPathFactory):
    """Per operation, the answers its cases got; reported when the module ends."""
    log: dict[str, Counter] = defaultdict(Counter)
    yield log
    summary = {op: dict(sorted(statuses.items())) for op, statuses in sorted(log.items())}
    path = tmp_path_factory.mktemp("fuzz") / "summary.json"
    path.write_text(json.dumps(summary, indent=1))
    print(f"\nfuzzing summary ({path}):")
    for op, statuses in summary.items():
        shown = " ".join(f"{code}×{n}" for code, n in statuses.items())
        print(f"  {op:<48} {sum(statuses.values()):>3} cases  {shown}")


def bounded(case, token_limit: int) -> None:
    """Keep a generated case from doing expensive or lasting work (see the module docstring)."""
    body, path = case.body, case.operation.path
    if not isinstance(body, dict):
        return
    if path == "/v1/fine_tuning/jobs":
        for field in ("training_file", "validation_file"):
            if isinstance(body.get(field), str):
                body[field] = ABSENT_FILE_PREFIX + body[field]
    if path == "/v1/models" and isinstance(body.get("source"), str):
        body["source"] = ABSENT_FOLDER + body["source"].lstrip("/")
    fields = TOKEN_BUDGETS.get(path, ())
    for field in fields:
        value = body.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value <= token_limit:
            body[field] = min(value, FUZZ_MAX_TOKENS)
    if fields and not any(field in body for field in fields):
        body[fields[0]] = FUZZ_MAX_TOKENS  # the server's default budget is far larger


def answer(response) -> str:
    """The status, and the media type when it is not JSON (a streamed chat, the metrics)."""
    media = (response.headers.get("content-type") or [""])[0].split(";")[0]
    return str(response.status_code) + ("" if media == "application/json" else f" {media}")


def fuzz(operation, headers: dict[str, str], token_limit: int, log: Counter) -> None:
    """Run one operation's cases, valid and invalid; the first failing one is shrunk."""
    fixed = {"headers": headers}
    if MOVES_PRODUCTION.match(operation.path):
        fixed["path_parameters"] = {"name": THROWAWAY_MODEL}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, **fixed),
        operation.as_strategy(GenerationMode.NEGATIVE, **fixed),
    )
    examples = SLOW_EXAMPLES if SLOW_PATHS.match(operation.path) else EXAMPLES

    def run(case) -> None:
        bounded(case, token_limit)
        response = case.call(headers=headers, timeout=120)
        log[answer(response)] += 1
        case.validate_response(response, checks=CHECKS)

    for body in ALWAYS.get(operation.path, ()):
        explicit = operation.Case(body={**body}, headers=headers)  # a copy: bounded() edits it
        run = hypothesis.example(case=explicit)(run)
    run = hypothesis.seed(SEED)(hypothesis.given(case=cases)(run))
    hypothesis.settings(FUZZ_SETTINGS, max_examples=examples)(run)()


def test_every_operation_answers_as_documented(
    fuzzed_api, admin_headers, service_settings, fuzz_log, subtests
):
    token_limit = service_settings.limits.max_new_tokens
    operations = [result.ok() for result in fuzzed_api.get_all_operations()]
    assert len(operations) > 20, "the document lost its operations"
    for operation in operations:
        with subtests.test(msg=operation.label):
            fuzz(operation, admin_headers, token_limit, fuzz_log[operation.label])
    unanswered = [operation.label for operation in operations if not fuzz_log[operation.label]]
    assert unanswered == []
