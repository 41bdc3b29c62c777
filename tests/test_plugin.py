"""A third-party task through the `oakdpo.tasks` entry-point group: the README's complete example, installed
into the test's environment (a module plus its dist-info on PYTHONPATH, which importlib.metadata reads as an
installed distribution), trained through `oakdpo oak` for one iteration on the tiny model. No oakdpo source
file knows the task."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_task_source() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Adding a task"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def plugin_path(tmp_path) -> Path:
    site = tmp_path / "site"
    (site / "oakdpo_sums-0.1.dist-info").mkdir(parents=True)
    (site / "oakdpo_sums.py").write_text(readme_task_source())
    (site / "oakdpo_sums-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: oakdpo-sums\n"
                                                                 "Version: 0.1\n")
    (site / "oakdpo_sums-0.1.dist-info" / "entry_points.txt").write_text(
        '[oakdpo.tasks]\nsums = oakdpo_sums:SumsTask\n')
    return site


def _env(site: Path) -> dict:
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_plugin_task_is_found_and_verifies(plugin_path):
    code = ("from oakdpo.tasks import get_task, task_names; t = get_task('sums'); p = t.generate(4, seed=2); "
            "v = [t.verify(q, t.gold_trace(q, 'natural'))['trace_valid'] for q in p]; "
            "bad = t.verify(p[0], t.gold_trace(p[0], 'natural').replace('So y = ', 'So y = 1'))['trace_valid']; "
            "print(task_names(), v, bad)")
    out = subprocess.run([sys.executable, "-c", code], env=_env(plugin_path), capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['prontoqa', 'folio', 'proofwriter', 'sums'] [True, True, True, True] False"


def test_plugin_task_trains_through_the_loop(plugin_path, tiny_model_dir, tmp_path):
    gen = ("import sys; from oakdpo.tasks import get_task; from oakdpo.data import write_problems; "
           "t = get_task('sums'); write_problems(sys.argv[1], t.generate(8, seed=0)); "
           "write_problems(sys.argv[2], t.generate(4, seed=50))")
    env = _env(plugin_path)
    subprocess.run([sys.executable, "-c", gen, str(tmp_path / "train.jsonl"), str(tmp_path / "val.jsonl")], env=env,
                   check=True)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "oakdpo.cli", "oak", "--config", str(ROOT / "configs" / "tiny.yaml"),
           "--dataset-type", "sums", "--sft-model", str(tiny_model_dir), "--train-data", str(tmp_path / "train.jsonl"),
           "--val-data", str(tmp_path / "val.jsonl"), "--iterations", "1", "--samples", "2", "--output-dir", str(out),
           "--set", "generation.max_new_tokens=40", "--set", "eval.max_new_tokens=40", "--set", "oak.train_problems_per_iter=0",
           "--set", "knowledge.enabled=false", "--set", "dpo.max_length=512"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "iter_0" / "metrics.json").read_text())
    assert metrics["stages"]["generate"]["traces"] == 16
    assert metrics["stages"]["pairs"]["pairs"] > 0  # the untrained model's traces against the gold ones
    assert metrics["stages"]["dpo"]["steps"] > 0
    assert metrics["eval"]["val"]["traces"] == 4
    problems = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert {p["task"] for p in problems} == {"sums"}
