"""SFT on gold traces: prompt tokens masked, parameters change, the saved folder reloads and generates."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from oakdpo import cli
from oakdpo.config import Config, ModelConfig, load_config
from oakdpo.data import generate_problems, write_problems
from oakdpo.formats import build_prompt, gold_trace
from oakdpo.generation import generate_traces
from oakdpo.model import build_corpus, init_tiny_model, load_policy
from oakdpo.training import run_sft, sft_args, sft_dataset

TINY = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=500)


@pytest.fixture(scope="module")
def problems():
    return generate_problems(16, (1, 3), seed=4)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, problems):
    out = tmp_path_factory.mktemp("sft") / "init"
    init_tiny_model(TINY, build_corpus(problems), out)
    return out


def _cfg(**sft) -> Config:
    cfg = Config()
    cfg.model = ModelConfig(**{**TINY.__dict__})
    for k, v in dict(epochs=1.0, batch_size=8, learning_rate=1e-2, logging_steps=1, warmup_ratio=0.0,
                     max_length=512, **sft).items():
        setattr(cfg.sft, k, v)
    return cfg


def test_prompt_tokens_are_masked_in_the_collated_batch(tiny_dir, problems, tmp_path):
    from trl import SFTTrainer

    model, tok = load_policy(tiny_dir, for_training=True)
    trainer = SFTTrainer(model=model, args=sft_args(_cfg(), tmp_path), processing_class=tok,
                         train_dataset=sft_dataset(problems[:3], tok.eos_token))
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
    traces = generate_traces(model, tok, problems[:2], 1, cfg.generation, do_sample=False, progress=False)
    assert len(traces) == 2 and all(t["num_tokens"] >= 1 for t in traces)


def test_run_sft_with_lora_writes_an_adapter(tiny_dir, problems, tmp_path):
    cfg = _cfg()
    cfg.model.lora, cfg.model.lora_r, cfg.model.lora_target_modules = True, 4, ["q_proj", "v_proj"]
    out = tmp_path / "lora"
    metrics = run_sft(cfg, problems, tiny_dir, out)
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
    traces = generate_traces(model, tok, problems[:1], 1, cfg.generation, do_sample=False, progress=False)
    assert traces[0]["num_tokens"] >= 1


def test_cli_sft_bad_model_path_exit_2(tmp_path, problems, capsys):
    write_problems(tmp_path / "p.jsonl", problems)
    rc = cli.main(["sft", "--train-data", str(tmp_path / "p.jsonl"), "--model", str(tmp_path / "nope"),
                   "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'nope'}: not a local model folder")
    assert not (tmp_path / "out").exists()
