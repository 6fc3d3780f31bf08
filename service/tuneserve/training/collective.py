"""The few collectives the training loop needs, correct on one worker as on many.

Outside a DDP process group (one worker, or a test) each is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def _all_reduce(value: float, dtype: torch.dtype, op: dist.ReduceOp.RedOpType) -> float:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=dtype)
    dist.all_reduce(tensor, op=op)
    return tensor.item()


def all_agree(flag: bool) -> bool:
    """True on every rank if it is true on any (one collective per check)."""
    return bool(_all_reduce(1.0 if flag else 0.0, torch.float32, dist.ReduceOp.MAX))


def fewest(count: int) -> int:
    """The smallest ``count`` over all ranks."""
    return int(_all_reduce(count, torch.int64, dist.ReduceOp.MIN))


def total_over_ranks(value: float) -> float:
    """``value`` summed over all ranks."""
    return float(_all_reduce(value, torch.float64, dist.ReduceOp.SUM))
