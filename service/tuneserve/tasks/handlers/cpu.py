"""What this machine's CPU can do, for the choices that depend on it (training precision,
which optimised variants are worth trying)."""

from __future__ import annotations

import torch


def cpu_multiplies_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX-512 BF16). Elsewhere torch
    emulates it, several times slower than float32."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
