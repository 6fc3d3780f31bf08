"""The few collectives the training loop needs, correct on one worker as on many.

Outside a DDP process group (one worker, or a test) each is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def all_agree(flag: bool) -> bool:
    """True on every rank if it is true on any (one collective per check)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def fewest(count: int) -> int:
    """The smallest ``count`` over all ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return count
    value = torch.tensor([count], dtype=torch.int64)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return int(value.item())


def total_over_ranks(value: float) -> float:
    """``value`` summed over all ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item())
