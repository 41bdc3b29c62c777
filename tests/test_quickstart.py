"""End to end (slow): `oakdpo quickstart` on a shrunken tiny config writes the whole run layout; a rerun resumes.

Run with `python -m pytest -m slow tests/test_quickstart.py` (about a minute)."""

import json
from pathlib import Path

import pytest

from oakdpo.config import load_config
from oakdpo.loop import quickstart

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.train_problems=24", "data.train_long_fraction=0.25", "data.train_long_premises=11-12",
         "data.val_problems=4", "data.loop_problems=8", "data.loop_premises=9-10",
         "data.hops=1-2",
         "data.heldout=null", "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
         "model.intermediate_size=64", "model.vocab_size=400", "sft.epochs=1", "sft.curriculum_steps=3",
         "sft.logging_steps=1", "generation.max_new_tokens=40", "eval.max_new_tokens=40", "oak.iterations=2",
         "oak.samples=2", "oak.train_problems_per_iter=4", "knowledge.max_traces=40",
         "pairs.use_gold=true"]  # this barely trained model writes no valid trace: gold pairs make DPO train


@pytest.mark.slow
def test_quickstart_writes_the_run_layout_and_resumes(tmp_path):
    cfg = load_config(ROOT / "configs" / "tiny.yaml", SMALL)
    out = tmp_path / "demo"
    rows = quickstart(out, cfg)
    assert [r["stage"] for r in rows] == ["sft", "iter_0", "iter_1"]
    for rel in ("config.yaml", "data/train.jsonl", "data/val.jsonl", "init/config.json", "sft/model.safetensors",
                "eval_sft/val/metrics.json", "report.md", "report.png"):
        assert (out / rel).is_file(), rel
    assert sorted(p.name for p in (out / "dpo").iterdir()) == ["iter_0", "iter_1"]
    for k in (0, 1):
        state = json.loads((out / "dpo" / f"iter_{k}" / "trainer_state.json").read_text())
        assert state["global_step"] > 0
        assert not any(p.name.startswith("iter_") for p in (out / "dpo" / f"iter_{k}").iterdir())
        for name in ("traces.jsonl", "verdicts.jsonl", "pairs.jsonl", "metrics.json"):
            assert (out / f"iter_{k}" / name).is_file()
    traces = [json.loads(line) for line in open(out / "iter_0" / "traces.jsonl")]
    assert len(traces) == 4 * 2
    # the iterations sample their own problems (data/loop.jsonl, generator seed data.seed + 2), none of SFT's
    loop = [json.loads(line) for line in open(out / "data" / "loop.jsonl")]
    loop_ids = [p["id"] for p in loop]
    assert {len(p["premises"]) for p in loop} <= {9, 10}  # data.loop_premises
    train = [json.loads(line) for line in open(out / "data" / "train.jsonl")]
    assert any(not 9 <= len(p["premises"]) <= 10 for p in train)
    train_ids = {p["id"] for p in train}
    # data.train_long_fraction: 6 of the 24 from generator seed data.seed + 3 at 11-12 premises, shuffled in
    long = [i for i, p in enumerate(train) if p["id"].startswith("gen-s3-")]
    assert len(long) == 6 and all(len(train[i]["premises"]) in (11, 12) for i in long) and long != list(range(18, 24))
    assert len(loop_ids) == 8 and not train_ids & set(loop_ids)
    assert {t["problem_id"] for t in traces} == set(loop_ids[:4])
    report = (out / "report.md").read_text()
    assert "| iter_1 |" in report and "| sft |" in report
    assert json.loads((out / "metrics.json").read_text())["rows"] == json.loads(json.dumps(rows))

    def invalid(d):
        return {v["problem_id"] for v in map(json.loads, open(d / "verdicts.jsonl")) if not v["trace_valid"]}

    sft_invalid = invalid(out / "eval_sft" / "val")
    for r in rows[1:]:  # each iteration paired with SFT, problem by problem, from the verdicts it wrote
        it_invalid = invalid(out / r["stage"] / "eval_val")
        assert (r["against"], r["mended"], r["broken"]) == ("sft", len(sft_invalid - it_invalid),
                                                              len(it_invalid - sft_invalid))
        assert f"| {r['stage']} | val |" in report and f"{r['mended']} / {r['broken']} (p " in report
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}
    assert [r["stage"] for r in quickstart(out, cfg)] == ["sft", "iter_0", "iter_1"]  # resumes: nothing redone
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")} == before


@pytest.mark.slow
def test_quickstart_sft_restarts_with_a_new_tiny_model_from_restart_init_from(tmp_path, capfd):
    # every check fails: restart 1 keeps OUT/init, restart 2 starts from a new OUT/init_2, and its loss is above
    # the lowest earlier run's, so SFT goes on from that run's checkpoint
    cfg = load_config(ROOT / "configs" / "tiny.yaml", SMALL + [
        "oak.iterations=1", "sft.restarts=2", "sft.restart_step=1", "sft.restart_loss=0", "model.restart_init_from=2"])
    out = tmp_path / "demo"
    quickstart(out, cfg)
    metrics = json.loads((out / "sft" / "sft_metrics.json").read_text())
    checks = metrics["restart_checks"]
    assert metrics["restarts"] == 2 and [c["step"] for c in checks] == [1, 1, 1]
    best = min(range(3), key=lambda k: checks[k]["loss"])
    assert best < 2 and metrics["continued_run"] == best and metrics["resumed_from_step"] == 1
    assert (out / "init_2" / "model.safetensors").is_file() and not (out / "init_1").exists()
    assert load_config(out / "sft" / "config.yaml").sft.seed == cfg.sft.seed + 100 * best
    printed = capfd.readouterr().out  # by the SFT child process
    assert "(restart 2 of 2)" in printed and f"going on from the lowest, run {best} (sft.seed" in printed
