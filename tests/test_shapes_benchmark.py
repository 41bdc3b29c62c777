"""benchmarks/shapes.py: the result file names the grid's invalid problems, and --compare pairs two models problem
by problem with an exact sign test."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shapes():
    spec = importlib.util.spec_from_file_location("shapes_benchmark", ROOT / "benchmarks" / "shapes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _result(invalid, seed=1000, per_cell=20):
    return {"seed": seed, "per_cell": per_cell, "grid_invalid": sorted(invalid)}


def test_paired_counts_mended_and_broken_problems(shapes):
    base = _result({"a", "b", "c"})
    assert shapes.paired(base, _result({"b", "d"})) == (2, 1, 1.0)
    assert shapes.paired(base, _result(set())) == (3, 0, 0.25)
    assert shapes.paired(base, _result({"b", "d"}, seed=1001)) is None
    assert shapes.paired(base, _result({"b"}, per_cell=30)) is None
    assert shapes.paired({"seed": 1000, "per_cell": 20}, base) is None


def test_run_records_the_grids_invalid_ids_and_compare_prints_the_pairing(shapes, tmp_path, monkeypatch, capsys):
    import oakdpo.evaluation
    import oakdpo.model

    grid = shapes.grid_problems(7, 2)
    invalid = [probs[0].id for cell, probs in grid[::3]]  # the first problem of every third cell

    def fake_evaluate(model, tok, problems, cfg, out_dir, progress):
        rows = [{"problem_id": p.id, "steps": [], "num_reasoning_steps": 0, "correct": True,
                 "trace_valid": p.id not in invalid} for p in problems]
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "verdicts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    monkeypatch.setattr(oakdpo.model, "load_policy", lambda *a, **k: (None, None))
    monkeypatch.setattr(oakdpo.evaluation, "evaluate", fake_evaluate)
    r = shapes.run("unused", str(ROOT / "configs" / "tiny.yaml"), [], 7, 2, None, tmp_path / "work")
    assert len(grid) == 48 and invalid[:2] == ["gen-s700-000000", "gen-s703-000000"]
    assert r["grid_invalid"] == sorted(invalid)
    assert r["grid"]["cells_below_95"] == 16
    a, b = tmp_path / "sft.json", tmp_path / "loop.json"
    a.write_text(json.dumps(r))
    b.write_text(json.dumps({**r, "grid_invalid": r["grid_invalid"][2:] + ["gen-s701-000001"]}))
    c = tmp_path / "other_grid.json"
    c.write_text(json.dumps({**r, "seed": 8, "grid_invalid": []}))
    d = tmp_path / "all_valid.json"
    d.write_text(json.dumps({**r, "grid_invalid": []}))
    shapes.compare([str(a), str(b), str(c), str(d)])
    out = capsys.readouterr().out
    assert "loop against sft, grid problems: 2 mended, 1 broken (sign test p = 1)" in out
    assert "other_grid against sft: not paired" in out
    assert "all_valid against sft, grid problems: 16 mended, 0 broken (sign test p = 3.1e-05)" in out

    # a run with shared files beside one without (--shared ''): the missing column is '-'
    e = tmp_path / "with_shared.json"
    e.write_text(json.dumps({**r, "shared": {"5hop.json": {"trace_validity": 0.98}}}))
    shapes.compare([str(a), str(e)])
    assert re.search(r"5hop\.json +- +98\.0%", capsys.readouterr().out)


@pytest.mark.parametrize("text, message", [(None, "not a readable JSON result file"),
                                           ("{bad", "not a readable JSON result file"),
                                           ('{"cells": []}', "field 'grid' missing")])
def test_compare_names_a_bad_result_file(shapes, tmp_path, text, message):
    path = tmp_path / "r.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(shapes.UserError, match=f"{path}: {message}"):
        shapes.compare([str(path)])
