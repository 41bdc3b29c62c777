"""SFT on gold traces: prompt tokens masked, parameters change, the saved folder reloads and generates."""

import dataclasses
import json
import warnings

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from oakdpo import cli
from oakdpo.config import Config, FormatConfig, ModelConfig, load_config
from oakdpo.io import UserError
from oakdpo.prompting import Framing
from oakdpo.tasks.prontoqa.generator import generate_problems
from oakdpo.data import write_problems
from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.generation import generate_traces
from oakdpo.tiny import build_corpus, init_tiny_model
from oakdpo import trainers, training
from oakdpo.model import load_policy
from oakdpo.training import distinct_dataset, in_training_order, run_sft, sft_args, sft_dataset, training_rows

TINY = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=500)


@pytest.fixture(scope="module")
def problems():
    return generate_problems(16, (1, 3), seed=4)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, problems):
    out = tmp_path_factory.mktemp("sft") / "init"
    init_tiny_model(TINY, build_corpus(problems), out)
    return out


class PlainTokenizer:
    """What a Framing reads of a tokenizer without a chat template."""
    chat_template = None
    eos_token, eos_token_id = "</s>", 2


LOOKUP = FormatConfig(style="lookup")  # the tiny model's style
FRAMING = Framing(PlainTokenizer(), LOOKUP)


def _cfg(**sft) -> Config:
    cfg = Config()
    cfg.format = FormatConfig(style="lookup")
    cfg.model = ModelConfig(**{**TINY.__dict__})
    for k, v in {**dict(epochs=1.0, batch_size=8, learning_rate=1e-2, logging_steps=1, warmup_ratio=0.0,
                        max_length=512), **sft}.items():
        setattr(cfg.sft, k, v)
    return cfg


def test_tokenizing_in_two_processes_gives_the_same_dataset(tiny_dir, problems, tmp_path):
    from trl import SFTTrainer

    model, tok = load_policy(tiny_dir, for_training=True)
    data = {}
    for procs in (1, 2):
        args = sft_args(_cfg(dataset_num_proc=procs), tmp_path / str(procs))
        assert args.dataset_num_proc == (None if procs == 1 else 2)
        trainer = SFTTrainer(model=model, args=args, processing_class=tok,
                             train_dataset=sft_dataset(problems, Framing(tok, LOOKUP)))
        data[procs] = trainer.train_dataset.to_list()
    assert len(data[1]) == len(problems) and data[1] == data[2]


def test_sft_prepares_each_distinct_row_once_and_trains_on_them_in_order(tiny_dir, problems, tmp_path):
    from datasets import Dataset
    from trl import SFTTrainer

    model, tok = load_policy(tiny_dir, for_training=True)
    framing = Framing(tok, LOOKUP)
    rows = training_rows(problems, framing, _cfg(curriculum_steps=2, curriculum_keep=1, epochs=2.5, batch_size=4))
    distinct, order = distinct_dataset(rows)
    assert len(rows) == 2 * 4 + 40 and len(distinct) <= 8 + 16 < len(rows)
    assert distinct["row"] == list(range(len(distinct)))
    assert [distinct[i]["completion"] for i in order] == [r["completion"] for r in rows]
    prompts = sorted(len(tok(r["prompt"])["input_ids"]) for r in rows)
    for max_length in (512, prompts[len(prompts) // 2]):  # the second drops the rows whose prompt fills max_length
        args = sft_args(_cfg(max_length=max_length), tmp_path / str(max_length))
        full = SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=Dataset.from_list(rows))
        once = SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=distinct)
        ordered = in_training_order(once.train_dataset, order)
        assert len(full.train_dataset) == len(ordered) == (len(rows) if max_length == 512 else
                                                           sum(n < max_length for n in prompts))
        for column in ("input_ids", "labels"):
            assert ordered[column] == full.train_dataset[column]
        assert "row" not in ordered.column_names


