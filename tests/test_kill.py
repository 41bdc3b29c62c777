"""Kill tests (slow): `oakdpo quickstart` SIGKILLed at 11 points, each rerun resuming, then a truncated DONE.json
marker: the final files equal an uninterrupted run's, no temp file is left and every stage's metrics are there.

The kills are injected with OAKDPO_FAULT="kill:<point>@0" (oakdpo.dist.fault_point): inside SFT and DPO right
after their first checkpoint (the rerun must resume from it, inside the stage), between the trainer's save and
our DONE.json marker, inside generation (some traces in its partial file: the rerun continues from them),
between a stage's metrics and its output, after a stage's output, and during evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_quickstart import SMALL

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = SMALL + ["sft.save_steps=1", "dpo.save_steps=1", "dpo.batch_size=2", "verify.workers=1",
                     "generation.batch_size=2"]
KILLS = ["sft/checkpoint", "sft/saved", "generate/partial", "iter_0/generate/metrics", "iter_0/verify", "iter_0/pairs/metrics",
         "iter_0/knowledge", "dpo/checkpoint", "dpo/saved", "iter_1/generate", "iter_1/eval_val"]


def _run(out: Path, fault: str | None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "oakdpo.cli", "quickstart", "-o", str(out), "--config",
           str(ROOT / "configs" / "tiny.yaml")] + [a for o in OVERRIDES for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("OAKDPO_FAULT", None)
    if fault:
        env["OAKDPO_FAULT"] = f"kill:{fault}@0"
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def _drop_times(obj):
    if isinstance(obj, dict):
        return {k: _drop_times(v) for k, v in obj.items()
                if not (k.endswith(("wall_s", "runtime_s", "_per_s", "_per_second", "runtime")) or
                        k in ("policy", "output", "resumed_from_step"))}
    if isinstance(obj, list):
        return [_drop_times(v) for v in obj]
    return obj


def _artifacts(root: Path) -> dict[str, object]:
    out = {}
    for f in sorted(root.rglob("*")):
        rel = str(f.relative_to(root))
        if not f.is_file() or rel.startswith("logs/") or f.name in ("report.png", "report.md", "report.html"):
            continue
        if f.suffix == ".json":
            out[rel] = _drop_times(json.loads(f.read_text()))
        elif f.name == "trainer_state.json" or f.suffix in (".yaml",):
            out[rel] = f.read_text()
        elif f.suffix in (".jsonl", ".safetensors", ".png"):
            out[rel] = f.read_bytes()
    for rel in [r for r in out if r.endswith("trainer_state.json") or r.endswith("DONE.json")]:
        out.pop(rel)  # hold times; the weights and metrics beside them are compared instead
    return out


@pytest.mark.slow
def test_killed_runs_resume_to_the_same_files(tmp_path):
    full = tmp_path / "full"
    assert _run(full, None).returncode == 0
    out = tmp_path / "killed"
    previous = None
    for point in KILLS:
        proc = _run(out, point)
        log = proc.stdout + proc.stderr
        assert proc.returncode == -9, (point, log[-1500:])
        if previous in ("sft/checkpoint", "dpo/checkpoint"):  # resumed inside the stage, from its checkpoint
            assert f"{previous.split('/')[0]}: resuming from" in log, log[-1500:]
        if previous == "generate/partial":  # resumed inside generation, from its partial file
            assert "resuming generation:" in log, log[-1500:]
        previous = point
    # A truncated marker is not trusted: that DPO iteration is trained again.
    marker = out / "dpo" / "iter_1" / "DONE.json"
    marker.write_text(marker.read_text()[:40])
    final = _run(out, None)
    assert final.returncode == 0, final.stderr[-2000:]
    assert not list(out.rglob(".*.tmp")), "temp files left behind"
    for k in (0, 1):
        stages = json.loads((out / f"iter_{k}" / "metrics.json").read_text())["stages"]
        assert set(stages) == {"generate", "verify", "pairs", "knowledge", "dpo", "eval"}
        assert stages["dpo"]["steps"] > 0
    a, b = _artifacts(full), _artifacts(out)
    assert sorted(a) == sorted(b)
    assert [k for k in a if a[k] != b[k]] == []
