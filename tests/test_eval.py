"""Evaluation: the four output files, the metric keys, per-hop figures, original-data input."""

import json
from pathlib import Path

import pytest

from oakdpo import cli
from oakdpo.config import Config, EvalConfig, FormatConfig, ModelConfig
from oakdpo.tasks.prontoqa.generator import generate_problems
from oakdpo.data import write_problems
from oakdpo.evaluation import evaluate
from oakdpo.data import read_problem_file
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.trace import trace_record
from oakdpo.tiny import build_corpus, init_tiny_model
from oakdpo.model import load_policy

LOOKUP = FormatConfig(style="lookup")  # the tiny model's style

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TINY = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=500)
KEYS = {"accuracy", "step_validity", "trace_validity", "conclude_support", "traces", "reasoning_steps"}


@pytest.fixture(scope="module")
def problems():
    return generate_problems(9, (1, 3), seed=5)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, problems):
    out = tmp_path_factory.mktemp("eval") / "model"
    init_tiny_model(TINY, build_corpus(problems), out)
    return out


def test_evaluate_gold_traces_scores_perfectly(problems, tmp_path, monkeypatch):
    import oakdpo.generation

    def gold(model, tok, probs, samples, cfg, **kw):
        return [trace_record(p.id, 0, gold_trace(p), num_tokens=10) for p in probs]

    monkeypatch.setattr(oakdpo.generation, "generate_traces", gold)
    m = evaluate(None, None, problems, Config(format=LOOKUP), tmp_path / "out", progress=False)
    assert {k: m[k] for k in ("accuracy", "step_validity", "trace_validity", "conclude_support")} == \
        {"accuracy": 1.0, "step_validity": 1.0, "trace_validity": 1.0, "conclude_support": 1.0}
    hops = sorted({str(p.hops) for p in problems})
    assert list(m["by_hops"]) == hops
    for h in hops:
        n = sum(str(p.hops) == h for p in problems)
        assert m["by_hops"][h]["traces"] == n
        assert m["by_hops"][h]["reasoning_steps"] == n * int(h)
        assert m["by_hops"][h]["trace_validity"] == 1.0
    assert m["reasoning_steps"] == sum(p.hops for p in problems)
    assert m["invalid_ids"] == []


def test_evaluate_writes_the_four_files(problems, tiny_dir, tmp_path):
    model, tok = load_policy(tiny_dir)
    out = tmp_path / "out"
    m = evaluate(model, tok, problems, Config(eval=EvalConfig(max_new_tokens=20), format=LOOKUP), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "summary.md", "traces.jsonl", "verdicts.jsonl"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(m))
    assert KEYS <= set(saved) and saved["traces"] == len(problems) == saved["problems"]
    assert saved["trace_validity"] == 0.0  # an untrained model writes nothing valid
    assert saved["invalid_ids"] == sorted(p.id for p in problems)
    assert set(saved["by_hops"]) == {str(p.hops) for p in problems}
    assert all(KEYS <= set(v) for v in saved["by_hops"].values())
    traces = [json.loads(x) for x in (out / "traces.jsonl").read_text().splitlines()]
    verdicts = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    assert [t["problem_id"] for t in traces] == [v["problem_id"] for v in verdicts] == [p.id for p in problems]
    summary = (out / "summary.md").read_text()
    assert "| all | 9 |" in summary and summary.startswith("# Evaluation")


def test_read_problem_file_original_json():
    path = SHARED / "prontoqa" / "5hop_0shot_random.json"
    if not path.is_file():
        pytest.skip("shared data absent")
    problems = read_problem_file(path)
    assert len(problems) == 300 and {p.hops for p in problems} == {5}


def test_cli_eval(tmp_path, tiny_dir, problems):
    write_problems(tmp_path / "p.jsonl", problems[:3])
    rc = cli.main(["eval", "--model", str(tiny_dir), "--problems", str(tmp_path / "p.jsonl"), "-o",
                   str(tmp_path / "out"), "--set", "eval.max_new_tokens=8"])
    assert rc == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["traces"] == 3 and KEYS <= set(m)


def test_cli_eval_missing_problems_exit_2(tmp_path, tiny_dir, capsys):
    rc = cli.main(["eval", "--model", str(tiny_dir), "--problems", str(tmp_path / "none.json"), "-o",
                   str(tmp_path / "out")])
    assert rc == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'none.json'}: no such file"
    assert not (tmp_path / "out").exists()
