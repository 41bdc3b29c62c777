"""The real-checkpoint runtime: placement on a GPU when there is one, the shipped training.yaml on a stand-in
checkpoint, the schema defaults without --config, and no silent no-op DPO run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from oakdpo import cli
from oakdpo.config import Config, load_config
from oakdpo.data import write_problems
from oakdpo.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda.is_available() is True and Module.to records where it was asked to go (and stays put)."""
    moves = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def to(self, *args, **kwargs):
        moves.append(str(args[0] if args else kwargs.get("device")))
        return self

    monkeypatch.setattr(torch.nn.Module, "to", to)
    return moves


def test_generate_and_eval_place_the_model_on_the_gpu(fake_cuda, tiny_model_dir, small_problems, tmp_path):
    problems = tmp_path / "p.jsonl"
    write_problems(problems, small_problems[:2])
    common = ["--set", "generation.max_new_tokens=4", "--set", "eval.max_new_tokens=4"]
    assert cli.main(["generate", "--model", str(tiny_model_dir), "--problems", str(problems), "-o",
                     str(tmp_path / "t.jsonl"), *common]) == 0
    assert "cuda:0" in fake_cuda
    fake_cuda.clear()
    assert cli.main(["eval", "--model", str(tiny_model_dir), "--problems", str(problems), "-o",
                     str(tmp_path / "e"), *common]) == 0
    assert "cuda:0" in fake_cuda
    fake_cuda.clear()
    assert cli.main(["generate", "--model", str(tiny_model_dir), "--problems", str(problems), "-o",
                     str(tmp_path / "t2.jsonl"), "--set", "model.device=cpu", *common]) == 0
    assert fake_cuda and all(d == "cpu" for d in fake_cuda)


