"""Supervised fine-tuning on gold traces (SFT) with TRL; DPO lives in oakdpo.dpo.

SFT: TRL's SFTTrainer on a prompt-completion dataset: the prompt as oakdpo.prompting frames it and the
problem's gold trace in the config's format style. With a chat template the rows are TRL's conversational form
(messages + an assistant message, ended by the template's end of turn); otherwise plain text, the completion
ended by EOS. TRL masks the prompt tokens (labels -100), so the loss is on the completion only.
LoRA (PEFT) is optional (model.lora). The output folder is a standard HF folder (safetensors + tokenizer; an
adapter folder with LoRA) with trainer_state.json and the resolved config.yaml next to it.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import shutil
import time
from pathlib import Path

from . import dist, trainers
from .config import Config
from .io import DONE, UserError, read_json, write_done, write_json
from .prompting import Framing
from .tasks import get_task
from .trace import Problem


# ----------------------------------------------------------------------------------------------------------------
# SFT
# ----------------------------------------------------------------------------------------------------------------

def sft_rows(problems: list[Problem], framing: Framing) -> list[dict]:
    """{"prompt", "completion"} per problem: its framed prompt and its gold trace (plain: text + EOS; chat:
    messages + one assistant message). Problems without a gold trace (e.g. a FOLIO problem the solver cannot
    prove) are skipped."""
    rows = []
    for p in problems:
        trace = get_task(p.task).gold_trace(p, framing.style)
        if trace is None:
            continue
        prompt = framing.prompt(p)
        if framing.chat:
            rows.append({"prompt": prompt.messages, "completion": [{"role": "assistant", "content": trace}]})
        else:
            rows.append({"prompt": prompt.text, "completion": trace + framing.completion_end()})
    return rows


def _row_length(row: dict) -> int:
    def size(part):
        return len(part) if isinstance(part, str) else sum(len(m["content"]) for m in part)

    return size(row["prompt"]) + size(row["completion"])


def sft_dataset(problems: list[Problem], framing: Framing, cfg: Config | None = None, world_size: int = 1):
    """datasets.Dataset of sft_rows(problems, framing), in training order with a curriculum (training_rows)."""
    from datasets import Dataset

    return Dataset.from_list(training_rows(problems, framing, cfg, world_size))


def training_rows(problems: list[Problem], framing: Framing, cfg: Config | None = None,
                  world_size: int = 1) -> list[dict]:
    """sft_rows(problems, framing); with a curriculum (cfg.sft.curriculum_steps > 0) in training order, to be read
    sequentially: first curriculum_steps optimizer steps of cut-down problems (data.cut_to_proof), then `epochs`
    passes over the full ones; within each phase, batches of similar length in a seeded random order.
    """
    rows = sft_rows(problems, framing)
    if cfg is None or cfg.sft.curriculum_steps <= 0 or not rows:
        return rows
    import random

    s = cfg.sft
    rng = random.Random(s.seed)
    per_step = s.batch_size * s.grad_accum * world_size
    cut = []
    for i in range(s.curriculum_steps * per_step):
        p = problems[i % len(problems)]
        cut.append(get_task(p.task).curriculum_problem(p, s.curriculum_keep, rng, s.curriculum_distractor))
    cut_rows = sft_rows(cut, framing)
    passes = [cut_rows] + [rows] * int(s.epochs) + [rng.sample(rows, round((s.epochs % 1) * len(rows)))]
    return [r for p in passes for r in _length_batches(p, s.batch_size * world_size, rng)]


def distinct_dataset(rows: list[dict]):
    """(datasets.Dataset of each distinct row once, with its index in a "row" column; the rows as those indices).

    TRL then prepares (tokenizes, masks, truncates) each row once, though a curriculum's passes repeat every full
    row: the demo's 26,400 rows are 17,889 distinct, and TRL prepares them in 10-11 s instead of 16 s.
    in_training_order puts the prepared rows back in order.
    """
    from datasets import Dataset

    index: dict[str, int] = {}
    order = [index.setdefault(json.dumps([r["prompt"], r["completion"]]), len(index)) for r in rows]
    distinct = [None] * len(index)
    for r, i in zip(rows, order):
        distinct[i] = distinct[i] or {**r, "row": i}
    return Dataset.from_list(distinct), order


def in_training_order(prepared, order: list[int]):
    """The rows of a prepared distinct_dataset in `order`, without the "row" column; rows TRL dropped (fully masked
    by truncation) stay dropped, as they would be from the full dataset."""
    at = {r: i for i, r in enumerate(prepared["row"])}
    return prepared.select([at[r] for r in order if r in at]).remove_columns("row")


def _length_batches(rows: list[dict], batch: int, rng) -> list[dict]:
    """Rows sorted by length, cut into batches, the batches shuffled: little padding, random batch order."""
    rows = sorted(rows, key=_row_length)
    batches = [rows[i:i + batch] for i in range(0, len(rows), batch)]
    rng.shuffle(batches)
    return [r for b in batches for r in b]


def lora_config(model_cfg):
    """PEFT LoraConfig from the model section."""
    from peft import LoraConfig

    return LoraConfig(r=model_cfg.lora_r, lora_alpha=model_cfg.lora_alpha, lora_dropout=model_cfg.lora_dropout,
                      target_modules=list(model_cfg.lora_target_modules), task_type="CAUSAL_LM")


def sft_args(cfg: Config, out_dir: str | os.PathLike, n_rows: int | None = None):
    """TRL SFTConfig from our config: completion-only loss, checkpoints every sft.save_steps in `out_dir` (a rerun
    resumes from the newest), CPU when there is no GPU, autocast as model.mixed_precision says. `n_rows` (the
    dataset size) lets the warmup be checked against the schedule (trainers.safe_warmup)."""
    from trl import SFTConfig

    s = cfg.sft
    epochs = 1 if s.curriculum_steps > 0 else s.epochs  # a curriculum dataset holds every epoch
    warmup = s.warmup_ratio if n_rows is None else trainers.safe_warmup("sft", n_rows, s.batch_size, s.grad_accum,
                                                                        epochs, s.warmup_ratio)
    return SFTConfig(
        output_dir=str(out_dir),
        num_train_epochs=epochs,
        learning_rate=s.learning_rate,
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum,
        max_length=s.max_length,
        warmup_steps=warmup,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=s.weight_decay,
        lr_scheduler_type=s.lr_scheduler,
        **trainers.recompute_args(s.activation_checkpointing),
        logging_steps=s.logging_steps,
        report_to=trainers.report_to(s.report_to, "sft.report_to"),
        seed=s.seed,
        data_seed=s.seed,
        completion_only_loss=True,
        train_sampling_strategy=("sequential" if s.curriculum_steps > 0 else
                                 "group_by_length" if s.group_by_length else "random"),
        **trainers.checkpoint_args(s.save_steps),
        **trainers.device_args(cfg.model),
        disable_tqdm=not dist.is_main(),
        dataloader_num_workers=0,
        dataset_num_proc=s.dataset_num_proc if s.dataset_num_proc > 1 else None,
    )


def run_sft(cfg: Config, problems: list[Problem], model_path: str | os.PathLike, out_dir: str | os.PathLike,
            log_dir: str | os.PathLike | None = None, restart_model=None) -> dict:
    """Fine-tune the policy at `model_path` on the gold traces of `problems`; write the result to `out_dir`.

    Writes out_dir/{model + tokenizer files, trainer_state.json, config.yaml, sft_metrics.json, DONE.json}; the
    DONE.json marker is written last (io.is_done tells a finished run). A rerun of an unfinished run resumes from
    the newest checkpoint in out_dir. Logs go to `log_dir` (default: a logs/ folder beside out_dir). Returns the
    metrics dict (train loss, steps, runtime, tokens, examples, parameters, restarts). Problems without a gold trace
    are skipped.

    With sft.restarts, a training loss above sft.restart_loss at sft.restart_step (loss_check) stops the run, and
    SFT starts again from `model_path` with another data order (restart_config), at most sft.restarts times. The
    last restart is checked against the earlier runs instead: when its loss there is above the lowest of theirs,
    SFT goes on from that run's checkpoint at its check, which every failed run leaves in out_dir/attempt_{k}/. So
    a strict bound costs time only, never a model worse than the best run's. `restart_model(k)`, when given,
    names the initial model of restart k instead (quickstart draws a new tiny model: loop.restart_init).
    out_dir/restart.json records the restart in progress, so a rerun resumes it, and sft_metrics.json the failed
    checks.
    """
    t0 = time.time()
    out_dir = Path(out_dir)
    record = _read_restart(out_dir)
    dist.barrier()  # every rank has read the record before rank 0 clears a folder left without a checkpoint
    if dist.is_main() and out_dir.exists() and not (out_dir / DONE).exists() and \
            trainers.latest_checkpoint(out_dir) is None:
        _clear(out_dir)  # what a run killed before its first checkpoint left; earlier runs' checkpoints stay
        _write_restart(out_dir, record)
    dist.barrier()
    trainers.set_log_dir(Path(log_dir) if log_dir else out_dir.parent / "logs" / out_dir.name)
    while True:
        restart, checks, continued = record.get("restart", 0), record.get("checks", []), "continued" in record
        if continued:
            if dist.is_main():
                _restore_attempt(out_dir, restart)
            dist.barrier()
        check = None if continued else loss_check(cfg.sft, restart, checks)
        start = model_path if restart == 0 or restart_model is None else restart_model(restart)
        run_cfg = restart_config(cfg, restart)
        trainer, tokenizer, metrics = _train_sft(run_cfg, problems, start, out_dir, check)
        if check is None or check.failed is None:
            break
        failed, checks = check.failed, checks + [check.failed]
        if restart < cfg.sft.restarts:
            record = {"restart": restart + 1, "checks": checks}
            dist.print0(f"sft: training loss {failed['loss']:.4f} at step {failed['step']} (mean of the last "
                        f"{LOSS_CHECK_LOGS} logs) is above sft.restart_loss {cfg.sft.restart_loss:g}; starting "
                        f"again with sft.seed {restart_config(cfg, restart + 1).sft.seed} (restart {restart + 1} "
                        f"of {cfg.sft.restarts})")
        else:
            kept = [k for k in range(restart) if trainers.latest_checkpoint(out_dir / f"attempt_{k}") is not None]
            best = min(kept + [restart], key=lambda k: checks[k]["loss"])  # restart: its own checkpoint, just saved
            record = {"restart": best, "checks": checks, "continued": True}
            losses = ", ".join(f"{c['loss']:.4f}" for c in checks)
            dist.print0(f"sft: every run's training loss at step {failed['step']} is above sft.restart_loss "
                        f"({losses}); going on from the lowest, run {best} (sft.seed "
                        f"{restart_config(cfg, best).sft.seed}), at its checkpoint")
        trainer = tokenizer = None  # let this run's model go before the next one loads
        gc.collect()
        if dist.is_main():
            _set_attempt_aside(out_dir, restart, failed["step"])
            _write_restart(out_dir, record)
        dist.barrier()
        dist.fault_point("sft/restart")  # the rerun tests: a failed run set aside, the next not started
    metrics.update(restarts=min(len(record.get("checks", [])), cfg.sft.restarts),
                   restart_checks=record.get("checks", []),
                   continued_run=record["restart"] if "continued" in record else None,
                   wall_s=round(time.time() - t0, 2))
    import yaml

    trainers.save_trained(trainer, out_dir, tokenizer, extra={
        "config.yaml": yaml.safe_dump(run_cfg.to_dict(), sort_keys=False),
        "sft_metrics.json": json.dumps(metrics, indent=2) + "\n",
        "trainer_state.json": trainers.state_json(trainer.state)})
    dist.fault_point("sft/saved")  # the kill tests: the trainer's save done, our marker not yet
    if dist.is_main():
        write_done(out_dir, metrics)
    dist.barrier()
    return metrics


LOSS_CHECK_LOGS = 3  # logged losses averaged by loss_check: 150 steps at the tiny model's logging_steps of 50
RESTART_SEED_STEP = 100  # restart k trains with sft.seed + 100 k


def restart_config(cfg: Config, restart: int) -> Config:
    """The config of SFT's restart `restart` (0: the first run): sft.seed + 100 * restart, which draws the
    curriculum's cut problems and the batch order anew; everything else is the same."""
    if restart == 0:
        return cfg
    return dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, seed=cfg.sft.seed + RESTART_SEED_STEP * restart))


