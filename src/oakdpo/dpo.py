"""DPO on verified preference pairs with TRL's DPOTrainer (stage 5 of an OaK iteration).

What it does and assumes:
- `base_dpo_args(cfg)` builds the base `trl.DPOConfig` once per run; every iteration gets its own deep copy
  (`iteration_args`) with `output_dir=<output>/dpo/iter_{k}`: one level, never nested, base never mutated.
- The reference for iteration k is the policy that generated iteration k's traces, chosen explicitly:
  full fine-tuning precomputes the reference log-probs with the policy before its first update
  (`precompute_ref_log_probs=True`, no second model in memory); for a LoRA policy loaded from an adapter folder,
  TRL copies the loaded adapter into a frozen adapter "ref" and switches to it for the reference pass (that copy
  is deleted before saving); a fresh LoRA on a full checkpoint uses the adapter-disabled base, which is that
  checkpoint.
- Rows are TRL's conversational form (prompt messages + assistant messages) when a chat template frames the
  prompt, plain text otherwise (oakdpo.prompting).
- A rejected trace that did not end, cut after its first error (pairs.truncate_rejected) or by max_new_tokens,
  gets no EOS / end of turn (`_trainer_class`).
- Pairs travel to the trainer through `save_to_disk`/`load_from_disk`, which precomputed reference log-probs
  need under DDP (every rank must see the same cache file).
- Checkpoints every dpo.save_steps (a rerun resumes from the newest); the final folder is saved whole
  (safetensors, trainer_state.json) and then marked done with DONE.json, which also holds the stage's metrics
  (oakdpo.trainers, oakdpo.io).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

from . import dist, trainers
from .config import Config
from .io import write_done


def base_dpo_args(cfg: Config, output_dir: str | Path):
    """The run's base DPOConfig, built once from the `dpo` section; iterations copy it."""
    from trl import DPOConfig

    d = cfg.dpo
    return DPOConfig(
        output_dir=str(Path(output_dir) / "dpo"),
        beta=d.beta,
        loss_type=[d.loss_type] + (["sft"] if d.sft_weight > 0 else []),
        loss_weights=[d.dpo_weight, d.sft_weight] if d.sft_weight > 0 else [d.dpo_weight],
        learning_rate=d.learning_rate,
        num_train_epochs=d.epochs,
        per_device_train_batch_size=d.batch_size,
        gradient_accumulation_steps=d.grad_accum,
        max_length=d.max_length,
        warmup_steps=d.warmup_ratio,  # a float < 1 is a ratio of total steps
        lr_scheduler_type=d.lr_scheduler,
        **trainers.recompute_args(d.activation_checkpointing),
        logging_steps=d.logging_steps,
        report_to=trainers.report_to(d.report_to, "dpo.report_to"),
        seed=d.seed,
        precompute_ref_log_probs=True,
        **trainers.checkpoint_args(d.save_steps),
        **trainers.device_args(cfg.model),
        disable_tqdm=not dist.is_main(),
        dataset_num_proc=None,
    )


def iteration_args(base, output_dir: str | Path, iteration: int):
    """A fresh copy of the base config for iteration k writing to `<output>/dpo/iter_{k}`."""
    args = copy.deepcopy(base)
    args.output_dir = str(Path(output_dir) / "dpo" / f"iter_{iteration}")
    args.run_name = f"dpo-iter_{iteration}"
    return args


def _pairs_dataset(pairs: list[dict], path: Path):
    """Write the pairs as a datasets folder on rank 0 and load it on every rank."""
    from datasets import Dataset, load_from_disk

    if dist.is_main():
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        def row(p: dict) -> dict:
            partial = bool(p.get("rejected_partial", False))
            if p.get("prompt_messages"):  # conversational: the chat template frames and ends the completions
                return {"prompt": p["prompt_messages"], "chosen": [{"role": "assistant", "content": p["chosen"]}],
                        "rejected": [{"role": "assistant", "content": p["rejected"]}], "rejected_partial": partial}
            return {"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"],
                    "rejected_partial": partial}

        ds = Dataset.from_list([row(p) for p in pairs])
        ds.save_to_disk(str(tmp))
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    dist.barrier()
    return load_from_disk(str(path))


def _trainer_class(suffix_ids: list[int]):
    """TRL's DPOTrainer, except that a rejected completion marked `rejected_partial` (cut after its first invalid
    step, pairs.truncate_rejected, or by max_new_tokens) keeps no end-of-sequence token: `suffix_ids`, what TRL
    writes after a completion (EOS, or the chat template's end of turn and what follows it), are cut off.

    TRL appends EOS to every completion. In the middle of a proof that EOS is a token both models give almost no
    probability, and pushing it lower is the cheapest way to widen the DPO margin: the loss would saturate
    without the first error's tokens ever moving."""
    from accelerate import PartialState
    from trl import DPOTrainer

    class PartialRejectedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if "rejected_partial" not in dataset.column_names or not any(dataset["rejected_partial"]):
                return dataset  # TRL drops the unused column
            n = len(suffix_ids)

            def drop_eos(example):
                ids = example["rejected_ids"]
                if example["rejected_partial"] and n and ids[-n:] == suffix_ids:
                    ids = ids[:-n]
                return {"rejected_ids": ids}

            # On disk, rank 0 first: the precomputed reference log-probs are cached next to this dataset's cache
            # files, and every rank must find the same file.
            with PartialState().main_process_first():
                return dataset.map(drop_eos, remove_columns=["rejected_partial"])

    return PartialRejectedDPOTrainer


