"""Distributed helpers for torchrun / accelerate launch (nanochat-style: small and explicit).

With WORLD_SIZE>1 the loop calls `init_distributed()` itself (NCCL with CUDA, gloo without); with WORLD_SIZE=1
torch.distributed is never initialised. Traces are generated on a shard of the problems per rank and gathered
to every rank, so every rank builds the same pairs and trains the same DDP model (no skew, no deadlock).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kwargs) -> None:
    """Print on rank 0 only (logs are concise and rank-0)."""
    if is_main():
        print(*args, **kwargs, flush=True)


def init_distributed() -> bool:
    """Initialise torch.distributed when launched with WORLD_SIZE>1; returns whether it is distributed."""
    if world_size() <= 1:
        return False
    if dist.is_initialized():
        return True
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        backend = "nccl"
    else:
        backend = "gloo"
    # Generous timeout: other ranks wait at a gather while rank 0 may still be generating a long shard.
    dist.init_process_group(backend=backend, timeout=timedelta(hours=2))
    return True


def device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def shard(items: list, r: int | None = None, w: int | None = None) -> list:
    """Contiguous shard of `items` for rank r of w (ranks beyond len(items) get an empty list)."""
    r = rank() if r is None else r
    w = world_size() if w is None else w
    per = -(-len(items) // w) if items else 0
    return items[r * per:(r + 1) * per]


def gather_lists(local: list) -> list:
    """Concatenate every rank's list, in rank order, on every rank (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(local)
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, local)
    return [x for part in out for x in part]


def broadcast_object(obj):
    """Rank 0's value on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
