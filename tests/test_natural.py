"""End to end (slow) in the natural format: SFT -> one OaK iteration -> evaluation, on the tiny model with
`--set format.style=natural` and on a Qwen2 stand-in (a few M parameters, ChatML chat template, LoRA) with
configs/training.yaml. Each prints one line of figures (`pytest -m slow -s tests/test_natural.py`); the stand-in is
random-init, so there is no quality target, only that every stage ran on natural, chat-framed data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oakdpo import cli
from oakdpo.config import load_config
from oakdpo.data import write_problems
from oakdpo.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]


def _figures(out: Path, sft_eval: dict | None = None) -> dict:
    m = json.loads((out / "iter_0" / "metrics.json").read_text())
    st = m["stages"]
    return {"sft": sft_eval, "traces": st["generate"]["traces"], "truncated": st["generate"].get("truncated"),
            "sampled_trace_validity": st["verify"].get("trace_validity"), "pairs": st["pairs"]["pairs"],
            "pairs_by_kind": st["pairs"].get("by_kind"), "dpo_steps": st["dpo"].get("steps"),
            "val": {k: m["eval"]["val"].get(k) for k in ("traces", "accuracy", "step_validity", "trace_validity")}}


@pytest.mark.slow
def test_tiny_model_in_the_natural_format(tmp_path, capsys):
    from oakdpo.loop import quickstart

    cfg = load_config(ROOT / "configs" / "tiny.yaml", [
        "format.style=natural", "data.train_problems=400", "data.val_problems=20", "data.loop_problems=60",
        "data.hops=1-2", "data.heldout=null", "sft.curriculum_steps=0", "sft.epochs=2", "oak.iterations=1",
        "oak.samples=2", "oak.train_problems_per_iter=60", "model.max_position_embeddings=2048",
        "sft.max_length=2048", "dpo.max_length=2048", "knowledge.max_traces=120"])
    out = tmp_path / "demo"
    rows = quickstart(out, cfg)
    assert [r["stage"] for r in rows] == ["sft", "iter_0"]
    # Every stage saw the natural format: the prompt carries the instruction, the gold traces are forward proofs.
    pairs = [json.loads(line) for line in (out / "iter_0" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["prompt"].startswith("Decide whether the query is true or false") for p in pairs)
    gold = [p["chosen"] for p in pairs if p["kind"] == "gold_vs_invalid"]
    assert gold and all("[Q]" not in g and "{" not in g and g.startswith("Thought: ") for g in gold)
    assert load_config(out / "config.yaml").format.style == "natural"
    fig = _figures(out, {k: rows[0].get(k) for k in ("accuracy", "step_validity", "trace_validity")})
    assert fig["dpo_steps"] >= 1 and fig["val"]["traces"] == 20
    with capsys.disabled():
        print("\ntiny model, natural format:", json.dumps(fig))


@pytest.mark.slow
def test_qwen2_standin_with_training_yaml(qwen2_standin, tmp_path, capsys):
    task = get_task("prontoqa")
    write_problems(tmp_path / "train.jsonl", task.generate(24, seed=31, hops=(1, 2)))
    write_problems(tmp_path / "val.jsonl", task.generate(6, seed=32, hops=(1, 2)))
    config = ["--config", str(ROOT / "configs" / "training.yaml"), "--set", "model.dtype=float32"]
    assert cli.main(["sft", *config, "--model", str(qwen2_standin), "--train-data", str(tmp_path / "train.jsonl"),
                     "-o", str(tmp_path / "sft")]) == 0
    sft = json.loads((tmp_path / "sft" / "sft_metrics.json").read_text())
    assert sft["steps"] >= 1 and (tmp_path / "sft" / "adapter_config.json").is_file()  # LoRA
    out = tmp_path / "oak"
    assert cli.main(["oak", *config, "--sft-model", str(tmp_path / "sft"), "--train-data",
                     str(tmp_path / "train.jsonl"), "--val-data", str(tmp_path / "val.jsonl"), "--iterations", "1",
                     "--samples", "2", "--output-dir", str(out)]) == 0
    pairs = [json.loads(line) for line in (out / "iter_0" / "pairs.jsonl").read_text().splitlines()]
    # The chat template frames every prompt once (system, user, the open assistant turn).
    assert pairs and all(p["prompt"].count("<|im_start|>") == 3 and p["prompt"].endswith("<|im_start|>assistant\n")
                         for p in pairs)
    fig = _figures(out, {"steps": sft["steps"], "final_loss": sft["final_loss"]})
    assert fig["traces"] == 48 and fig["val"]["traces"] == 6
    assert fig["dpo_steps"] >= 1
    with capsys.disabled():
        print("\nQwen2 stand-in, training.yaml:", json.dumps(fig))