def loss_check(sft, restart: int, checks: list[dict] | tuple = ()):
    """A TrainerCallback that, at the first log at or after step sft.restart_step, stops training when the mean of
    the last LOSS_CHECK_LOGS logged losses is above its bound, records {"step", "loss"} in its `failed` and has the
    trainer save a checkpoint there. The bound is sft.restart_loss, and for the last restart allowed the lowest
    loss of the earlier runs' `checks`. None when no check applies (sft.restarts is 0, or no earlier check)."""
    if sft.restart_step <= 0 or restart > sft.restarts or (restart == sft.restarts and not checks):
        return None
    bound = sft.restart_loss if restart < sft.restarts else min(c["loss"] for c in checks)
    from transformers import TrainerCallback

    class _LossCheck(TrainerCallback):
        failed = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            # Every rank sees the same logged loss (the Trainer averages it over ranks), so every rank stops.
            # The first log at or after restart_step checks; a run resumed past that window has passed it.
            step = state.global_step
            if not sft.restart_step <= step < sft.restart_step + args.logging_steps or "loss" not in (logs or {}):
                return
            losses = [h["loss"] for h in state.log_history if "loss" in h][-LOSS_CHECK_LOGS:]
            mean = sum(losses) / len(losses)
            if mean > bound:
                self.failed = {"step": step, "loss": round(mean, 5)}
                control.should_training_stop = True
                control.should_save = True  # the trainer saves after on_log: SFT may go on from here later

    return _LossCheck()


