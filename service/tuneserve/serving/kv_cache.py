"""Reshaping a batch's KV cache as sequences join and leave it (continuous batching).

Rows are left-padded: every row's newest token sits in the last column, so a decoding
step appends one column for all rows. Joining pads the shorter side on the left; leaving
selects rows and trims columns that are padding in every remaining row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pad_left(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing == 0:
        return tensor
    pads = [0, 0] * (tensor.dim() - 1 - dim % tensor.dim()) + [missing, 0]
    return F.pad(tensor, pads)


def merge(cache, attention: torch.Tensor, other_cache, other_attention: torch.Tensor):
    """One cache (and attention mask) holding the rows of both, left-aligned to one length."""
    length = max(attention.shape[1], other_attention.shape[1])
    for layer, other in zip(cache.layers, other_cache.layers, strict=True):
        layer.keys = torch.cat([_pad_left(layer.keys, length, 2), _pad_left(other.keys, length, 2)])
        layer.values = torch.cat(
            [_pad_left(layer.values, length, 2), _pad_left(other.values, length, 2)]
        )
    attention = torch.cat([_pad_left(attention, length, 1), _pad_left(other_attention, length, 1)])
    return cache, attention


def select(cache, attention: torch.Tensor, rows: list[int]):
    """Keep only ``rows``, then drop leading columns that no remaining row attends to."""
    index = torch.tensor(rows, dtype=torch.long, device=attention.device)
    attention = attention.index_select(0, index)
    used = attention.sum(0).nonzero()
    first = int(used[0]) if len(used) else attention.shape[1]
    attention = attention[:, first:]
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, index)[:, :, first:]
        layer.values = layer.values.index_select(0, index)[:, :, first:]
    return cache, attention