def test_prompt_tokens_are_masked_in_the_collated_batch(tiny_dir, problems, tmp_path):
    from trl import SFTTrainer

    model, tok = load_policy(tiny_dir, for_training=True)
    trainer = SFTTrainer(model=model, args=sft_args(_cfg(), tmp_path), processing_class=tok,
                         train_dataset=sft_dataset(problems[:3], Framing(tok, LOOKUP)))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    for row, p in enumerate(problems[:3]):
        ids, labels = batch["input_ids"][row].tolist(), batch["labels"][row].tolist()
        n_prompt = len(tok(build_prompt(p))["input_ids"])
        n_full = int(batch["attention_mask"][row].sum())
        assert ids[:n_prompt] == tok(build_prompt(p))["input_ids"]
        assert labels[:n_prompt] == [-100] * n_prompt
        assert labels[n_prompt:n_full] == ids[n_prompt:n_full]
        assert labels[n_full:] == [-100] * (len(labels) - n_full)
        assert labels[n_full - 1] == tok.eos_token_id
        assert tok.decode(labels[n_prompt:n_full], skip_special_tokens=True) == gold_trace(p)


def test_run_sft_trains_saves_and_reloads(tiny_dir, problems, tmp_path):
    cfg = _cfg()
    out = tmp_path / "sft"
    metrics = run_sft(cfg, problems, tiny_dir, out)
    assert metrics["steps"] == 2 and metrics["examples"] == 16
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "trainer_state.json", "config.yaml",
            "sft_metrics.json"} <= names
    assert not any(n.startswith("checkpoint-") for n in names)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and len([h for h in state["log_history"] if "loss" in h]) == 2
    assert load_config(out / "config.yaml").to_dict() == cfg.to_dict()
    before, after = load_file(tiny_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert [k for k in before if torch.equal(before[k], after[k])] == []  # every tensor was trained
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    _, tok = load_policy(out)
    traces = generate_traces(model, tok, problems[:2], 1, cfg.generation, fmt=LOOKUP, do_sample=False, progress=False)
    assert len(traces) == 2 and all(t["num_tokens"] >= 1 for t in traces)


@pytest.mark.parametrize("mode,hardware,bf16", [("auto", True, False), ("no", True, False), ("bf16", True, True),
                                                ("bf16", False, False)])
def test_mixed_precision_sets_trl_flags(mode, hardware, bf16, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(trainers, "native_bf16", lambda cuda: hardware)
    trainers._note_emulated_bf16.cache_clear()
    cfg = _cfg()
    cfg.model.mixed_precision = mode  # model.dtype float32: 'auto' never autocasts it
    args = sft_args(cfg, tmp_path)
    assert (args.bf16, args.fp16, args.use_cpu) == (bf16, False, not torch.cuda.is_available())
    sft_args(cfg, tmp_path / "again")
    # bf16 where it would be emulated (12x slower on an AVX2 CPU) trains in model.dtype, said once per process
    notes = [line for line in capsys.readouterr().out.splitlines() if "no bf16 hardware" in line]
    assert len(notes) == (mode == "bf16" and not hardware)


def test_native_bf16_on_a_cpu_is_avx512_bf16_or_amx(monkeypatch):
    for avx512_bf16, amx, native in [(False, False, False), (True, False, True), (False, True, True)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        assert trainers.native_bf16(False) is native


def test_run_sft_in_bf16_autocast_keeps_float32_weights(tiny_dir, problems, tmp_path, monkeypatch):
    monkeypatch.setattr(trainers, "native_bf16", lambda cuda: True)  # autocast on any CPU, emulated where need be
    cfg = _cfg()
    cfg.model.mixed_precision = "bf16"
    out = tmp_path / "sft"
    metrics = run_sft(cfg, problems, tiny_dir, out)
    assert metrics["steps"] == 2
    before, after = load_file(tiny_dir / "model.safetensors"), load_file(out / "model.safetensors")
    assert {t.dtype for t in after.values()} == {torch.float32}
    assert [k for k in before if torch.equal(before[k], after[k])] == []


def _restart_cfg(**sft) -> Config:
    return _cfg(**{"epochs": 3.0, "seed": 5, **sft})  # 16 problems, batch 8: 6 steps, each logged


def _learns_nothing(monkeypatch, run: int) -> None:
    """Have SFT's run `run` (0: the first, k: restart k) train at learning rate 0, so its loss at the check is the
    highest."""
    from oakdpo import training

    real = training.restart_config

    def restart_config(cfg, restart):
        cfg = real(cfg, restart)
        return dataclasses.replace(cfg, sft=dataclasses.replace(cfg.sft, learning_rate=0.0)) if restart == run else cfg

    monkeypatch.setattr(training, "restart_config", restart_config)


def test_sft_restarts_from_the_initial_model_with_another_seed_when_the_loss_is_high(tiny_dir, problems, tmp_path,
                                                                                     monkeypatch):
    plain = run_sft(_restart_cfg(seed=105), problems, tiny_dir, tmp_path / "plain")  # what restart 1 trains
    _learns_nothing(monkeypatch, 0)
    metrics = run_sft(_restart_cfg(restarts=1, restart_step=2, restart_loss=0.0), problems, tiny_dir,
                      tmp_path / "sft")
    assert (metrics["restarts"], metrics["continued_run"], metrics["steps"]) == (1, None, 6)
    [check] = metrics["restart_checks"]  # the last restart's loss at its check is under run 0's: it goes on
    assert check["step"] == 2 and check["loss"] > 0
    assert load_config(tmp_path / "sft" / "config.yaml").sft.seed == 105
    assert not (tmp_path / "sft" / "restart.json").exists()
    assert metrics["final_loss"] == plain["final_loss"]
    assert load_file(tmp_path / "sft" / "model.safetensors").keys() == load_file(
        tmp_path / "plain" / "model.safetensors").keys()
    for k, v in load_file(tmp_path / "plain" / "model.safetensors").items():
        assert torch.equal(load_file(tmp_path / "sft" / "model.safetensors")[k], v), k


def test_sft_loss_check_below_its_bound_changes_nothing(tiny_dir, problems, tmp_path):
    plain = run_sft(_restart_cfg(), problems, tiny_dir, tmp_path / "plain")
    checked = run_sft(_restart_cfg(restarts=2, restart_step=2, restart_loss=100.0), problems, tiny_dir,
                      tmp_path / "sft")
    assert (checked["restarts"], checked["restart_checks"], checked["steps"]) == (0, [], 6)
    a, b = load_file(tmp_path / "plain" / "model.safetensors"), load_file(tmp_path / "sft" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_config(tmp_path / "sft" / "config.yaml").sft.seed == 5


def test_sft_last_restart_above_an_earlier_run_goes_on_from_that_runs_checkpoint(tiny_dir, problems, tmp_path,
                                                                                 monkeypatch):
    plain = run_sft(_restart_cfg(), problems, tiny_dir, tmp_path / "plain")  # run 0, never stopped
    _learns_nothing(monkeypatch, 1)
    out, records = tmp_path / "sft", []
    write_restart = training._write_restart
    monkeypatch.setattr(training, "_write_restart", lambda d, r: (records.append(dict(r)), write_restart(d, r)))
    metrics = run_sft(_restart_cfg(restarts=1, restart_step=2, restart_loss=0.0), problems, tiny_dir, out)
    first, last = metrics["restart_checks"]
    assert records == [{"restart": 1, "checks": [first]}, {"restart": 0, "checks": [first, last], "continued": True}]
    assert (first["step"], last["step"]) == (2, 2) and last["loss"] > first["loss"] > 0
    assert (metrics["restarts"], metrics["continued_run"], metrics["resumed_from_step"], metrics["steps"]) == \
        (1, 0, 2, 6)
    assert load_config(out / "config.yaml").sft.seed == 5
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(("attempt_", "checkpoint-", "restart"))) == []
    assert metrics["final_loss"] == plain["final_loss"]  # run 0 resumed at its check trains what run 0 trains
    a, b = load_file(tmp_path / "plain" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sft_rerun_after_a_stop_keeps_the_set_aside_checkpoint_and_goes_on_from_it(tiny_dir, problems, tmp_path,
                                                                                  monkeypatch):
    plain = run_sft(_restart_cfg(), problems, tiny_dir, tmp_path / "plain")  # run 0, never stopped
    _learns_nothing(monkeypatch, 1)
    out, cfg = tmp_path / "sft", _restart_cfg(restarts=1, restart_step=2, restart_loss=0.0)
    monkeypatch.setenv("OAKDPO_FAULT", "sft/restart@0")
    with pytest.raises(RuntimeError, match="injected fault at sft/restart"):
        run_sft(cfg, problems, tiny_dir, out)  # stops once run 0 is set aside, before restart 1 starts
    assert sorted(p.name for p in out.iterdir()) == ["attempt_0", "restart.json"]
    assert [p.name for p in (out / "attempt_0").iterdir()] == ["checkpoint-2"]
    monkeypatch.delenv("OAKDPO_FAULT")
    metrics = run_sft(cfg, problems, tiny_dir, out)  # restart 1 fails its check: on from run 0's checkpoint
    assert (metrics["restarts"], metrics["continued_run"], metrics["resumed_from_step"]) == (1, 0, 2)
    a, b = load_file(tmp_path / "plain" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sft_rerun_resumes_the_restart_in_progress(tiny_dir, problems, tmp_path):
    out = tmp_path / "sft"
    out.mkdir()
    (out / "restart.json").write_text(json.dumps({"restart": 1, "checks": [{"step": 2, "loss": 50.0}]}))
    metrics = run_sft(_restart_cfg(restarts=1, restart_step=2, restart_loss=0.0), problems, tiny_dir, out)
    assert (metrics["restarts"], metrics["restart_checks"]) == (1, [{"step": 2, "loss": 50.0}])
    assert load_config(out / "config.yaml").sft.seed == 105


def test_sft_rerun_going_on_from_a_run_whose_checkpoint_is_gone_is_a_one_line_error(tiny_dir, problems, tmp_path):
    out = tmp_path / "sft"
    (out / "attempt_0").mkdir(parents=True)
    (out / "restart.json").write_text(json.dumps({"restart": 0, "checks": [{"step": 2, "loss": 0.5}] * 2,
                                                  "continued": True}))
    with pytest.raises(UserError, match=r"restart.json: run 0's checkpoint is gone from .*attempt_0; remove"):
        run_sft(_restart_cfg(restarts=1, restart_step=2, restart_loss=0.0), problems, tiny_dir, out)


def test_run_sft_with_lora_writes_an_adapter(tiny_dir, problems, tmp_path):
    cfg = _cfg()
    cfg.model.lora, cfg.model.lora_r, cfg.model.lora_target_modules = True, 4, ["q_proj", "v_proj"]
    cfg.sft.activation_checkpointing = True  # PEFT reads is_gradient_checkpointing when it wraps such a model
    out = tmp_path / "lora"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        metrics = run_sft(cfg, problems, tiny_dir, out)
    assert not [w for w in seen if "is_gradient_checkpointing" in str(w.message)]  # trainers.QUIET_WARNINGS
    assert metrics["trainable_parameters"] == 2 * 2 * 4 * (32 + 32)  # 2 layers x (q, v) x r x (in + out)
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "trainer_state.json", "config.yaml"} <= names
    assert "model.safetensors" not in names
    adapter = load_file(out / "adapter_model.safetensors")
    assert any("lora_B" in k and adapter[k].abs().sum() > 0 for k in adapter)  # B starts at 0: it trained
    model, tok = load_policy(out)
    base, _ = load_policy(tiny_dir)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[q], base.state_dict()[q])
    traces = generate_traces(model, tok, problems[:1], 1, cfg.generation, fmt=LOOKUP, do_sample=False, progress=False)
    assert traces[0]["num_tokens"] >= 1


def test_cli_sft_bad_model_path_exit_2(tmp_path, problems, capsys):
    write_problems(tmp_path / "p.jsonl", problems)
    rc = cli.main(["sft", "--train-data", str(tmp_path / "p.jsonl"), "--model", str(tmp_path / "nope"),
                   "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'nope'}: not a local model folder")
    assert not (tmp_path / "out").exists()


INDUCTION = ModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=500,
                        freeze_embeddings=True, induction_init=True)


def test_curriculum_rows_come_first_and_cut_down(problems, tmp_path):
    cfg = _cfg(curriculum_steps=3, curriculum_keep=2, epochs=1.5, batch_size=4)
    ds = sft_dataset(problems, FRAMING, cfg)
    full = {build_prompt(p): len(p.premises) for p in problems}
    n_cut = 3 * 4
    assert len(ds) == n_cut + 16 + 8  # 3 steps x 4 rows, then 1.5 epochs of 16
    head, tail = ds[:n_cut]["prompt"], ds[n_cut:]["prompt"]
    assert all(p not in full for p in head) and all(p in full for p in tail)
    assert sorted(tail).count(tail[0]) <= 2
    for row in ds.select(range(n_cut)):  # cut: the proof's premises plus 2; the gold trace still verifies
        n = row["prompt"].count("\n[")
        assert 2 <= n and all(n < v for v in full.values()) or n <= min(full.values())
    args = sft_args(cfg, tmp_path)
    assert (args.train_sampling_strategy, args.num_train_epochs) == ("sequential", 1)


def test_cut_to_proof_keeps_the_proof():
    import random

    from oakdpo.tasks.prontoqa.generator import cut_to_proof
    from oakdpo.tasks.prontoqa.verify import verify_trace

    for p in generate_problems(20, (1, 5), seed=9):
        q = cut_to_proof(p, 3, random.Random(0))
        used = sum(1 for x in p.premises if x in p.proof)
        assert len(q.premises) == min(len(p.premises), used + 3)
        assert [x for x in p.premises if x in q.premises] == q.premises  # original order
        assert verify_trace(q, gold_trace(q))["trace_valid"]


def test_cut_to_proof_distractor_modes():
    import random

    from oakdpo.tasks.prontoqa.generator import cut_to_proof
    from oakdpo.io import UserError
    from oakdpo.tasks.prontoqa.verify import verify_trace

    def ends_in_query_word(p):
        last = p.query.split()[-1].rstrip(".")
        return [x for x in p.premises if x.rstrip(".").split()[-1] == last]

    dead_ends = 0
    for p in generate_problems(40, (1, 5), seed=9):
        plain = cut_to_proof(p, 3, random.Random(0))
        kept = cut_to_proof(p, 3, random.Random(0), "keep")
        first = cut_to_proof(p, 3, random.Random(0), "first")
        assert len(ends_in_query_word(p)) == 2 and ends_in_query_word(kept) == ends_in_query_word(p)
        assert [x for x in p.premises if x in kept.premises] == kept.premises
        # "keep" keeps the premise order: the cut problem meets the dead end exactly when the full one does
        assert ("?" in gold_trace(kept)) == ("?" in gold_trace(p))
        dead_ends += "?" in gold_trace(p)
        # "first": the same premises, the distractor listed first, so every gold trace goes through the dead end
        assert sorted(first.premises) == sorted(kept.premises)
        assert ends_in_query_word(first)[0] not in p.proof and ends_in_query_word(first)[1] in p.proof
        assert "?" in gold_trace(first) and verify_trace(first, gold_trace(first))["trace_valid"]
        assert set(plain.premises) <= set(p.premises)
    assert 10 <= dead_ends <= 30
    with pytest.raises(UserError, match="sft.curriculum_distractor: expected one of random, keep, first"):
        cut_to_proof(p, 3, random.Random(0), "last")


def test_curriculum_distractor_reaches_the_sft_rows(problems):
    def lookalike_lines(prompt):
        word = prompt.splitlines()[0].split()[-1]  # "wooden." after "[Q]"
        return sum(1 for line in prompt.splitlines()[1:] if line.startswith("[") and line.endswith(" " + word))

    # keep 0: without the distractor only the proof's own rule ends in the query's word
    for mode, want, dead in (("first", {2}, {True}), ("keep", {2}, {True, False}), ("random", {1}, {False})):
        ds = sft_dataset(problems, FRAMING, _cfg(curriculum_steps=4, curriculum_keep=0, epochs=1.0, batch_size=4,
                                               curriculum_distractor=mode))
        rows = ds.select(range(16))
        assert {lookalike_lines(r["prompt"]) for r in rows} == want
        assert {"?" in r["completion"] for r in rows} == dead


def test_induction_init_wires_previous_token_heads(problems, tmp_path):
    init_tiny_model(INDUCTION, build_corpus(problems), tmp_path / "m")
    model, tok = load_policy(tmp_path / "m")
    assert not model.config.tie_word_embeddings
    emb = model.get_input_embeddings().weight
    assert 0.8 < emb[:, 1:].std().item() < 1.2  # frozen random N(0, 1)
    ids = tok(build_prompt(problems[0]))["input_ids"]
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        att = model(torch.tensor([ids]), output_attentions=True).attentions[0][0]  # layer 0: heads x T x T
    T = len(ids)
    for head, offset in ((0, 1), (1, 2)):
        hits = sum(int(att[head, t].argmax()) == t - offset for t in range(offset, T))
        assert hits / (T - offset) > 0.95


def test_frozen_embeddings_stay_fixed_in_sft(problems, tmp_path):
    init_tiny_model(INDUCTION, build_corpus(problems), tmp_path / "m")
    cfg = _cfg()
    cfg.model = ModelConfig(**{**INDUCTION.__dict__})
    run_sft(cfg, problems, tmp_path / "m", tmp_path / "sft")
    before, after = load_file(tmp_path / "m" / "model.safetensors"), load_file(tmp_path / "sft" / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "model.embed_tokens.weight" not in changed
    assert "lm_head.weight" in changed and "model.layers.0.self_attn.q_proj.weight" in changed


def test_mimetic_layers_start_the_next_layers_mimetic(problems, tmp_path):
    """mimetic_layers 2 adds layer 2 to layer 1's mimetic start and changes nothing else of the init."""
    corpus = build_corpus(problems)
    three = ModelConfig(**{**INDUCTION.__dict__, "num_layers": 3})
    init_tiny_model(three, corpus, tmp_path / "one")
    init_tiny_model(ModelConfig(**{**three.__dict__, "mimetic_layers": 2}), corpus, tmp_path / "two")
    one, two = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    changed = {k for k in one if not torch.equal(one[k], two[k])}
    assert changed == {f"model.layers.2.self_attn.{p}_proj.weight" for p in "qkvo"}
    q, k = two["model.layers.2.self_attn.q_proj.weight"], two["model.layers.2.self_attn.k_proj.weight"]
    hd = INDUCTION.hidden_size // INDUCTION.num_heads
    qk = q[:hd] @ k[:hd].T  # head 0: W_Q W_K^T near a projection, so its diagonal stands out
    assert qk.diagonal().mean() > 3 * qk.abs().mean()


def test_labelled_positions_only_scores_fewer_rows_for_the_same_loss_and_gradients():
    """trainers.labelled_positions_only: on the CPU TRL's fused LM head then projects only the positions with a
    label (not the prompt's), and the loss and every gradient are what scoring all positions gives."""
    import trl.trainer.utils as trl_utils
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from oakdpo import trainers

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4))
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    ids = torch.randint(0, 64, (2, 12))
    labels = ids.clone()
    labels[:, :7] = -100  # the prompt
    labels[1, 10:] = -100  # padding
    rows = []
    apply = trl_utils._ChunkedLogProbFunction.apply

    def spy(hidden, *args):
        rows.append(hidden.shape[0])
        return apply(hidden, *args)

    def loss_and_grads():
        model.zero_grad()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    original = trl_utils._use_triton
    trl_utils._ChunkedLogProbFunction.apply = spy
    try:
        loss_all, grads_all = loss_and_grads()
        with trainers.labelled_positions_only():
            loss_labelled, grads_labelled = loss_and_grads()
    finally:
        trl_utils._ChunkedLogProbFunction.apply = apply
    assert trl_utils._use_triton is original  # restored on leaving
    assert rows == [2 * 11, 5 + 3]  # every shifted position, then the labelled ones only
    assert torch.allclose(loss_labelled, loss_all, atol=1e-6)
    for name, grad in grads_all.items():
        assert torch.allclose(grads_labelled[name], grad, atol=1e-6), name


def test_sft_malformed_restart_record_is_a_one_line_error(tiny_dir, problems, tmp_path):
    from oakdpo.io import UserError

    out = tmp_path / "sft"
    out.mkdir()
    (out / "restart.json").write_text("[1, 2]")
    with pytest.raises(UserError, match=r"restart.json: expected \{\"restart\": N"):
        run_sft(_restart_cfg(restarts=1, restart_step=2, restart_loss=0.0), problems, tiny_dir, out)
