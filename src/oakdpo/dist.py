"""Distributed helpers for torchrun / accelerate launch (nanochat-style: small and explicit).

With WORLD_SIZE>1 the loop calls `init_distributed()` itself (NCCL with CUDA, gloo without); with WORLD_SIZE=1
torch.distributed is never initialised. Traces are generated on a shard of the problems per rank and gathered
to every rank, so every rank builds the same pairs and trains the same DDP model (no skew, no deadlock).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
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


def sharded_training() -> bool:
    """Whether accelerate shards the model in training (DeepSpeed ZeRO, FSDP): the trained copy is then not a
    whole model, and generation must run on the saved policy reloaded from disk."""
    flags = ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP")
    return any(os.environ.get(v, "").lower() in ("true", "1") for v in flags)


def zero3() -> bool:
    """Whether accelerate runs DeepSpeed ZeRO-3 (configs/accelerate/zero3.yaml)."""
    return (os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("true", "1")
            and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3")


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


def fault_point(name: str) -> None:
    """Fault injection for the failing-rank and kill tests, unset in normal runs (then this does nothing):
    OAKDPO_FAULT="<point>@<rank>" (e.g. "iter_0/generate@1") raises here on that rank; "kill:<point>@<rank>"
    SIGKILLs the process here, as a crash or an out-of-memory kill would."""
    want = os.environ.get("OAKDPO_FAULT")
    if not want:
        return
    if want == f"{name}@{rank()}":
        raise RuntimeError(f"injected fault at {name} on rank {rank()} (OAKDPO_FAULT)")
    if want == f"kill:{name}@{rank()}":
        import signal

        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def fail_fast(exc: BaseException) -> None:
    """After an exception on one rank of a multi-rank job: print it with the rank and end this process at once,
    without the barriers and collectives a normal exit would wait in (the other ranks would wait there until the
    process-group timeout). torchrun / accelerate then stop the other ranks within seconds."""
    import traceback

    from .io import UserError

    if isinstance(exc, UserError):
        text = f"error: {exc}\n"
    else:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write("".join(f"[rank {rank()}] {line}\n" for line in text.rstrip().splitlines()))
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(2 if isinstance(exc, UserError) else 1)


@contextmanager
def job():
    """A command's distributed lifetime (generate, eval): initialise when WORLD_SIZE>1, end at once on an
    exception on any rank (fail_fast), and wait for every rank before tearing the group down."""
    distributed = init_distributed()
    try:
        yield distributed
    except BaseException as e:
        if distributed:
            fail_fast(e)
        raise
    barrier()
    cleanup()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
