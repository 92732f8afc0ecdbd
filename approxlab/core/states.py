"""Chunked prefix states shared by the torch and Triton chunk forms of causal linear attention."""

from __future__ import annotations

import torch


def chunked(x: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """(…, N, d) -> (…, ⌈N/C⌉, C, d), zero-padded at the end (zero features and values add nothing);
    a view when C divides N."""
    chunks = -(-x.shape[-2] // chunk_size)
    pad = chunks * chunk_size - x.shape[-2]
    if pad:
        x = torch.nn.functional.pad(x, (0, 0, 0, pad))
    return x.unflatten(-2, (chunks, chunk_size))


def chunk_prefix_states(fk: torch.Tensor, v: torch.Tensor):
    """States of chunked keys fk (…, chunks, C, F) and values v (…, chunks, C, Dv):
    the exclusive prefixes S_<c = Σ_{c'<c} fk_c'ᵀ v_c' (…, chunks, F, Dv) and z_<c (…, chunks, F),
    and the totals S, z over every chunk."""
    kv, kz = fk.transpose(-1, -2) @ v, fk.sum(-2)
    prefix, prefix_z = torch.zeros_like(kv), torch.zeros_like(kz)
    if kv.shape[-3] > 1:
        prefix[..., 1:, :, :] = kv[..., :-1, :, :].cumsum(-3)
        prefix_z[..., 1:, :] = kz[..., :-1, :].cumsum(-2)
    return prefix, prefix_z, prefix[..., -1, :, :] + kv[..., -1, :, :], prefix_z[..., -1, :] + kz[..., -1, :]
