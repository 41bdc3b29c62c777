"""What SFT and DPO share around TRL's trainers: device flags, the positions TRL's LM head projects on the CPU,
where logs go, a schedule that always updates, checkpoints a rerun resumes from, an atomic final save, and the one
library warning they hide (QUIET_WARNINGS).

- Logs (tensorboard, wandb) go to OUT/logs/<stage>, never inside a model folder that a rerun replaces.
- A schedule whose only optimizer step would fall in warmup (learning rate 0), or fewer examples than one
  optimizer batch, warns on one line; the warmup is cut so at least one update has a non-zero learning rate.
- Checkpoints: every `save_steps` into the stage's output folder (checkpoint-N, the last one kept, safetensors,
  without the pickled training_args.bin); a rerun of an unfinished stage resumes from the newest one.
- The final folder is saved by the trainer into a temporary folder (every rank takes part, as ZeRO-3 / FSDP
  need), then moved into place whole, then marked done (io.write_done).
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

from . import dist
from .io import UserError, atomic_folder

LOGGERS = ("none", "tensorboard", "wandb", "trackio", "mlflow", "comet_ml")


def native_bf16(cuda: bool) -> bool:
    """Whether the device computes bf16 in hardware: a GPU that supports it, or a CPU with AVX512-BF16 or AMX (torch
    has no public check for these). Elsewhere bf16 is emulated: on an AVX2-only AMD EPYC the tiny model's SFT steps
    took 2.7 s under bf16 autocast against 0.23 s in float32 (docs/tiny-model.md)."""
    import torch

    if cuda:
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@functools.cache
def _note_emulated_bf16() -> None:
    dist.print0("model.mixed_precision: bf16: this device has no bf16 hardware (a CPU needs AVX512-BF16 or AMX); "
                "training in model.dtype instead")


def device_args(model_cfg) -> dict:
    """use_cpu / bf16 / fp16 / ddp_find_unused_parameters for TRL's SFT and DPO configs: the CPU when there is no
    GPU. `model.mixed_precision` 'auto' autocasts only on a GPU that has model.dtype's half precision, 'bf16'
    autocasts to bf16 wherever the device has bf16 hardware (native_bf16; a CPU with AVX512-BF16 runs the tiny
    model's SFT 1.3x faster: docs/tiny-model.md) and elsewhere says so on one line, 'no' never."""
    import torch

    cuda = torch.cuda.is_available()
    mode = model_cfg.mixed_precision
    auto = mode == "auto" and cuda
    bf16 = mode == "bf16" and native_bf16(cuda)
    if mode == "bf16" and not bf16:
        _note_emulated_bf16()
    return {"use_cpu": not cuda,
            "bf16": bf16 or (auto and model_cfg.dtype == "bfloat16" and native_bf16(cuda)),
            "fp16": auto and model_cfg.dtype == "float16",
            "ddp_find_unused_parameters": model_cfg.ddp_find_unused_parameters}


# (category, message regex) of warnings the pinned libraries raise at each other, which a user cannot act on:
# TRL 1.16 and PEFT read transformers' deprecated `is_gradient_checkpointing`: SFT with LoRA, and each DPO
# iteration (three times with LoRA).
QUIET_WARNINGS = ((FutureWarning, r"`is_gradient_checkpointing` is deprecated"),)


@contextmanager
def quiet_library_warnings():
    """While open, hide the warnings in QUIET_WARNINGS; every other warning shows as before, and the filters are
    restored on exit."""
    with warnings.catch_warnings():
        for category, message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


@contextmanager
def labelled_positions_only():
    """While open, TRL's fused LM head (SFTTrainer, DPOTrainer, its reference log-probs too) projects only the
    positions that carry a label on the CPU, as it already does on Triton devices.

    TRL scores every position elsewhere to keep tile shapes fixed for compilers; in eager mode on the CPU
    nothing recompiles, and the prompt's positions (no label, log-prob discarded) are most of each row. The loss
    and gradients are the same sums without the masked terms (tests/test_sft.py). The demo's SFT steps ran
    12% faster on curriculum batches and 19% on full problems (docs/tiny-model.md). Other devices keep TRL's
    own choice."""
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton  # read by the fused forward on each call, only to choose compact scoring
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


def report_to(value: str, key: str) -> list[str]:
    """The loggers a `report_to` field names (comma-separated), checked to be known and installed."""
    names = [v.strip() for v in str(value).split(",") if v.strip()] or ["none"]
    for name in names:
        if name not in LOGGERS:
            raise UserError(f"{key}: unknown logger {name!r} (known: {', '.join(LOGGERS)})")
    import importlib.util

    module = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow",
              "comet_ml": "comet_ml"}
    for name in names:
        if name != "none" and importlib.util.find_spec(module[name]) is None:
            raise UserError(f"{key}={name}: {name} is not installed (pip install {name}, or set {key}=none)")
    return [] if names == ["none"] else names


