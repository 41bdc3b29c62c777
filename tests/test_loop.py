"""The OaK-DPO loop's runtime guarantees: fresh DPO config per iteration, one-level output folders, explicit
reference, no torch.distributed with WORLD_SIZE=1, prompt ids a prefix of prompt+chosen, and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from oakdpo import dist
from oakdpo.config import Config
from oakdpo.dpo import base_dpo_args, iteration_args


def loop_config(**knowledge) -> Config:
    cfg = Config()
    cfg.format.style = "lookup"  # the tiny model's style
    cfg.generation.max_new_tokens = 40
    cfg.generation.batch_size = 16
    cfg.eval.max_new_tokens = 40
    cfg.dpo.batch_size = 4
    cfg.dpo.max_length = 512
    cfg.dpo.learning_rate = 1e-3
    cfg.dpo.logging_steps = 1
    cfg.knowledge.enabled = knowledge.get("enabled", False)
    return cfg


def test_iteration_args_are_fresh_copies(tmp_path):
    base = base_dpo_args(Config(), tmp_path)
    before = base.to_dict()
    a0, a1 = iteration_args(base, tmp_path, 0), iteration_args(base, tmp_path, 1)
    assert base.to_dict() == before
    assert (a0.output_dir, a1.output_dir) == (str(tmp_path / "dpo" / "iter_0"), str(tmp_path / "dpo" / "iter_1"))
    assert a0 is not base and a0.loss_type is not base.loss_type
    assert base.precompute_ref_log_probs is True  # the reference is the generating policy, precomputed


def test_world_size_one_never_initialises_distributed(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert dist.init_distributed() is False
    assert not torch.distributed.is_initialized()
    assert dist.gather_lists([1, 2]) == [1, 2]
    assert dist.shard(list(range(5)), r=1, w=2) == [3, 4] and dist.shard([7], r=1, w=2) == []


def test_prompt_ids_are_a_prefix_of_prompt_plus_chosen(tiny_model_dir, small_problems):
    from transformers import AutoTokenizer

    from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt
    from oakdpo.tasks.prontoqa.gold import gold_trace

    tok = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    for p in small_problems:
        prompt = build_prompt(p)
        ids, full = tok(prompt)["input_ids"], tok(prompt + gold_trace(p) + tok.eos_token)["input_ids"]
        assert full[:len(ids)] == ids and len(full) > len(ids)


def _files(root: Path) -> dict[str, str]:
    """Artifact contents keyed by relative path, without wall-clock fields (they differ run to run)."""
    out = {}
    for f in sorted(root.rglob("*")):
        rel = str(f.relative_to(root))
        if f.suffix == ".jsonl":
            out[rel] = f.read_text()
        elif f.name in ("metrics.json", "progress.json"):
            out[rel] = json.dumps(_drop_times(json.loads(f.read_text())), sort_keys=True)
    return out


def _drop_times(obj):
    if isinstance(obj, dict):
        return {k: _drop_times(v) for k, v in obj.items()
                if not (k.endswith(("wall_s", "runtime_s", "_per_s")) or k in ("policy", "output"))}
    if isinstance(obj, list):
        return [_drop_times(v) for v in obj]
    return obj


@pytest.mark.parametrize("stops", [["iter_0/generate", "iter_0/dpo", "iter_1/pairs"]])
def test_two_iterations_layout_base_config_and_resume(tmp_path, tiny_model_dir, small_problems, monkeypatch, stops):
    import oakdpo.dpo as dpo_mod
    from oakdpo.loop import _Stop, run_oak
    from oakdpo.model import load_policy

    train, val = small_problems[:4], small_problems[4:7]
    made = []
    real_base = dpo_mod.base_dpo_args

    def spy_base(cfg, out):
        base = real_base(cfg, out)
        made.append((base, base.to_dict()))
        return base

    monkeypatch.setattr(dpo_mod, "base_dpo_args", spy_base)
    cfg = loop_config()
    kw = dict(sft_model=tiny_model_dir, train=train, eval_sets={"val": val}, iterations=2, samples=2)
    full = tmp_path / "full"
    metrics = run_oak(cfg, output_dir=full, **kw)

    # The base DPO config is unchanged after two iterations; each iteration wrote to its own folder, one level.
    base, snapshot = made[0]
    assert base.to_dict() == snapshot and base.output_dir == str(full / "dpo")
    assert sorted(p.name for p in (full / "dpo").iterdir()) == ["iter_0", "iter_1"]
    for k in (0, 1):
        d = full / "dpo" / f"iter_{k}"
        state = json.loads((d / "trainer_state.json").read_text())
        assert state["global_step"] > 0 and state["log_history"]
        assert (d / "model.safetensors").is_file()
        assert not list(d.rglob("iter_*")), "nested iteration folder"
        assert metrics[k]["stages"]["pairs"]["pairs"] > 0
        assert metrics[k]["eval"]["val"]["trace_validity"] is not None
    # Training changed the parameters.
    m0, _ = load_policy(tiny_model_dir)
    m1, _ = load_policy(full / "dpo" / "iter_1")
    assert any(not torch.equal(a, b) for a, b in zip(m0.state_dict().values(), m1.state_dict().values()))

    # Killed between stages, then rerun: the same final files as the uninterrupted run.
    resumed = tmp_path / "resumed"
    for stop in stops:
        with pytest.raises(_Stop):
            run_oak(cfg, output_dir=resumed, stop_after=stop, **kw)
    run_oak(cfg, output_dir=resumed, **kw)
    a, b = _files(full), _files(resumed)
    assert set(a) == set(b) and len(a) >= 10
    for rel in a:
        assert a[rel] == b[rel], rel


def test_an_iteration_without_pairs_says_why_on_one_line(tmp_path, tiny_model_dir, small_problems, capsys):
    # One sample per problem and no gold pairs: nothing can pair, and the loop says so in one line, with the way
    # out; DPO is skipped and the iteration still completes.
    from oakdpo.loop import run_oak

    cfg = loop_config()
    cfg.pairs.use_gold = False
    out = tmp_path / "run"
    metrics = run_oak(cfg, sft_model=tiny_model_dir, train=small_problems[:3], eval_sets={}, output_dir=out,
                      iterations=1, samples=1)
    lines = [line for line in capsys.readouterr().out.splitlines() if "no preference pairs" in line]
    assert len(lines) == 1
    verdicts = [json.loads(line) for line in (out / "iter_0" / "verdicts.jsonl").read_text().splitlines()]
    valid = sum(v["trace_valid"] for v in verdicts)
    assert lines[0] == (f"iteration 0: no preference pairs: {valid} of 3 traces are valid and no problem has a valid "
                        "or sound sample beside an invalid one; with one sample per problem only gold pairs can "
                        "form: set pairs.use_gold=true or sample more (--samples 2)")
    assert metrics[0]["stages"]["pairs"]["pairs"] == 0 and metrics[0]["stages"]["pairs"]["no_pairs"] in lines[0]
    assert json.loads((out / "dpo" / "iter_0" / "trainer_state.json").read_text())["global_step"] == 0


@pytest.mark.parametrize("option", ["citation", "numbering", "dead_end"])
@pytest.mark.parametrize("in_samples", [False, True])
def test_the_iterations_samples_mend_only_what_they_are_asked_to(tmp_path, tiny_model_dir, small_problems,
                                                               monkeypatch, option, in_samples):
    """oak.sample_citation_decoding / _numbering_ / _dead_end_: the loop's samples (its pairs' source) keep the
    model's own citations / numbers / lookups unless the key is on; evaluation decodes with format.*_decoding either
    way, and the config is left as it was."""
    from oakdpo import generation
    from oakdpo.loop import run_oak

    real, calls = generation.generate_traces, []
    name = f"{option}_decoding"

    def spy(*args, fmt=None, do_sample=True, **kwargs):
        calls.append((do_sample, getattr(fmt, name)))
        return real(*args, fmt=fmt, do_sample=do_sample, **kwargs)

    monkeypatch.setattr(generation, "generate_traces", spy)
    cfg = loop_config()
    setattr(cfg.format, name, True)
    setattr(cfg.oak, f"sample_{name}", in_samples)
    run_oak(cfg, sft_model=tiny_model_dir, train=small_problems[:2], eval_sets={"val": small_problems[2:3]},
            output_dir=tmp_path / "run", iterations=1, samples=1)
    assert sorted(set(calls)) == sorted({(True, in_samples), (False, True)})
    assert getattr(cfg.format, name)


# ------------------------------------------------------------------ quickstart's SFT in a child process

def _write_pid(path):
    import os

    Path(path).write_text(str(os.getpid()))


def _user_error(message):
    from oakdpo.io import UserError

    raise UserError(message)


def _crash():
    raise ValueError("boom")


def _killed():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def test_in_child_process_runs_elsewhere_and_reraises_user_errors(tmp_path):
    import os

    from oakdpo.io import UserError
    from oakdpo.loop import in_child_process

    in_child_process(_write_pid, tmp_path / "pid")
    child = int((tmp_path / "pid").read_text())
    assert child != os.getpid() and child > 0
    with pytest.raises(UserError, match="^sft: no training problem has a gold trace$"):
        in_child_process(_user_error, "sft: no training problem has a gold trace")
    with pytest.raises(RuntimeError, match=r"_crash failed in its child process \(exit code 1\)"):
        in_child_process(_crash)


def test_a_child_killed_by_a_signal_kills_its_parent_the_same_way():
    import subprocess
    import sys

    # as the kill tests need: a SIGKILL inside SFT ends `oakdpo quickstart` with -9, not with an error
    code = ("import sys; sys.path.insert(0, %r); from test_loop import _killed; from oakdpo.loop import "
            "in_child_process; in_child_process(_killed); print('survived')" % str(Path(__file__).parent))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9 and "survived" not in proc.stdout, proc.stderr[-1000:]


def test_lookup_note_names_the_figure_only_when_validation_traces_are_mostly_invalid():
    from oakdpo.loop import lookup_note

    note = lookup_note({"val": {"trace_validity": 0.0}, "heldout": {"trace_validity": 0.0}})
    assert note.startswith("note: the SFT model's strict trace validity on validation is 0.0%:")
    assert "sft.seed" in note and "\n" not in note
    assert "63.0%" in lookup_note({"val": {"trace_validity": 0.63}})
    assert lookup_note({"val": {"trace_validity": 0.8}}) is None
    assert lookup_note({"val": {"trace_validity": 0.96}, "heldout": {"trace_validity": 0.0}}) is None
    assert lookup_note({}) is None


def test_restart_init_draws_a_new_tiny_model_from_model_restart_init_from(tmp_path):
    from safetensors.torch import load_file

    from oakdpo.loop import restart_init
    from oakdpo.tasks.prontoqa.generator import generate_problems
    from oakdpo.tiny import build_corpus, init_tiny_model

    cfg = loop_config()
    cfg.model.hidden_size, cfg.model.num_layers, cfg.model.intermediate_size, cfg.model.vocab_size = 32, 2, 64, 400
    cfg.sft.seed, cfg.model.restart_init_from = 4, 2
    train = generate_problems(8, (1, 3), seed=1)
    init_tiny_model(cfg.model, build_corpus(train, "lookup"), tmp_path / "init", seed=4)
    assert restart_init(cfg, tmp_path, 1) == tmp_path / "init"
    assert restart_init(cfg, tmp_path, 2) == tmp_path / "init_2"
    init_tiny_model(cfg.model, build_corpus(train, "lookup"), tmp_path / "seed204", seed=204)
    first, new, want = (load_file(tmp_path / d / "model.safetensors") for d in ("init", "init_2", "seed204"))
    assert all(torch.equal(new[k], want[k]) for k in want)  # drawn with sft.seed + 100 * 2
    assert not all(torch.equal(new[k], first[k]) for k in first)
    assert (tmp_path / "init_2" / "tokenizer.json").read_text() == (tmp_path / "init" / "tokenizer.json").read_text()
    cfg.model.restart_init_from = 0
    assert restart_init(cfg, tmp_path, 2) == tmp_path / "init"


@pytest.mark.parametrize("flags, task", [([], "proofwriter"), (["--dataset-type", "prontoqa"], "prontoqa")])
def test_oak_takes_the_task_from_the_config_unless_the_flag_names_one(tmp_path, tiny_model_dir, monkeypatch,
                                                                      flags, task):
    from oakdpo import cli, loop

    rec = {"id": "x", "premises": ["The cow is blue."], "query": "The cow is blue.", "label": "TRUE"}
    (tmp_path / "p.jsonl").write_text(json.dumps(rec) + "\n")
    seen = {}

    class Read(Exception):
        pass

    def fake_run_oak(cfg, train, **kwargs):
        seen.update(dataset=cfg.data.dataset, tasks={p.task for p in train})
        raise Read

    monkeypatch.setattr(loop, "run_oak", fake_run_oak)
    with pytest.raises(Read):
        cli.main(["oak", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"), "--set", "data.dataset=proofwriter", "--sft-model",
                  str(tiny_model_dir), "--train-data", str(tmp_path / "p.jsonl"), "--output-dir",
                  str(tmp_path / "out"), *flags])
    assert seen == {"dataset": task, "tasks": {task}}


def test_each_rank_writes_its_own_partial_file_and_reads_every_ranks(tmp_path, monkeypatch, small_problems):
    """A rerun with another rank count finds the traces every rank of the killed run finished."""
    from oakdpo import generation, loop

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    (tmp_path / "traces.partial.rank0.jsonl").write_text("")
    seen = {}

    def fake_generate(model, tokenizer, problems, samples, gen_cfg, *, partial_path, **kwargs):
        partial = generation._Partial(partial_path, {})
        seen.update(path=partial.path.name, files=[p.name for p in partial.files() if p.exists()])
        return []

    monkeypatch.setattr(generation, "generate_traces", fake_generate)
    loop.generate_distributed(None, None, small_problems[:4], 1, loop_config(), seed=0, partial_dir=tmp_path)
    assert seen == {"path": "traces.partial.rank1.jsonl", "files": ["traces.partial.rank0.jsonl"]}