def _clear(out_dir: Path) -> None:
    """Remove out_dir's contents except the failed runs' checkpoints (attempt_k/) and restart.json."""
    for p in out_dir.iterdir() if out_dir.is_dir() else []:
        if not (p.name.startswith("attempt_") or p.name == "restart.json"):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _set_attempt_aside(out_dir: Path, restart: int, step: int) -> None:
    """Move run `restart`'s checkpoint at its failed check into out_dir/attempt_{restart}/ and clear the rest."""
    checkpoint = out_dir / f"checkpoint-{step}"
    if checkpoint.is_dir():
        aside = out_dir / f"attempt_{restart}"
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        checkpoint.rename(aside / checkpoint.name)
    _clear(out_dir)


def _restore_attempt(out_dir: Path, restart: int) -> None:
    """Put run `restart`'s set-aside checkpoint back in out_dir, where the trainer resumes from it (idempotent)."""
    aside = out_dir / f"attempt_{restart}"
    checkpoint = trainers.latest_checkpoint(aside)
    if checkpoint is not None:
        checkpoint.rename(out_dir / checkpoint.name)
    if trainers.latest_checkpoint(out_dir) is None:
        raise UserError(f"{out_dir / 'restart.json'}: run {restart}'s checkpoint is gone from {aside}; remove "
                        f"restart.json to start SFT anew")


