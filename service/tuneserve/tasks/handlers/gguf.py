"""GGUF files (llama.cpp's quantised format) read by transformers as float32 models.

Both an imported GGUF file and the embedded chat default pass through here: transformers
dequantises the file on load, and the result is saved as an ordinary safetensors folder,
which is what serves and fine-tunes from then on.
"""

from __future__ import annotations

from pathlib import Path


def dequantise(gguf_file: Path, into: Path) -> None:
    """Write the causal language model in ``gguf_file`` to ``into`` as float32 safetensors.

    Raises whatever transformers raises for a file it cannot read (an architecture it does
    not know, a corrupt file): the caller words the refusal.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    options = {"gguf_file": gguf_file.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **options)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, dtype=torch.float32, **options)
    # transformers marks a model read from GGUF as quantised and will not save it, though
    # its weights are plain float32 once dequantised: it is saved as the model it now is
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(into)
    tokenizer.save_pretrained(into)