def set_log_dir(log_dir: Path) -> None:
    """Where the loggers of the next trainer write (their callbacks read these when the trainer is built)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(log_dir)
    os.environ["WANDB_DIR"] = str(log_dir)


def optimizer_steps(n_examples: int, batch_size: int, grad_accum: int, epochs: float) -> int:
    """Optimizer steps the HF Trainer makes: batches per rank, grouped by accumulation (a last partial group still
    updates), times the epochs."""
    batches = math.ceil(n_examples / (batch_size * dist.world_size())) if n_examples else 0
    return max(1, math.ceil(math.ceil(batches / grad_accum) * epochs)) if batches else 0


def safe_warmup(name: str, n_examples: int, batch_size: int, grad_accum: int, epochs: float, warmup: float,
                what: str = "examples") -> float:
    """The warmup to hand the trainer (a ratio < 1 or a step count), cut when every step would fall in it, with a
    one-line warning for that and for fewer examples than one optimizer batch."""
    per_update = batch_size * grad_accum * dist.world_size()
    if 0 < n_examples < per_update:
        dist.print0(f"warning: {name}: {n_examples} {what} are fewer than one optimizer batch ({per_update} = "
                    f"{batch_size} per device x {grad_accum} accumulation x {dist.world_size()} rank(s)); "
                    "one update is made from them")
    total = optimizer_steps(n_examples, batch_size, grad_accum, epochs)
    steps = math.ceil(total * warmup) if warmup < 1 else int(warmup)
    if total and steps >= total:
        # Linear warmup gives step 0 a learning rate of 0: with every step in warmup, one step is a no-op.
        cut = max(0, total - 1)
        dist.print0(f"warning: {name}: all {total} optimizer step(s) fall in the warmup ({steps} step(s)), the "
                    f"first at learning rate 0; warmup cut to {cut} step(s)")
        return cut
    return warmup


def recompute_args(enabled: bool) -> dict:
    """TrainingArguments' activation recomputation: `activation_checkpointing` from transformers 5.23 on,
    `gradient_checkpointing` before (the vllm extra's 5.20.2)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return {"activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing": enabled}


def checkpoint_args(save_steps: int) -> dict:
    """TrainingArguments for resumable stages: a checkpoint every `save_steps` optimizer steps, the last one kept."""
    if save_steps <= 0:
        return {"save_strategy": "no"}
    return {"save_strategy": "steps", "save_steps": save_steps, "save_total_limit": 1, "save_only_model": False}


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint-N in `folder` (one that holds trainer_state.json), or None."""
    best = None
    for p in folder.glob("checkpoint-*") if folder.is_dir() else []:
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and (p / "trainer_state.json").is_file() and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), p)
    return best[1] if best else None


def hygiene_callback(stage: str):
    """A TrainerCallback that removes the pickled training_args.bin from each checkpoint as it is written (the run
    records config.yaml instead; artifacts a user opens never need unpickling). `stage` names its fault point
    ("<stage>/checkpoint", dist.fault_point)."""
    from transformers import TrainerCallback

    class _NoPickledArgs(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                for p in Path(args.output_dir).glob("checkpoint-*/training_args.bin"):
                    p.unlink(missing_ok=True)
            dist.fault_point(f"{stage}/checkpoint")

    return _NoPickledArgs()


def save_trained(trainer, out_dir: Path, tokenizer, extra: dict[str, str] | None = None) -> None:
    """Save the trained model (trainer.save_model: every rank takes part), the tokenizer and `extra` {name: text}
    into a temporary folder and move it into place whole, replacing any earlier contents (checkpoints included)."""
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.final.tmp")  # the same path on every rank
    if dist.is_main():
        shutil.rmtree(staging, ignore_errors=True)
    dist.barrier()
    trainer.save_model(str(staging))
    dist.barrier()
    if dist.is_main():
        with atomic_folder(out_dir) as tmp:
            for p in staging.iterdir():
                if p.name != "training_args.bin" and not p.name.startswith("checkpoint-"):
                    shutil.move(str(p), tmp / p.name)
            tokenizer.save_pretrained(tmp)
            for name, text in (extra or {}).items():
                (tmp / name).write_text(text, encoding="utf-8")
        shutil.rmtree(staging, ignore_errors=True)
    dist.barrier()


def state_json(state) -> str:
    """trainer_state.json's text (TrainerState.save_to_json writes the same, but only to a path)."""
    import dataclasses
    import json

    return json.dumps(dataclasses.asdict(state), indent=2, sort_keys=True) + "\n"