def test_oak_without_config_uses_the_schema_defaults(tiny_model_dir, small_problems, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs/tiny.yaml is right here, and must not be picked up
    write_problems(tmp_path / "p.jsonl", small_problems[:2])
    out = tmp_path / "run"
    assert cli.main(["oak", "--sft-model", str(tiny_model_dir), "--train-data", str(tmp_path / "p.jsonl"),
                     "--iterations", "0", "--output-dir", str(out)]) == 0
    saved = load_config(out / "config.yaml")
    expected = Config()
    expected.oak.iterations = 0
    expected.model.name_or_path = str(tiny_model_dir)
    assert saved.to_dict() == expected.to_dict()
    assert saved.format.style == "natural" and not saved.model.freeze_embeddings and saved.dpo.sft_weight == 0


@pytest.mark.parametrize("command", ["sft", "generate", "eval"])
def test_model_commands_without_config_use_the_schema_defaults(command, tiny_model_dir, tmp_path, monkeypatch):
    # Run from the repository root, where configs/tiny.yaml lies: it must not be picked up without --config.
    from oakdpo import config as config_mod

    monkeypatch.chdir(ROOT)
    write_problems(tmp_path / "p.jsonl", get_task("prontoqa").generate(2, seed=3, hops=(1, 2)))
    seen = []
    real = config_mod.load_config

    class Resolved(Exception):
        pass

    def spy(path=None, overrides=()):
        seen.append((path, real(path, overrides)))
        raise Resolved  # what the command would run with is all this test needs

    monkeypatch.setattr(config_mod, "load_config", spy)
    data = {"sft": "--train-data", "generate": "--problems", "eval": "--problems"}[command]
    with pytest.raises(Resolved):
        cli.main([command, "--model", str(tiny_model_dir), data, str(tmp_path / "p.jsonl"), "-o", str(tmp_path / "o")])
    (path, cfg), = seen
    assert path is None and cfg.to_dict() == Config().to_dict()
    assert cfg.format.style == "natural" and cfg.format.chat_template == "auto" and not cfg.model.freeze_embeddings


def _natural_pairs(problems, framing):
    from oakdpo.pairs import build_pairs

    traces, verdicts = [], []
    for p in problems:
        task = get_task(p.task)
        gold = task.gold_trace(p, "natural")
        bad = gold.replace("Final Answer: TRUE", "Final Answer: FALSE") if p.label == "TRUE" else \
            gold.replace("Final Answer: FALSE", "Final Answer: TRUE")
        traces += [{"problem_id": p.id, "sample": 0, "text": gold}, {"problem_id": p.id, "sample": 1, "text": bad}]
        verdicts += [task.verify(p, gold) | {"problem_id": p.id, "sample": 0},
                     task.verify(p, bad) | {"problem_id": p.id, "sample": 1}]
    return build_pairs(problems, traces, verdicts, Config().pairs, framing)


@pytest.mark.parametrize("on", [True, False])
def test_activation_checkpointing_reaches_both_trainers(on, tmp_path):
    """sft/dpo.activation_checkpointing under the name the installed transformers takes (5.22: gradient_...)."""
    from transformers import TrainingArguments

    from oakdpo.dpo import base_dpo_args
    from oakdpo.training import sft_args

    name = "activation_checkpointing" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__ \
        else "gradient_checkpointing"
    cfg = load_config(ROOT / "configs" / "training.yaml", [f"sft.activation_checkpointing={str(on).lower()}",
                                                            f"dpo.activation_checkpointing={str(on).lower()}",
                                                            "sft.report_to=none", "dpo.report_to=none"])
    assert getattr(sft_args(cfg, tmp_path / "sft"), name) is on
    assert getattr(base_dpo_args(cfg, tmp_path), name) is on


@pytest.mark.parametrize("config, override, expected", [
    ("training.yaml", None, False), ("training.yaml", "model.ddp_find_unused_parameters=true", True),
    ("tiny.yaml", None, None)])
def test_ddp_find_unused_parameters_reaches_both_trainers(config, override, expected, tmp_path):
    from oakdpo.dpo import base_dpo_args
    from oakdpo.training import sft_args

    cfg = load_config(ROOT / "configs" / config, ["sft.report_to=none", "dpo.report_to=none"] + ([override] if override
                                                                                                 else []))
    assert sft_args(cfg, tmp_path / "sft").ddp_find_unused_parameters is expected
    assert base_dpo_args(cfg, tmp_path).ddp_find_unused_parameters is expected


def test_small_dpo_run_with_training_yaml_updates_and_warns(qwen2_standin, tmp_path, capsys):
    from safetensors.torch import load_file

    from oakdpo.dpo import base_dpo_args, iteration_args, run_dpo
    from oakdpo.model import load_policy
    from oakdpo.prompting import Framing

    cfg = load_config(ROOT / "configs" / "training.yaml", ["model.dtype=float32", "dpo.report_to=none",
                                                            "dpo.activation_checkpointing=false"])
    model, tok = load_policy(qwen2_standin, cfg.model, for_training=True)
    pairs = _natural_pairs(get_task("prontoqa").generate(8, seed=4, hops=(1, 2)), Framing(tok, cfg.format))
    assert len(pairs) == 8
    args = iteration_args(base_dpo_args(cfg, tmp_path), tmp_path, 0)
    metrics, _ = run_dpo(model, tok, pairs, args, cfg, dataset_dir=tmp_path / "ds")
    err = capsys.readouterr()
    log = err.out + err.err
    assert "warning: dpo: 8 pairs are fewer than one optimizer batch (16 = 2 per device x 8 accumulation" in log
    assert "warning: dpo: all 1 optimizer step(s) fall in the warmup (1 step(s)), the first at learning rate 0; " \
           "warmup cut to 0 step(s)" in log
    assert metrics["steps"] == 1
    adapter = load_file(tmp_path / "dpo" / "iter_0" / "adapter_model.safetensors")
    delta = max(float(v.abs().max()) for k, v in adapter.items() if "lora_B" in k)  # B starts at exactly 0
    assert delta > 0


@pytest.mark.slow
def test_training_yaml_on_a_standin_runs_to_the_end(qwen2_standin, tmp_path):
    """`oakdpo oak --config configs/training.yaml` on a stand-in checkpoint, CPU: only the dtype overridden."""
    task = get_task("prontoqa")
    write_problems(tmp_path / "train.jsonl", task.generate(6, seed=21, hops=(1, 2)))
    write_problems(tmp_path / "val.jsonl", task.generate(3, seed=22, hops=(1, 2)))
    out = tmp_path / "run"
    assert cli.main(["oak", "--config", str(ROOT / "configs" / "training.yaml"), "--sft-model", str(qwen2_standin),
                     "--train-data", str(tmp_path / "train.jsonl"), "--val-data", str(tmp_path / "val.jsonl"),
                     "--iterations", "1", "--samples", "2", "--output-dir", str(out),
                     "--set", "model.dtype=float32"]) == 0
    metrics = json.loads((out / "iter_0" / "metrics.json").read_text())
    assert metrics["stages"]["dpo"]["steps"] >= 1 or metrics["stages"]["pairs"]["pairs"] == 0
    assert (out / "dpo" / "iter_0" / "DONE.json").is_file() and (out / "report.md").is_file()
    assert list((out / "logs").glob("dpo_iter_0/events.out.tfevents.*"))  # tensorboard, outside the model folder
    assert not list((out / "dpo" / "iter_0").rglob("events.out.tfevents.*"))
