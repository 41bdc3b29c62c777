"""DPO iterations: the reference is the policy that generated the iteration's traces (full model and LoRA)."""

from __future__ import annotations

import json
import math
import re
import warnings

import pytest
import torch

from oakdpo import trainers
from oakdpo.config import Config
from oakdpo.dpo import base_dpo_args, iteration_args, run_dpo
from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.model import load_policy


def _pairs(problems):
    out = []
    for p in problems:
        gold = gold_trace(p)
        flip = {"true": "false", "false": "true", "TRUE": "FALSE", "FALSE": "TRUE"}  # the answer, both places
        rejected = re.sub(r"(?<=: )(true|false)(?=\.\n)|(?<=Final Answer: )(TRUE|FALSE)",
                          lambda m: flip[m.group(0)], gold)
        assert rejected != gold
        out.append({"prompt": build_prompt(p), "chosen": gold, "rejected": rejected})
    return out


def _cfg(lora: bool) -> Config:
    cfg = Config()
    cfg.format.style = "lookup"  # the tiny model's style
    cfg.model.lora = lora
    cfg.model.lora_r = 4
    cfg.model.lora_alpha = 8
    cfg.dpo.batch_size = 4
    cfg.dpo.max_length = 512
    cfg.dpo.learning_rate = 5e-3
    cfg.dpo.epochs = 2.0  # 4 steps: two do not always move the margin of a random model above 0
    cfg.dpo.logging_steps = 1
    return cfg


def _first_loss(out_dir) -> float:
    state = json.loads((out_dir / "trainer_state.json").read_text())
    return next(h["loss"] for h in state["log_history"] if "loss" in h)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_reference_is_the_generating_policy(tmp_path, tiny_model_dir, small_problems, lora):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _reference_is_the_generating_policy(tmp_path, tiny_model_dir, small_problems, lora)
    # TRL and PEFT read transformers' deprecated is_gradient_checkpointing (trainers.QUIET_WARNINGS)
    assert not [w for w in seen if "is_gradient_checkpointing" in str(w.message)]


def test_quiet_library_warnings_hides_only_its_list_and_only_while_open():
    from oakdpo.trainers import quiet_library_warnings

    message = "`is_gradient_checkpointing` is deprecated and will be removed in v6."
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_library_warnings():
            warnings.warn(message, FutureWarning)
            warnings.warn(message, DeprecationWarning)  # another category
            warnings.warn("`something_else` is deprecated", FutureWarning)
        warnings.warn(message, FutureWarning)
    assert [(w.category, str(w.message)) for w in seen] == [
        (DeprecationWarning, message), (FutureWarning, "`something_else` is deprecated"), (FutureWarning, message)]


def _reference_is_the_generating_policy(tmp_path, tiny_model_dir, small_problems, lora):
    cfg = _cfg(lora)
    pairs = _pairs(small_problems[:8])
    base = base_dpo_args(cfg, tmp_path)
    # Iteration 0 from the full checkpoint (LoRA: a fresh adapter, reference = adapter disabled = checkpoint).
    model, tok = load_policy(tiny_model_dir, cfg.model, for_training=True)
    m0, _ = run_dpo(model, tok, pairs, iteration_args(base, tmp_path, 0), cfg, dataset_dir=tmp_path / "ds0")
    it0 = tmp_path / "dpo" / "iter_0"
    assert (it0 / "adapter_config.json").is_file() == lora
    # Iteration 1 from iteration 0's output. Before the first update policy == reference, so the first logged
    # loss is exactly ln 2; a stale reference (the SFT model / the adapter-free base) would give another value.
    model, tok = load_policy(it0, cfg.model, for_training=True)
    run_dpo(model, tok, pairs, iteration_args(base, tmp_path, 1), cfg, dataset_dir=tmp_path / "ds1",
            adapter_path=it0 if lora else None)
    it1 = tmp_path / "dpo" / "iter_1"
    assert _first_loss(it0) == pytest.approx(math.log(2), abs=1e-3)
    assert _first_loss(it1) == pytest.approx(math.log(2), abs=1e-3)
    assert m0["steps"] == 4 and m0["rewards_margins_last"] > 0
    if lora:
        assert not (it1 / "ref").exists()  # the frozen reference adapter is not saved with the policy
        a = load_policy(it0, cfg.model)[0].state_dict()
        b = load_policy(it1, cfg.model)[0].state_dict()
        assert any(not torch.equal(a[k], b[k]) for k in a)


