"""examples/ run as a user runs them, against the live service: curl, the OpenAI SDK and
tuneserve-client, each ending in a fine-tuning job that succeeds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def environment(ready_service, admin_key) -> dict[str, str]:
    return os.environ | {"TUNESERVE_URL": ready_service, "TUNESERVE_API_KEY": admin_key}


def run(command: list[str], environment: dict[str, str]) -> str:
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def test_the_client_tour(environment):
    output = run([sys.executable, str(EXAMPLES / "client_tour.py")], environment)
    for line in ("classify:", "ner:", "qa:", "translate:", "chat streamed:", "async: 8"):
        assert line in output, output
    assert "refused: 422 invalid_request_error param=top_k" in output
    # followed: the job's events in order, then promotion (by its gate or by hand)
    assert "files validated" in output and "status: succeeded" in output, output
    assert output.index("files validated") < output.index("status: succeeded")
    assert "sentiment:tour production is version" in output and "tour done" in output


def test_the_openai_sdk_example(environment):
    output = run([sys.executable, str(EXAMPLES / "openai_sdk.py")], environment)
    assert "chat:" in output and "streamed:" in output
    assert "ended: succeeded sentiment:sdk@" in output


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl, jq")
def test_the_curl_example(environment):
    output = run(["bash", str(EXAMPLES / "curl.sh")], environment)
    assert '"label":' in output and "succeeded" in output.splitlines()[-1]
