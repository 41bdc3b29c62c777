"""The distributed path on CPU: `torchrun --nproc_per_node=2 scripts/run_oak_dpo.py ...` with gloo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp: Path, model_dir: Path, problems, extra_cfg: dict, launcher: str = "torchrun"
         ) -> tuple[subprocess.CompletedProcess, Path]:
    from oakdpo.data import write_problems

    write_problems(tmp / "train.jsonl", problems)
    cfg = {"format": {"style": "lookup"}, "generation": {"max_new_tokens": 40, "batch_size": 8},
           "eval": {"max_new_tokens": 40},
           "dpo": {"batch_size": 2, "max_length": 512, "logging_steps": 1}, "knowledge": {"enabled": False}}
    for sec, vals in extra_cfg.items():
        cfg.setdefault(sec, {}).update(vals)
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp / "out"
    env = {**os.environ, "OAKDPO_TRACE_DUMP": str(tmp / "dump"), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    if launcher == "torchrun":
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    else:  # the shipped preset; on a machine without a GPU it starts 2 CPU processes (gloo)
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                  str(ROOT / "configs" / "accelerate" / "ddp.yaml"), "--main_process_port", str(_free_port())]
    cmd = launch + [str(ROOT / "scripts" / "run_oak_dpo.py"), "--samples", "1", "--iterations", "1",
           "--config", str(tmp / "cfg.yaml"), "--train-data", str(tmp / "train.jsonl"),
           "--sft-model", str(model_dir), "--dataset-type", "prontoqa", "--output-dir", str(out)]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=int(os.environ.get("OAKDPO_TEST_TIMEOUT", "600")))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, out


@pytest.mark.parametrize("launcher", ["torchrun", pytest.param("accelerate", marks=pytest.mark.slow)])
def test_torchrun_two_ranks_gather_and_train(tmp_path, tiny_model_dir, small_problems, launcher):
    proc, out = _run(tmp_path, tiny_model_dir, small_problems[:5], {}, launcher)
    log = proc.stdout + proc.stderr
    assert "Distributing 5 problems across 2 GPUs" in log
    assert "Generated 5 total traces" in log
    assert log.count("Distributing 5 problems") == 1  # rank 0 logs, once
    r0 = (tmp_path / "dump" / "traces_rank0.jsonl").read_text()
    r1 = (tmp_path / "dump" / "traces_rank1.jsonl").read_text()
    assert r0 == r1 and len(r0.splitlines()) == 5
    assert sorted(json.loads(line)["problem_id"] for line in r0.splitlines()) == sorted(p.id for p in small_problems[:5])
    state = json.loads((out / "dpo" / "iter_0" / "trainer_state.json").read_text())
    assert state["global_step"] > 0 and state["log_history"]
    assert sorted(p.name for p in (out / "dpo").iterdir()) == ["iter_0"]
    assert not list((out / "dpo" / "iter_0").rglob("iter_*"))
    assert (out / "iter_0" / "pairs.jsonl").read_text().count("\n") == 5  # gold vs invalid, every problem


@pytest.mark.parametrize("find_unused", [False, None])
def test_torchrun_lora_dpo_with_and_without_unused_parameter_search(tmp_path, tiny_model_dir, small_problems,
                                                                     find_unused):
    # training.yaml's false: a LoRA adapter uses every trainable parameter, so DDP need not search for unused ones;
    # null leaves transformers' choice, which searches, finds none and says so
    proc, out = _run(tmp_path, tiny_model_dir, small_problems[:4],
                     {"model": {"lora": True, "ddp_find_unused_parameters": find_unused}})
    searched = "find_unused_parameters=True was specified in DDP constructor" in proc.stdout + proc.stderr
    assert searched is (find_unused is None)
    state = json.loads((out / "dpo" / "iter_0" / "trainer_state.json").read_text())
    assert state["global_step"] > 0 and state["log_history"][0]["loss"] > 0
    assert (out / "dpo" / "iter_0" / "adapter_model.safetensors").is_file()


def test_torchrun_fewer_problems_than_ranks_and_no_pairs(tmp_path, tiny_model_dir, small_problems):
    proc, out = _run(tmp_path, tiny_model_dir, small_problems[:1],
                     {"pairs": {"use_gold": False, "min_step_validity_gap": 2.0}})
    log = proc.stdout + proc.stderr
    assert "Distributing 1 problems across 2 GPUs" in log and "Generated 1 total traces" in log
    assert (out / "iter_0" / "pairs.jsonl").read_text() == ""
    state = json.loads((out / "dpo" / "iter_0" / "trainer_state.json").read_text())
    assert state["global_step"] == 0 and state["note"] == "no preference pairs in this iteration"
    assert (out / "iter_0" / "metrics.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["iter_0/generate", "iter_0/verify", "iter_0/pairs", "iter_0/knowledge",
                                   "iter_0/dpo", "iter_0/eval_val", "sft/saved"])
def test_an_exception_on_one_rank_ends_the_job(tmp_path, tiny_model_dir, small_problems, stage):
    """A Python exception on rank 1 ends the whole torchrun job within seconds, its traceback printed with its
    rank (the other rank must not wait in a collective until the process-group timeout): every stage of the loop,
    and `oakdpo sft` after the trainer saved."""
    import time

    from oakdpo.data import write_problems

    write_problems(tmp_path / "train.jsonl", small_problems[:4])
    write_problems(tmp_path / "val.jsonl", small_problems[4:6])
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({
        "format": {"style": "lookup"}, "generation": {"max_new_tokens": 20, "batch_size": 8},
        "eval": {"max_new_tokens": 20}, "dpo": {"batch_size": 2, "max_length": 512},
        "sft": {"batch_size": 2, "max_length": 512, "epochs": 1.0},
        "knowledge": {"enabled": stage == "iter_0/knowledge"}}))
    env = {**os.environ, "OAKDPO_FAULT": f"{stage}@1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    data = ["--config", str(tmp_path / "cfg.yaml"), "--train-data", str(tmp_path / "train.jsonl")]
    if stage.startswith("sft/"):
        cmd = run + ["-m", "oakdpo.cli", "sft", "--model", str(tiny_model_dir), "-o", str(tmp_path / "sft"), *data]
    else:
        cmd = run + [str(ROOT / "scripts" / "run_oak_dpo.py"), "--samples", "1", "--iterations", "1", *data,
                     "--val-data", str(tmp_path / "val.jsonl"), "--sft-model", str(tiny_model_dir),
                     "--dataset-type", "prontoqa", "--output-dir", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log, fault_at = [], None
    for line in proc.stdout:  # time from the fault to the end of the job
        log.append(line)
        if "injected fault" in line and fault_at is None:
            fault_at = time.monotonic()
    proc.wait(timeout=600)
    text = "".join(log)
    assert proc.returncode != 0, text[-2000:]
    assert fault_at is not None and time.monotonic() - fault_at < 60, text[-2000:]
    assert f"[rank 1] RuntimeError: injected fault at {stage} on rank 1" in text


def test_generate_and_eval_under_torchrun_match_one_process(tmp_path, tiny_model_dir, small_problems):
    # `oakdpo generate` / `oakdpo eval` under torchrun: each rank takes a shard, rank 0 writes every trace; the
    # same seed gives the same traces as one process (per-item sampling streams)
    from oakdpo.data import write_problems

    write_problems(tmp_path / "p.jsonl", small_problems[:5])
    sets = ["--set", "format.style=lookup", "--set", "generation.max_new_tokens=30", "--set", "eval.max_new_tokens=30"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    outs = {}
    for name, launch in (("one", [sys.executable]), ("two", [sys.executable, "-m", "torch.distributed.run",
                                                             "--nproc_per_node=2", f"--master_port={_free_port()}"])):
        gen = launch + ["-m", "oakdpo.cli", "generate", "--model", str(tiny_model_dir), "--problems",
                        str(tmp_path / "p.jsonl"), "--samples", "2", "-o", str(tmp_path / f"{name}.jsonl")] + sets
        ev = launch + ["-m", "oakdpo.cli", "eval", "--model", str(tiny_model_dir), "--problems",
                       str(tmp_path / "p.jsonl"), "-o", str(tmp_path / f"eval_{name}")] + sets
        for cmd in (gen, ev):
            proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]
        outs[name] = ((tmp_path / f"{name}.jsonl").read_text(),
                      (tmp_path / f"eval_{name}" / "traces.jsonl").read_text())
    assert len(outs["one"][0].splitlines()) == 10 and len(outs["one"][1].splitlines()) == 5
    assert outs["two"] == outs["one"]


def test_torchrun_sft_restart_stops_and_restarts_every_rank(tmp_path, tiny_model_dir, small_problems):
    # a loss check that fails on the first log: both ranks stop, rank 0 sets the checkpoint aside and clears the
    # folder, both train again with sft.seed + 100
    from oakdpo.data import write_problems

    write_problems(tmp_path / "train.jsonl", small_problems[:8])
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({
        "format": {"style": "lookup"},
        "sft": {"batch_size": 2, "max_length": 512, "epochs": 2.0, "logging_steps": 1, "seed": 3,
                "restarts": 1, "restart_step": 1, "restart_loss": 0.0}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "oakdpo.cli", "sft", "--model", str(tiny_model_dir), "-o", str(tmp_path / "sft"),
           "--config", str(tmp_path / "cfg.yaml"), "--train-data", str(tmp_path / "train.jsonl")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("starting again with sft.seed 103 (restart 1 of 1)") == 1
    metrics = json.loads((tmp_path / "sft" / "sft_metrics.json").read_text())
    # the last run's loss is above run 0's at the check too: both ranks go on from run 0's checkpoint at step 1
    first, last = metrics["restart_checks"]
    assert (first["step"], last["step"]) == (1, 1) and last["loss"] > first["loss"]
    assert log.count("going on from the lowest, run 0 (sft.seed 3)") == 1
    assert (metrics["restarts"], metrics["continued_run"], metrics["resumed_from_step"]) == (1, 0, 1)
    assert metrics["steps"] == 4  # 8 problems / (2 per rank x 2 ranks) x 2 epochs
    assert yaml.safe_load((tmp_path / "sft" / "config.yaml").read_text())["sft"]["seed"] == 3
    assert sorted(p.name for p in (tmp_path / "sft").iterdir() if p.name.startswith(("attempt_", "check"))) == []
