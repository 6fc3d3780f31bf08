"""tuneserve-client installs alone: a fresh venv, the package, and nothing but httpx and
pydantic (and what they need) arrives; no torch, Ray or transformers."""

from __future__ import annotations

import subprocess
import venv

from conftest import ROOT

# httpx's and pydantic's own dependencies, as of their current releases
ALLOWED = {
    "tuneserve-client", "httpx", "httpcore", "h11", "anyio", "idna", "certifi", "sniffio",
    "pydantic", "pydantic-core", "annotated-types", "typing-extensions", "typing-inspection",
    "pip", "setuptools", "exceptiongroup",
}  # fmt: skip


def test_the_client_installs_alone_into_a_fresh_venv(tmp_path):
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", str(ROOT / "clients" / "python")]
    done = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    )
    installed = {line.split("==")[0].lower().replace("_", "-") for line in listed.stdout.split()}
    assert installed <= ALLOWED, installed - ALLOWED
    code = (
        "import sys, tuneserve_client; c = tuneserve_client.Client('http://127.0.0.1:9'); "
        "print(sorted(m for m in ('torch', 'ray', 'transformers', 'numpy') if m in sys.modules))"
    )
    imported = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "[]"
