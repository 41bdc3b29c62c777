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
- The model is saved with `save_pretrained` (safetensors) and `trainer_state.json` is written last: its
  presence marks the stage complete for resume.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

from . import dist
from .config import Config
from .training import device_args


def base_dpo_args(cfg: Config, output_dir: str | Path):
    """The run's base DPOConfig, built once from the `dpo` section; iterations copy it."""
    from trl import DPOConfig

    d = cfg.dpo
    return DPOConfig(
        output_dir=str(Path(output_dir) / "dpo"),
        beta=d.beta,
        loss_type=[d.loss_type] + (["sft"] if d.sft_weight > 0 else []),
        loss_weights=[d.dpo_weight, d.sft_weight] if d.sft_weight > 0 else ([d.dpo_weight] if d.dpo_weight != 1.0 else None),
        learning_rate=d.learning_rate,
        num_train_epochs=d.epochs,
        per_device_train_batch_size=d.batch_size,
        gradient_accumulation_steps=d.grad_accum,
        max_length=d.max_length,
        warmup_steps=d.warmup_ratio,  # a float < 1 is a ratio of total steps
        lr_scheduler_type=d.lr_scheduler,
        activation_checkpointing=d.activation_checkpointing,
        logging_steps=d.logging_steps,
        report_to=d.report_to,
        seed=d.seed,
        precompute_ref_log_probs=True,
        save_strategy="no",
        **device_args(cfg.model),
        disable_tqdm=not dist.is_main(),
        dataset_num_proc=None,
    )


def iteration_args(base, output_dir: str | Path, iteration: int):
    """A fresh copy of the base config for iteration k writing to `<output>/dpo/iter_{k}`."""
    args = copy.deepcopy(base)
    args.output_dir = str(Path(output_dir) / "dpo" / f"iter_{iteration}")
    args.run_name = f"dpo-iter_{iteration}"
    return args


def _lora_config(cfg: Config):
    from peft import LoraConfig

    m = cfg.model
    return LoraConfig(r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                      target_modules=list(m.lora_target_modules), task_type="CAUSAL_LM")


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


def run_dpo(model, tokenizer, pairs: list[dict], args, cfg: Config, dataset_dir: str | Path,
            adapter_path: str | Path | None = None):
    """Train `model` on `pairs` with args (from `iteration_args`); save to args.output_dir.

    Returns (metrics, trained model). `adapter_path`: the model is a PeftModel loaded (trainable) from this
    adapter folder; TRL makes its reference, the frozen copy "ref" of that adapter. With no pairs,
    the policy is saved unchanged and trainer_state.json records zero steps, so the next iteration still starts
    from `dpo/iter_{k}`.
    """
    out = Path(args.output_dir)
    if dist.is_main():
        shutil.rmtree(out, ignore_errors=True)  # a half-written folder from a killed run
        out.mkdir(parents=True, exist_ok=True)
    dist.barrier()
    if not pairs:
        if dist.is_main():
            model.save_pretrained(out, safe_serialization=True)
            tokenizer.save_pretrained(out)
            (out / "trainer_state.json").write_text(json.dumps(
                {"global_step": 0, "log_history": [], "note": "no preference pairs in this iteration"}, indent=2))
        dist.barrier()
        return {"steps": 0, "pairs": 0, "skipped": "no pairs"}, model

    peft_config = None
    if adapter_path is None and cfg.model.lora:
        peft_config = _lora_config(cfg)

    from .model import freeze_input_embeddings

    freeze_input_embeddings(model, cfg.model)
    dataset = _pairs_dataset(pairs, Path(dataset_dir))
    from .prompting import Framing

    suffix = Framing(tokenizer, cfg.format).completion_suffix_ids()
    trainer = _trainer_class(suffix)(model=model, ref_model=None, args=args, train_dataset=dataset,
                                     processing_class=tokenizer, peft_config=peft_config)
    result = trainer.train()
    trained = trainer.accelerator.unwrap_model(trainer.model)
    if adapter_path is not None and "ref" in getattr(trained, "peft_config", {}):
        trained.delete_adapter("ref")
    trainer.save_model(str(out))
    if dist.is_main():
        tokenizer.save_pretrained(out)
        # Trainer pickles its arguments next to the weights; the run records config.yaml instead, and
        # artifacts a user opens should never need unpickling.
        (out / "training_args.bin").unlink(missing_ok=True)
        trainer.state.save_to_json(str(out / "trainer_state.json"))  # last: marks the stage complete
    dist.barrier()
    metrics = _summarize_logs(trainer.state.log_history)
    metrics.update({"steps": int(trainer.state.global_step), "pairs": len(pairs),
                    "train_runtime_s": float(result.metrics.get("train_runtime", math.nan))})
    trained.eval()
    return metrics, trained
