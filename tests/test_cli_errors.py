"""Malformed input gives one line naming file:line and the field, exit code 2, no output file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oakdpo import cli
from oakdpo.tasks.prontoqa.generator import generate_problems
from oakdpo.data import write_problems


def run_error(argv: list[str], capsys) -> str:
    """Run the CLI, expect exit code 2 and exactly one stderr line; return that line."""
    rc = cli.main(argv)
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def no_outputs(folder: Path, keep: set[str]) -> None:
    """Nothing but the inputs in the folder: no output and no leftover temp file."""
    assert {p.name for p in folder.iterdir()} == keep


@pytest.fixture
def problems_lines():
    return [json.dumps(p.to_dict()) for p in generate_problems(3, (1, 2), seed=0)]


def test_bad_json_line(tmp_path, capsys, problems_lines):
    bad = tmp_path / "problems.jsonl"
    bad.write_text("\n".join([problems_lines[0], problems_lines[1], '{"id": "x", "premises": [']) + "\n")
    out = tmp_path / "traces.jsonl"
    line = run_error(["data", "gold", "--problems", str(bad), "-o", str(out)], capsys)
    assert line.startswith(f"error: {bad}:3: invalid JSON (")
    no_outputs(tmp_path, {"problems.jsonl"})


def test_missing_key(tmp_path, capsys, problems_lines):
    rec = json.loads(problems_lines[1])
    del rec["query"]
    bad = tmp_path / "problems.jsonl"
    bad.write_text("\n".join([problems_lines[0], json.dumps(rec)]) + "\n")
    out = tmp_path / "traces.jsonl"
    line = run_error(["data", "gold", "--problems", str(bad), "-o", str(out)], capsys)
    assert line == f"error: {bad}:2: missing key 'query'"
    no_outputs(tmp_path, {"problems.jsonl"})


def test_a_first_record_without_premises_is_a_bad_problems_line(tmp_path, capsys, problems_lines):
    rec = json.loads(problems_lines[0])
    del rec["premises"]
    bad = tmp_path / "problems.jsonl"
    bad.write_text("\n".join([json.dumps(rec), problems_lines[1]]) + "\n")
    line = run_error(["data", "gold", "--problems", str(bad), "-o", str(tmp_path / "traces.jsonl")], capsys)
    assert line == f"error: {bad}:1: missing key 'premises'"
    no_outputs(tmp_path, {"problems.jsonl"})


def test_an_integer_too_long_to_convert_is_bad_json(tmp_path, capsys, problems_lines):
    bad = tmp_path / "problems.jsonl"
    bad.write_text(problems_lines[0] + "\n" + problems_lines[1][:-1] + ', "n": ' + "9" * 5000 + "}\n")
    line = run_error(["data", "gold", "--problems", str(bad), "-o", str(tmp_path / "traces.jsonl")], capsys)
    assert line.startswith(f"error: {bad}:2: invalid JSON (Exceeds the limit")
    no_outputs(tmp_path, {"problems.jsonl"})


@pytest.mark.parametrize("argv, flag", [(["data", "gold", "--problems", "p.jsonl", "--style", "foo"], "--style"),
                                        (["model", "standin", "--dtype", "float16"], "--dtype")])
def test_unknown_choices_are_usage_errors(tmp_path, capsys, argv, flag):
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "-o", str(tmp_path / "out")])
    assert e.value.code == 2 and f"argument {flag}: invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_wrong_label_and_field_types(tmp_path, capsys, problems_lines):
    out = tmp_path / "traces.jsonl"
    bad = tmp_path / "problems.jsonl"
    for field, value, message in [
        ("label", "yes", "field 'label' must be one of TRUE, FALSE, UNKNOWN, got 'yes'"),
        ("premises", "Max is a cat.", "field 'premises' must be a list of strings, got 'Max is a cat.'"),
        ("proof", [1, 2], "field 'proof' must be a list of strings, got [1, 2]"),
        ("hops", "3", "field 'hops' must be an integer or null, got '3'"),
    ]:
        rec = json.loads(problems_lines[2])
        rec[field] = value
        bad.write_text("\n".join(problems_lines[:2] + ["", json.dumps(rec)]) + "\n")  # blank line 3 is skipped
        line = run_error(["data", "gold", "--problems", str(bad), "-o", str(out)], capsys)
        assert line == f"error: {bad}:4: {message}"
        no_outputs(tmp_path, {"problems.jsonl"})


def test_duplicate_id(tmp_path, capsys, problems_lines):
    bad = tmp_path / "problems.jsonl"
    bad.write_text("\n".join([problems_lines[0], problems_lines[1], problems_lines[0]]) + "\n")
    line = run_error(["data", "gold", "--problems", str(bad), "-o", str(tmp_path / "t.jsonl")], capsys)
    assert line == f"error: {bad}:3: field 'id': duplicate id 'gen-s0-000000' (first on line 1)"


def test_missing_input_file(tmp_path, capsys):
    line = run_error(["data", "gold", "--problems", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "t.jsonl")],
                     capsys)
    assert line == f"error: {tmp_path / 'nope.jsonl'}: no such file"
    no_outputs(tmp_path, set())


def test_unknown_format(tmp_path, capsys):
    inp = tmp_path / "in.json"
    inp.write_text("{}")
    line = run_error(["data", "import", "--format", "xml", str(inp), "-o", str(tmp_path / "p.jsonl")], capsys)
    assert line == "error: --format: unknown format 'xml' (known: prontoqa-json, logiclm, folio, proofwriter-logiclm)"
    no_outputs(tmp_path, {"in.json"})


def test_bad_generate_arguments(tmp_path, capsys):
    out = str(tmp_path / "p.jsonl")
    assert run_error(["data", "generate", "--num", "3", "--hops", "0-9", "-o", out], capsys) == \
        "error: --hops: need 1 <= H1 <= H2 <= 5, got 0-9"
    assert run_error(["data", "generate", "--num", "3", "--hops", "two", "-o", out], capsys) == \
        "error: --hops: expected H or H1-H2 (e.g. 1-5), got 'two'"
    assert run_error(["data", "generate", "--dataset", "folio", "--num", "3", "-o", out], capsys) == \
        "error: --dataset: task 'folio' has no generator (import its files with oakdpo data import)"
    assert run_error(["data", "generate", "--num", "3", "--context-order", "inorder", "-o", out], capsys) == \
        "error: --context-order: expected one of mix, random, proof, preorder, got 'inorder'"
    no_outputs(tmp_path, set())


def test_bad_loop_premises(tmp_path, capsys):
    out = tmp_path / "demo"
    for value in ("abc", "30-20", "0-5", "30-34"):
        assert run_error(["quickstart", "-o", str(out), "--set", f"data.loop_premises={value}"], capsys) == \
            f"error: data.loop_premises: expected N or N1-N2 with 1 <= N1 <= N2 <= 33, got {value!r}"
    no_outputs(tmp_path, set())  # checked before the run folder is made


def test_bad_train_long_shape(tmp_path, capsys):
    out = str(tmp_path / "demo")
    assert run_error(["quickstart", "-o", out, "--set", "data.train_long_premises=5-3"], capsys) == \
        "error: data.train_long_premises: expected N or N1-N2 with 1 <= N1 <= N2 <= 33, got '5-3'"
    assert run_error(["quickstart", "-o", out, "--set", "data.train_long_premises=null"], capsys) == \
        "error: data.train_long_premises: expected N or N1-N2 with 1 <= N1 <= N2 <= 33, got None"
    assert run_error(["quickstart", "-o", out, "--set", "data.train_long_fraction=1.5"], capsys) == \
        "error: override: data.train_long_fraction: must be at most 1, got 1.5"
    no_outputs(tmp_path, set())


PRONTOQA_EXAMPLE = {"test_example": {"question": "Every wumpus is a yumpus. Rex is a wumpus.",
                                     "query": "True or false: Rex is a yumpus.",
                                     "chain_of_thought": ["Rex is a wumpus.", "Every wumpus is a yumpus.",
                                                          "Rex is a yumpus."],
                                     "answer": "True"}}


def test_prontoqa_json_errors(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    inp = tmp_path / "1hop_0shot.json"
    # invalid JSON: line of the parse error
    inp.write_text('{\n "example1": {\n  "test_example": {,\n}')
    line = run_error(["data", "import", "--format", "prontoqa-json", str(inp), "-o", str(out)], capsys)
    assert line.startswith(f"error: {inp}:3: invalid JSON (")
    # missing key: line of the example's key
    ex2 = json.loads(json.dumps(PRONTOQA_EXAMPLE))
    del ex2["test_example"]["chain_of_thought"]
    inp.write_text(json.dumps({"example1": PRONTOQA_EXAMPLE, "example2": ex2}, indent=1))
    line = run_error(["data", "import", "--format", "prontoqa-json", str(inp), "-o", str(out)], capsys)
    expected_line = inp.read_text().splitlines().index(' "example2": {') + 1
    assert line == f"error: {inp}:{expected_line}: example 'example2': missing key 'chain_of_thought'"
    # wrong answer value
    ex2 = json.loads(json.dumps(PRONTOQA_EXAMPLE))
    ex2["test_example"]["answer"] = "Maybe"
    inp.write_text(json.dumps({"example1": PRONTOQA_EXAMPLE, "example2": ex2}, indent=1))
    line = run_error(["data", "import", "--format", "prontoqa-json", str(inp), "-o", str(out)], capsys)
    assert line == f"error: {inp}:{expected_line}: example 'example2': field 'answer' must be \"True\" or " \
                   f"\"False\", got 'Maybe'"
    no_outputs(tmp_path, {"1hop_0shot.json"})


def test_logiclm_errors(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    inp = tmp_path / "dev.json"
    good = {"id": "ProntoQA_1", "context": "Every wumpus is a yumpus. Rex is a wumpus.",
            "question": "Is the following statement true or false? Rex is a yumpus.",
            "options": ["A) True", "B) False"], "answer": "A", "explanation": []}
    bad = dict(good, id="ProntoQA_2", answer="C")
    inp.write_text(json.dumps([good, bad], indent=2))
    line = run_error(["data", "import", "--format", "logiclm", str(inp), "-o", str(out)], capsys)
    lineno = inp.read_text().splitlines().index('    "id": "ProntoQA_2",') + 1
    assert line == f"error: {inp}:{lineno}: field 'answer' must be one of A, B, got 'C'"
    bad = {k: v for k, v in good.items() if k != "context"}
    bad["id"] = "ProntoQA_2"
    inp.write_text(json.dumps([good, bad], indent=2))
    line = run_error(["data", "import", "--format", "logiclm", str(inp), "-o", str(out)], capsys)
    assert line == f"error: {inp}:{lineno}: missing key 'context'"
    no_outputs(tmp_path, {"dev.json"})


def test_existing_output_is_left_alone(tmp_path, capsys, problems_lines):
    bad = tmp_path / "problems.jsonl"
    bad.write_text(problems_lines[0] + "\nnot json\n")
    out = tmp_path / "traces.jsonl"
    out.write_text("old\n")
    run_error(["data", "gold", "--problems", str(bad), "-o", str(out)], capsys)
    assert out.read_text() == "old\n"
    no_outputs(tmp_path, {"problems.jsonl", "traces.jsonl"})


def test_console_script_exit_code(tmp_path):
    """One run through the installed `oakdpo` console script (falls back to `python -m oakdpo.cli`)."""
    bad = tmp_path / "problems.jsonl"
    write_problems(bad, generate_problems(2, 1, seed=0))
    with open(bad, "a") as f:
        f.write('{"id": "z", "premises": [], "query": "True or false: Rex is red.", "label": "MAYBE"}\n')
    exe = shutil.which("oakdpo")
    cmd = [exe] if exe else [sys.executable, "-m", "oakdpo.cli"]
    res = subprocess.run(cmd + ["data", "gold", "--problems", str(bad), "-o", str(tmp_path / "traces.jsonl")],
                         capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr.splitlines() == [
        f"error: {bad}:3: field 'label' must be one of TRUE, FALSE, UNKNOWN, got 'MAYBE'"]
    no_outputs(tmp_path, {"problems.jsonl"})


# ------------------------------------------------------------------ the reliability issue's bad inputs

def _problems_file(tmp_path, problems_lines, edit=None, name="problems.jsonl") -> Path:
    recs = [json.loads(line) for line in problems_lines]
    if edit:
        edit(recs[1])
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_empty_premise(tmp_path, capsys, problems_lines):
    bad = _problems_file(tmp_path, problems_lines, lambda r: r["premises"].insert(2, ""))
    line = run_error(["data", "gold", "--problems", str(bad), "-o", str(tmp_path / "t.jsonl")], capsys)
    assert line == f"error: {bad}:2: field 'premises[2]' is an empty sentence"
    no_outputs(tmp_path, {"problems.jsonl"})


@pytest.mark.parametrize("fol", ["∀x P(x)", ["∀x P(x)"], {"premises": "∀x P(x)", "query": "P(a)"},
                                 {"premises": ["P(a)"], "query": 3}])
def test_bad_fol_field_in_every_command(tmp_path, capsys, problems_lines, tiny_model_dir, fol):
    bad = _problems_file(tmp_path, problems_lines, lambda r: r.update(fol=fol))
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"problem_id": "gen-s0-000000", "text": "x"}) + "\n")
    expected = f"error: {bad}:2: field 'fol' must be {{\"premises\": [strings], \"query\": string or null}}, got "
    model = str(tiny_model_dir)
    for argv in (["data", "gold", "--problems", str(bad), "-o", str(tmp_path / "g.jsonl")],
                 ["verify", "--problems", str(bad), "--traces", str(traces), "-o", str(tmp_path / "v.jsonl")],
                 ["solve", "--problems", str(bad), "-o", str(tmp_path / "s.jsonl")],
                 ["generate", "--model", model, "--problems", str(bad), "-o", str(tmp_path / "t2.jsonl")],
                 ["eval", "--model", model, "--problems", str(bad), "-o", str(tmp_path / "e")],
                 ["oak", "--sft-model", model, "--train-data", str(bad), "--output-dir", str(tmp_path / "o")]):
        assert run_error(argv, capsys).startswith(expected), argv
    assert {p.name for p in tmp_path.iterdir()} <= {"problems.jsonl", "traces.jsonl", "o"}
    assert not (tmp_path / "o").exists() or [p.name for p in (tmp_path / "o").iterdir()] == []


def test_json_nested_too_deep(tmp_path, capsys):
    bad = tmp_path / "problems.jsonl"
    bad.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    line = run_error(["data", "gold", "--problems", str(bad), "-o", str(tmp_path / "t.jsonl")], capsys)
    assert line == f"error: {bad}:1: JSON nested too deeply"
    no_outputs(tmp_path, {"problems.jsonl"})


def test_non_utf8_input_and_config(tmp_path, capsys, problems_lines):
    bad = tmp_path / "problems.jsonl"
    bad.write_bytes(problems_lines[0].encode() + b"\n\xff\xfe{}\n")
    assert run_error(["solve", "--problems", str(bad), "-o", str(tmp_path / "s.jsonl")], capsys) == \
        f"error: {bad}: not UTF-8 text"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(b"sft:\n  epochs: \xff\n")
    good = _problems_file(tmp_path, problems_lines, name="p.jsonl")
    assert run_error(["data", "gold", "--problems", str(good), "--config", str(cfg), "-o", str(tmp_path / "g.jsonl")],
                     capsys) == f"error: {cfg}: not UTF-8 text"
    no_outputs(tmp_path, {"problems.jsonl", "cfg.yaml", "p.jsonl"})


def test_truncated_safetensors(tmp_path, capsys, problems_lines, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    good = _problems_file(tmp_path, problems_lines)
    line = run_error(["generate", "--model", str(model), "--problems", str(good), "-o", str(tmp_path / "t.jsonl")],
                     capsys)
    assert line.startswith(f"error: {model}: could not load the model (")
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize("override, message", [
    ("generation.batch_size=0", "generation.batch_size: must be at least 1, got 0"),
    ("generation.max_new_tokens=-1", "generation.max_new_tokens: must be at least 1, got -1"),
    ("generation.temperature=0", "generation.temperature: must be greater than 0, got 0.0"),
    ("generation.batch_size=[", "the value is not valid YAML"),
])
def test_bad_generation_settings(tmp_path, capsys, problems_lines, tiny_model_dir, override, message):
    good = _problems_file(tmp_path, problems_lines)
    line = run_error(["generate", "--model", str(tiny_model_dir), "--problems", str(good), "--set", override,
                      "-o", str(tmp_path / "t.jsonl")], capsys)
    assert line.startswith("error: override") and line.endswith(message)
    no_outputs(tmp_path, {"problems.jsonl"})


def test_output_is_a_directory_or_unwritable(tmp_path, capsys, problems_lines):
    good = _problems_file(tmp_path, problems_lines)
    (tmp_path / "outdir").mkdir()
    assert run_error(["data", "gold", "--problems", str(good), "-o", str(tmp_path / "outdir")], capsys) == \
        f"error: {tmp_path / 'outdir'}: is a directory, expected a file to write"
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root without a restricted mount)")
        assert run_error(["data", "gold", "--problems", str(good), "-o", str(locked / "t.jsonl")], capsys) == \
            f"error: {locked / 't.jsonl'}: not writable (permission denied on {locked})"
    finally:
        locked.chmod(0o700)


def test_a_directory_is_not_called_missing(tmp_path, capsys, tiny_model_dir):
    d = tmp_path / "adir"
    d.mkdir()
    assert run_error(["data", "gold", "--problems", str(d), "-o", str(tmp_path / "t.jsonl")], capsys) == \
        f"error: {d}: is a directory, expected a problems file"
    assert run_error(["verify", "--problems", str(d), "--traces", str(d), "-o", str(tmp_path / "v.jsonl")], capsys) == \
        f"error: {d}: is a directory, expected a problems file"
    assert run_error(["data", "gold", "--problems", str(d), "--config", str(d), "-o", str(tmp_path / "t.jsonl")],
                     capsys) == f"error: {d}: is a directory, expected a YAML config file"


def test_files_follow_the_umask(tmp_path, problems_lines):
    from oakdpo.data import read_problems
    from oakdpo.io import atomic_folder, write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        write_problems(tmp_path / "p.jsonl", read_problems(_problems_file(tmp_path, problems_lines, name="in.jsonl")))
        with atomic_folder(tmp_path / "model") as d:
            (d / "w.txt").write_text("w")
    finally:
        os.umask(old)
    assert oct((tmp_path / "a.json").stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "p.jsonl").stat().st_mode & 0o777) == "0o644"
    assert oct((tmp_path / "model").stat().st_mode & 0o777) == "0o755"


def test_a_kill_while_a_folder_is_replaced_keeps_the_old_copy(tmp_path, monkeypatch):
    # atomic_folder moves the old folder aside, then the new one into place: a kill between the two renames
    # leaves only the moved-aside copy, which the next run's clean-up puts back (never deletes).
    from oakdpo import io

    with io.atomic_folder(tmp_path / "model") as d:
        (d / "w.txt").write_text("old")
    real_replace, calls = os.replace, []

    def killed_on_second_rename(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the kill
        return real_replace(a, b)

    monkeypatch.setattr(io.os, "replace", killed_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        with io.atomic_folder(tmp_path / "model") as d:
            (d / "w.txt").write_text("new")
    monkeypatch.setattr(io.os, "replace", real_replace)
    assert not (tmp_path / "model").exists() and (tmp_path / ".model.old.tmp").is_dir()
    assert io.remove_stale_temps(tmp_path) == 1
    assert (tmp_path / "model" / "w.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_pickle_weights_are_refused(tmp_path, capsys, tiny_model_dir, problems_lines):
    import torch
    from safetensors.torch import load_file

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    good = _problems_file(tmp_path, problems_lines)
    line = run_error(["generate", "--model", str(model), "--problems", str(good), "-o", str(tmp_path / "t.jsonl")],
                     capsys)
    assert line == (f"error: {model.resolve()}: holds only pickle weights (.bin/.pt), which can run code when loaded; "
                    "convert them to safetensors, or set model.allow_pickle=true if you trust the file")
