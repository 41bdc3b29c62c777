"""The vLLM generation backend (generation.backend: vllm; a CUDA GPU and the `vllm` extra, vllm 0.33.0, whose LLM,
SamplingParams and LoRARequest take the arguments below, as 0.34.0's do).

Lifecycle, so that one GPU holds one copy of the weights at a time:
- The engine loads the checkpoint folder the policy came from (load_policy records it); a LoRA policy's adapter
  is applied per request (LoRARequest), with `max_lora_rank` from the adapter's adapter_config.json (raised to a rank
  vLLM accepts).
- Before vLLM generates, the HF training copy is moved off the GPU (to the CPU) and the CUDA cache emptied; the
  stage that runs the model next moves it back (oakdpo.model.placement).
- After generating, the engine sleeps (vLLM sleep mode, level 1: weights offloaded to the CPU, KV cache freed),
  so DPO has the GPU; the next generation wakes it. `release()` (called by the loop before DPO, and at exit)
  makes sure of it.
- One engine per process: under torchrun each rank runs its own engine on its own GPU over its shard of the
  problems (distributed_executor_backend="external_launcher", as TRL's colocate mode does), seeded by rank.
- A LoRA policy keeps one engine for the run (the base does not change; each new adapter gets a new id); full
  fine-tuning writes new weights every iteration, so the old engine is shut down and a new one loads them.
Evaluation runs through the same backend (evaluation.evaluate passes the run's generation.backend).
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

from . import dist
from .io import UserError


class _Engine:
    def __init__(self, llm, base: str, lora_rank: int | None):
        self.llm, self.base, self.lora_rank, self.sleeping = llm, base, lora_rank, False
        self.lora_ids: dict[str, int] = {}


_ENGINE: _Engine | None = None


def _import_vllm():
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise UserError("generation.backend=vllm: vllm is not installed (pip install -e '.[vllm]' on a CUDA "
                        "machine); set generation.backend=hf") from None
    return vllm, LoRARequest


VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts (MaxLoRARanks)


def _lora_rank(adapter: str | None) -> int | None:
    """The engine's max_lora_rank for `adapter`: the least rank vLLM accepts that admits the adapter's `r`."""
    if not adapter:
        return None
    where = f"{adapter}/adapter_config.json"
    try:
        r = int(json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{where}: missing or unreadable LoRA rank 'r'") from None
    fits = [k for k in VLLM_LORA_RANKS if k >= r]
    if not fits:
        raise UserError(f"{where}: LoRA rank {r} is above vLLM's largest, {VLLM_LORA_RANKS[-1]}")
    return fits[0]


def _free_gpu() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def shutdown() -> None:
    """Shut the engine down and free its GPU memory."""
    global _ENGINE
    if _ENGINE is None:
        return
    llm, _ENGINE = _ENGINE.llm, None
    shut = getattr(getattr(llm, "llm_engine", None), "shutdown", None)
    if callable(shut):
        shut()
    del llm
    _free_gpu()


def release() -> None:
    """Before training: put the engine to sleep (weights to the CPU, KV cache freed) so the trainer has the GPU."""
    if _ENGINE is not None and not _ENGINE.sleeping:
        _ENGINE.llm.sleep(level=1)
        _ENGINE.sleeping = True
        _free_gpu()


def _engine(base: str, tokenizer_path: str, adapter: str | None, gen_cfg, seed: int) -> _Engine:
    """The engine for `base` (a new one when the base's weights changed), awake."""
    global _ENGINE
    vllm, _ = _import_vllm()
    rank = _lora_rank(adapter)
    if _ENGINE is not None and (_ENGINE.base != base or (rank or 0) > (_ENGINE.lora_rank or 0)):
        shutdown()  # full fine-tuning wrote new weights (or an adapter needs a larger rank): load them anew
    if _ENGINE is None:
        # the engine's own seed goes to np.random.seed, which takes 32 bits; each request carries its item's seed
        kwargs = dict(model=base, tokenizer=tokenizer_path, seed=(seed + dist.rank()) % 2**32,
                      gpu_memory_utilization=gen_cfg.vllm_gpu_memory_utilization, enable_sleep_mode=True)
        if rank:
            kwargs.update(enable_lora=True, max_lora_rank=rank)
        if dist.world_size() > 1:  # one engine per rank, each on its own GPU, under torchrun
            kwargs.update(distributed_executor_backend="external_launcher", tensor_parallel_size=1)
        _ENGINE = _Engine(vllm.LLM(**kwargs), base, rank)
    elif _ENGINE.sleeping:
        _ENGINE.llm.wake_up()
        _ENGINE.sleeping = False
    return _ENGINE


def generate(model, requests: list[tuple[list[int], int]], sampling: dict, gen_cfg, progress: bool = True
             ) -> list[tuple[str, int, bool]]:
    """One completion per (prompt token ids, seed) request: (text, generated tokens, hit max_tokens). The ids go
    to vLLM as they are (a TokensPrompt: no second BOS). `sampling` holds vllm.SamplingParams fields
    (temperature, top_p, max_tokens, stop, stop_token_ids, ...) shared by all."""
    import torch

    if not torch.cuda.is_available():
        raise UserError("generation.backend=vllm needs a CUDA GPU; set generation.backend=hf on CPU")
    path = getattr(model, "oakdpo_path", None)
    base = getattr(model, "oakdpo_base", None) or path
    adapter = getattr(model, "oakdpo_adapter", None)
    if not base or not os.path.isdir(str(base)):
        raise UserError("generation.backend=vllm: the policy must be loaded from a local folder (load_policy)")
    model.to("cpu")  # the training copy leaves the GPU while vLLM holds the weights
    _free_gpu()
    tok_path = path if path and os.path.isfile(os.path.join(str(path), "tokenizer_config.json")) else base
    engine = _engine(str(base), str(tok_path), adapter, gen_cfg, requests[0][1] if requests else 0)
    vllm, LoRARequest = _import_vllm()
    lora = None
    if adapter:  # vLLM caches adapters by id: a new adapter folder (a new iteration) needs a new id
        lora_id = engine.lora_ids.setdefault(str(adapter), len(engine.lora_ids) + 1)
        lora = LoRARequest(f"policy-{lora_id}", lora_id, str(adapter))
    params = [vllm.SamplingParams(n=1, seed=seed, **sampling) for _, seed in requests]
    try:
        prompts = [{"prompt_token_ids": list(ids)} for ids, _ in requests]
        outs = engine.llm.generate(prompts, params, lora_request=lora, use_tqdm=progress and dist.is_main())
    finally:
        release()
    return [(o.outputs[0].text, len(o.outputs[0].token_ids), getattr(o.outputs[0], "finish_reason", None) == "length")
            for o in outs]
