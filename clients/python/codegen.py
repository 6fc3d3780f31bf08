"""Regenerate ``tuneserve_client/models.py`` from the service's OpenAPI document.

The service's pydantic models are the one source of the contract; the client's are generated
from the document they produce, so the client needs neither the service nor its
dependencies. ``make client-models`` writes the file; ``tests/test_client.py`` fails when
the committed file is not what this produces from the service as it is now.

    python clients/python/codegen.py [openapi.json]   # default: the service's own app
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = Path(__file__).parent / "tuneserve_client" / "models.py"
HEADER = '''"""The API's request and response bodies, GENERATED from the service's OpenAPI
document by ``clients/python/codegen.py`` (datamodel-code-generator): do not edit; run
``make client-models`` after changing the service's schemas."""

'''
# pinned in the service's dev extras: another version may write the same models differently
OPTIONS = [
    "--input-file-type", "openapi",
    "--output-model-type", "pydantic_v2.BaseModel",
    "--preset", "standard-py311-20260619",
    "--disable-timestamp",
    "--enum-field-as-literal", "all",
    "--use-double-quotes",
    "--field-constraints",
    "--use-annotated",
    "--use-field-description",
    "--use-schema-description",
    "--formatters", "ruff-format",
]  # fmt: skip


def service_openapi() -> dict:
    """The document the service serves at ``/openapi.json`` (built here, no Ray started)."""
    from tuneserve.serving.api import create_api
    from tuneserve.tasks.catalog import builtin_catalog

    return create_api(builtin_catalog()).openapi()


def generate(openapi: dict) -> str:
    """The models module for ``openapi``: datamodel-codegen's output under our header."""
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder, "openapi.json"), Path(folder, "models.py")
        source.write_text(json.dumps(openapi, sort_keys=True))
        tool = Path(sys.executable).with_name("datamodel-codegen")  # the same venv's
        command = [str(tool), "--input", str(source), "--output", str(target)]
        subprocess.run([*command, *OPTIONS], check=True, cwd=folder)
        generated = target.read_text()
    return HEADER + generated.split("\n\n", 1)[1]  # without the tool's own comment


if __name__ == "__main__":
    document = json.loads(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 else None
    MODELS.write_text(generate(document or service_openapi()))
    print(f"wrote {MODELS}")