def test_partial_rejected_gets_no_eos(tmp_path, tiny_model_dir, small_problems):
    """A rejected trace cut after its first error (pairs.truncate_rejected) ends without EOS; a whole one keeps it."""
    from oakdpo.dpo import _pairs_dataset, _trainer_class

    cfg = _cfg(False)
    pairs = _pairs(small_problems[:2])
    first_step = pairs[0]["rejected"].split("\n")[:2]
    pairs[0]["rejected"] = "\n".join(first_step) + "\n"
    pairs[0]["rejected_partial"] = True
    model, tok = load_policy(tiny_model_dir, cfg.model, for_training=True)
    args = iteration_args(base_dpo_args(cfg, tmp_path), tmp_path, 0)
    trainer = _trainer_class([tok.eos_token_id])(model=model, ref_model=None, args=args,
                               train_dataset=_pairs_dataset(pairs, tmp_path / "ds"), processing_class=tok)
    rows = trainer.train_dataset
    eos = tok.eos_token_id
    assert rows[0]["rejected_ids"][-1] != eos
    assert rows[0]["rejected_ids"] == tok(pairs[0]["prompt"] + pairs[0]["rejected"])["input_ids"][
        len(rows[0]["prompt_ids"]):]
    assert rows[1]["rejected_ids"][-1] == eos and rows[0]["chosen_ids"][-1] == eos


def test_dpo_weight_zero_trains_the_sft_term_alone(tmp_path, tiny_model_dir, small_problems):
    # dpo.dpo_weight=0 (configs/tiny.yaml): the update depends on the chosen traces only. Two runs whose pairs
    # share the chosen side but not the rejected one end with the same weights; with the DPO term on they differ.
    cfg = _cfg(False)
    cfg.dpo.sft_weight, cfg.dpo.epochs = 1.0, 1.0
    pairs = _pairs(small_problems[:8])
    other = [dict(p, rejected=p["rejected"].replace("Thought:", "Thought: so", 1)) for p in pairs]
    assert all(a["rejected"] != b["rejected"] for a, b in zip(pairs, other))

    def trained(dpo_weight, data, name):
        cfg.dpo.dpo_weight = dpo_weight
        base = base_dpo_args(cfg, tmp_path / name)
        assert base.loss_weights == [dpo_weight, 1.0] and base.loss_type == ["sigmoid", "sft"]
        model, tok = load_policy(tiny_model_dir, cfg.model, for_training=True)
        run_dpo(model, tok, data, iteration_args(base, tmp_path / name, 0), cfg, dataset_dir=tmp_path / name / "ds")
        return load_policy(tmp_path / name / "dpo" / "iter_0", cfg.model)[0].state_dict()

    def largest_difference(x, y):
        return max((x[k] - y[k]).abs().max().item() for k in x)

    # The other rejected traces are longer, so the batches are padded to another length; on some CPUs (AMX) the
    # kernels then round the chosen rows' sums differently, by ~6e-8, while the DPO term moves weights by ~2e-2.
    a, b = trained(0.0, pairs, "a"), trained(0.0, other, "b")
    assert largest_difference(a, b) < 1e-6
    c, d = trained(1.0, pairs, "c"), trained(1.0, other, "d")
    assert largest_difference(c, d) > 1e-3


def test_trained_model_in_bf16_autocast_is_returned_as_saved(tmp_path, tiny_model_dir, small_problems, monkeypatch):
    monkeypatch.setattr(trainers, "native_bf16", lambda cuda: True)  # autocast on any CPU, emulated where need be
    # model.mixed_precision=bf16 trains under autocast; the model run_dpo returns (the loop evaluates it) must
    # compute what the saved float32 folder computes, not keep accelerate's autocast wrapper on its forward.
    cfg = _cfg(False)
    cfg.model.mixed_precision = "bf16"
    model, tok = load_policy(tiny_model_dir, cfg.model, for_training=True)
    args = iteration_args(base_dpo_args(cfg, tmp_path), tmp_path, 0)
    assert args.bf16
    _, trained = run_dpo(model, tok, _pairs(small_problems[:4]), args, cfg, dataset_dir=tmp_path / "ds")
    saved = load_policy(tmp_path / "dpo" / "iter_0", cfg.model)[0]
    ids = tok(build_prompt(small_problems[0]), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b = trained(ids).logits, saved(ids).logits
    assert a.dtype == torch.float32 and torch.equal(a, b)