def _summarize_logs(log_history: list[dict]) -> dict:
    """Mean of the logged training values (loss, rewards/margins, rewards/accuracies) and the last values."""
    keys = ("loss", "rewards/margins", "rewards/accuracies", "rewards/chosen", "rewards/rejected")
    out: dict = {}
    for key in keys:
        vals = [h[key] for h in log_history if key in h and isinstance(h[key], (int, float))]
        if vals:
            name = key.replace("/", "_")
            out[f"{name}_mean"] = float(sum(vals) / len(vals))
            out[f"{name}_last"] = float(vals[-1])
    for h in log_history:
        if "train_loss" in h:
            out["train_loss"] = float(h["train_loss"])
    return out


def adapters_to_base_dtype(model) -> None:
    """Cast every LoRA parameter of a PeftModel to its base model's dtype: DeepSpeed ZeRO-3 gathers parameters in
    the dtype of the first one, and a float32 adapter on a bf16 base fails at the first optimizer step."""
    dtype = model.get_base_model().dtype
    for name, param in model.named_parameters():
        if "lora_" in name and param.dtype != dtype:
            param.data = param.data.to(dtype)


def run_dpo(model, tokenizer, pairs: list[dict], args, cfg: Config, dataset_dir: str | Path,
            adapter_path: str | Path | None = None, log_dir: str | Path | None = None):
    """Train `model` on `pairs` with args (from `iteration_args`); save to args.output_dir.

    Returns (metrics, trained model). `adapter_path`: the model is a PeftModel loaded (trainable) from this
    adapter folder; TRL makes its reference, the frozen copy "ref" of that adapter. A rerun of a killed iteration
    resumes from the newest checkpoint in args.output_dir. The folder is replaced whole by the final save and then
    marked done (DONE.json, holding the metrics). With no pairs (or none that fits dpo.max_length) the policy is
    saved unchanged and trainer_state.json records zero steps, so the next iteration still starts from
    `dpo/iter_{k}`.
    """
    from .prompting import Framing

    out = Path(args.output_dir)
    resume = trainers.latest_checkpoint(out)
    if dist.is_main() and resume is None:
        shutil.rmtree(out, ignore_errors=True)  # a folder left by a run killed before its first checkpoint
    dist.barrier()
    framing = Framing(tokenizer, cfg.format)
    fits = [p for p in pairs if len(framing.encode(p["prompt"])) < args.max_length]
    if len(fits) < len(pairs):
        dist.print0(f"warning: dpo: {len(pairs) - len(fits)} of {len(pairs)} pairs have a prompt of at least "
                    f"dpo.max_length={args.max_length} tokens and are left out")
    if not fits:
        why = "no preference pairs in this iteration" if not pairs else "no pair fits dpo.max_length"
        if dist.is_main():
            state = json.dumps({"global_step": 0, "log_history": [], "note": why}, indent=2)
            from .model import save_folder

            save_folder(out, model, tokenizer, extra={"trainer_state.json": state})
            write_done(out, {"steps": 0, "pairs": 0, "skipped": why})
        dist.barrier()
        return {"steps": 0, "pairs": 0, "skipped": why}, model

    peft_config = None
    if adapter_path is None and cfg.model.lora:
        from .training import lora_config

        peft_config = lora_config(cfg.model)

    from .model import freeze_input_embeddings

    freeze_input_embeddings(model, cfg.model)
    trainers.set_log_dir(Path(log_dir) if log_dir else out.parent.parent / "logs" / f"dpo_{out.name}")
    args.warmup_steps = trainers.safe_warmup("dpo", len(fits), args.per_device_train_batch_size,
                                             args.gradient_accumulation_steps, args.num_train_epochs,
                                             args.warmup_steps, what="pairs")
    dataset = _pairs_dataset(fits, Path(dataset_dir))
    # both open while the trainer is built too: it computes the reference log-probs there
    with trainers.labelled_positions_only(), trainers.quiet_library_warnings():
        trainer = _trainer_class(framing.completion_suffix_ids())(
            model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer,
            peft_config=peft_config, callbacks=[trainers.hygiene_callback("dpo")])
        if adapter_path is not None and dist.zero3():
            adapters_to_base_dtype(trainer.model)  # TRL's "ref" copy is float32 (PEFT's default); see load_policy
        if resume is not None:
            dist.print0(f"dpo: resuming from {resume} (step {resume.name.split('-')[-1]})")
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    # Without the autocast wrapper accelerate put on forward (model.mixed_precision), the caller generates and
    # evaluates in model.dtype, as it would from the saved folder.
    trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    if adapter_path is not None and "ref" in getattr(trained, "peft_config", {}):
        trained.delete_adapter("ref")
    metrics = _summarize_logs(trainer.state.log_history)
    metrics.update({"steps": int(trainer.state.global_step), "pairs": len(fits),
                    "pairs_too_long": len(pairs) - len(fits),
                    "resumed_from_step": int(resume.name.split("-")[-1]) if resume else None,
                    "train_runtime_s": float(result.metrics.get("train_runtime", math.nan))})
    trainers.save_trained(trainer, out, tokenizer, extra={"trainer_state.json": trainers.state_json(trainer.state)})
    dist.fault_point("dpo/saved")  # the kill tests: the trainer's save done, our marker not yet
    if dist.is_main():
        write_done(out, metrics)
    dist.barrier()
    trained.eval()
    return metrics, trained