def _read_restart(out_dir: Path) -> dict:
    path = out_dir / "restart.json"
    if not path.is_file() or (out_dir / DONE).exists():
        return {}
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("restart"), int) or \
            not isinstance(record.get("checks", []), list):
        raise UserError(f"{path}: expected {{\"restart\": N, \"checks\": [...]}}; remove it to start SFT anew")
    return record


def _write_restart(out_dir: Path, record: dict) -> None:
    if record:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "restart.json", record)


def _train_sft(cfg: Config, problems: list[Problem], model_path, out_dir: Path, check) -> tuple:
    """One SFT run, resumed from out_dir's newest checkpoint if there is one: (trainer, tokenizer, metrics)."""
    from trl import SFTTrainer

    from .model import freeze_input_embeddings, load_policy

    model, tokenizer = load_policy(model_path, cfg.model, for_training=True)
    freeze_input_embeddings(model, cfg.model)
    rows = training_rows(problems, Framing(tokenizer, cfg.format), cfg, dist.world_size())
    if not rows:
        raise UserError("sft: no training problem has a gold trace")
    distinct, order = distinct_dataset(rows)
    peft_config = None
    if cfg.model.lora and not hasattr(model, "peft_config"):  # an adapter folder is already a PeftModel
        peft_config = lora_config(cfg.model)
    callbacks = [trainers.hygiene_callback("sft")] + ([check] if check is not None else [])
    with trainers.quiet_library_warnings():
        trainer = SFTTrainer(model=model, args=sft_args(cfg, out_dir, len(order)), train_dataset=distinct,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
        trainer.train_dataset = in_training_order(trainer.train_dataset, order)
        resume = trainers.latest_checkpoint(out_dir)
        if resume is not None:
            dist.print0(f"sft: resuming from {resume} (step {resume.name.split('-')[-1]})")
        with trainers.labelled_positions_only():
            result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    import pyarrow.compute as pc

    tokens = pc.sum(pc.list_value_length(trainer.train_dataset.with_format("arrow")["input_ids"])).as_py()
    trained = trainer.model
    logs = [h for h in trainer.state.log_history if "loss" in h]
    return trainer, tokenizer, {
        "train_loss": result.training_loss,
        "final_loss": logs[-1]["loss"] if logs else None,
        "final_token_accuracy": logs[-1].get("mean_token_accuracy") if logs else None,
        "steps": trainer.state.global_step,
        "resumed_from_step": int(resume.name.split("-")[-1]) if resume else None,
        "examples": len(order),
        "epochs": cfg.sft.epochs,
        "tokens_per_epoch": tokens,
        "parameters": sum(p.numel() for p in trained.parameters()),
        "trainable_parameters": sum(p.numel() for p in trained.parameters() if p.requires_grad),
        "train_runtime_s": result.metrics.get("train_runtime"),
    }


def cmd_sft(args) -> int:
    from .config import load_config
    from .data import read_problem_file

    cfg = load_config(args.config, args.set)
    problems = read_problem_file(args.train_data, cfg.data.dataset)
    if args.limit:
        problems = problems[: args.limit]
    with dist.job():  # under torchrun: an exception on one rank ends every rank at once
        metrics = run_sft(cfg, problems, args.model, args.output)
        if dist.is_main():
            print(json.dumps(metrics))
    return 0
