"""ProofWriter and FOLIO through the whole loop on the built-in tiny model, with the CLI a user types: data ->
`oakdpo model init` -> `oakdpo sft` -> `oakdpo oak` (generate -> verify -> pairs -> DPO -> evaluate) -> figures.
It shows that each task trains end to end and how its pairs form; the tiny model is far too small to reason on
either task, so there is no quality target.

- proofwriter: ../shared/data/proofwriter/train.json (Logic-LM's format), a label-balanced sample split into
  SFT/loop problems and validation problems; SFT on their gold traces, then `oak --dataset-type proofwriter`.
- folio: SFT on ground atom queries over the train split's stories (oakdpo.tasks.folio.queries: they have a
  query formula, so a solver label and a gold trace), then `oak --dataset-type folio --samples 4` on the shared
  train split itself, whose problems have no conclusion FOL: no gold trace and no checkable CONCLUDE, so its
  pairs are on-policy (a sound sample, or one clearly better in step validity, against the others);
  validation on the 47 handwritten conclusions (tests/data/folio_handwritten.json).

The tiny config (configs/tiny.yaml, lookup style) with the PrOntoQA-only curriculum off and the DPO term on
(dpo.dpo_weight 1, beside the SFT term tiny.yaml weights 20). Prints every command,
then one JSON line of figures per task (also written to OUT/figures.json). Skips a task whose shared file is
absent.

    python benchmarks/task_loop.py [--tasks proofwriter,folio] [--out runs/task_loop] [--iterations 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = ROOT / ".." / "shared" / "data"
CONFIG = str(ROOT / "configs" / "tiny.yaml")


def run(cmd: list[str], log: Path) -> float:
    """Run one oakdpo command (output to `log`); its wall time. A failure prints the log's tail and stops."""
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.time()
    with open(log, "a", encoding="utf-8") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        print(log.read_text(encoding="utf-8")[-3000:], file=sys.stderr)
        raise SystemExit(f"command failed (rc {rc}); log: {log}")
    return round(time.time() - t0, 1)


def oakdpo(*args: str) -> list[str]:
    return [sys.executable, "-m", "oakdpo.cli", *args]


def proofwriter_data(out: Path, n_train: int, n_val: int, seed: int) -> tuple[Path, Path, Path]:
    """Label-balanced train and val problem files from the shared train.json (val disjoint from train)."""
    from oakdpo.data import read_problems, write_problems

    src = SHARED / "proofwriter" / "train.json"
    allp = out / "all.jsonl"
    run(oakdpo("data", "import", "--format", "proofwriter-logiclm", str(src), "-o", str(allp)), out / "log.txt")
    problems = read_problems(allp)
    rng = random.Random(seed)
    by_label: dict[str, list] = {}
    for p in problems:
        by_label.setdefault(p.label, []).append(p)
    train, val = [], []
    for label in sorted(by_label):
        ps = by_label[label][:]
        rng.shuffle(ps)
        k_train, k_val = n_train // len(by_label), n_val // len(by_label)
        train += ps[:k_train]
        val += ps[k_train:k_train + k_val]
    rng.shuffle(train)
    write_problems(out / "train.jsonl", train)
    write_problems(out / "val.jsonl", val)
    return out / "train.jsonl", out / "train.jsonl", out / "val.jsonl"


def folio_data(out: Path, n_sft: int, seed: int) -> tuple[Path, Path, Path]:
    """SFT problems (atom queries over the train stories, with gold traces), the loop's problems (the shared
    train split as imported), validation (the handwritten conclusions)."""
    from oakdpo.data import write_problems
    from oakdpo.tasks.folio.queries import atom_query_problems, handwritten_problems, load_stories

    train_file = SHARED / "folio" / "folio-v0.0-train.jsonl"
    sft = atom_query_problems(load_stories(train_file), per_story=4, seed=seed)[:n_sft]
    write_problems(out / "sft.jsonl", sft)
    run(oakdpo("data", "import", "--format", "folio", str(train_file), "-o", str(out / "train.jsonl")),
        out / "log.txt")
    write_problems(out / "val.jsonl", handwritten_problems(train_file, ROOT / "tests" / "data" /
                                                           "folio_handwritten.json"))
    return out / "sft.jsonl", out / "train.jsonl", out / "val.jsonl"


def figures(task: str, out: Path, times: dict) -> dict:
    from oakdpo.io import read_json, read_jsonl
    from oakdpo.pairs import is_sound

    sft_eval = read_json(out / "eval_sft" / "metrics.json")
    fig = {"task": task, "wall_s": times, "sft": {k: sft_eval.get(k) for k in ("traces", "accuracy",
                                                                              "step_validity", "trace_validity")},
           "iterations": []}
    for it in sorted((out / "oak").glob("iter_*"), key=lambda p: int(p.name.split("_")[1])):
        m = read_json(it / "metrics.json")
        st = m["stages"]
        verdicts = read_jsonl(it / "verdicts.jsonl")
        sound = sum(1 for v in verdicts if not v["trace_valid"] and is_sound(v))
        fig["iterations"].append({
            "traces": st["generate"]["traces"], "truncated": st["generate"].get("truncated"),
            "sampled": {k: st["verify"].get(k) for k in ("accuracy", "step_validity", "trace_validity")},
            "sound_not_valid": sound, "pairs": st["pairs"]["pairs"], "pairs_by_kind": st["pairs"].get("by_kind"),
            "no_pairs": st["pairs"].get("no_pairs"), "dpo_steps": st["dpo"].get("steps"),
            "dpo_loss": st["dpo"].get("train_loss"),
            "val": {k: m["eval"]["val"].get(k) for k in ("accuracy", "step_validity", "trace_validity")}})
    return fig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="proofwriter,folio")
    ap.add_argument("--out", default="runs/task_loop")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=600, help="ProofWriter: SFT/loop problems (label-balanced).")
    ap.add_argument("--val", type=int, default=60, help="ProofWriter: validation problems (label-balanced).")
    ap.add_argument("--folio-sft", type=int, default=1200, help="FOLIO: atom-query problems to SFT on.")
    ap.add_argument("--per-iter", type=int, default=200, help="Problems sampled per iteration.")
    ap.add_argument("--sft-epochs", type=float, default=3.0)
    args = ap.parse_args()

    results = []
    for task in [t for t in args.tasks.split(",") if t]:
        shared = {"proofwriter": SHARED / "proofwriter" / "train.json",
                  "folio": SHARED / "folio" / "folio-v0.0-train.jsonl"}[task]
        if not shared.is_file():
            print(f"skip {task}: {shared} is absent")
            continue
        out = Path(args.out) / task
        out.mkdir(parents=True, exist_ok=True)
        log = out / "log.txt"
        sft_data, loop_data, val_data = (proofwriter_data(out, args.train, args.val, args.seed) if task == "proofwriter"
                                         else folio_data(out, args.folio_sft, args.seed))
        samples = "2" if task == "proofwriter" else "4"
        # Longer proofs and prompts than PrOntoQA's: room for 512 generated tokens after a prompt of up to ~1,000.
        # The DPO term on (tiny.yaml turns it off for the PrOntoQA demo, where it measured no gain): these runs
        # show the preference term training on each task's pairs.
        common = ["--config", CONFIG, "--set", "sft.curriculum_steps=0", "--set", f"sft.epochs={args.sft_epochs}",
                  "--set", f"data.dataset={task}", "--set", "dpo.dpo_weight=1.0"] + [x for kv in (
                      "model.max_position_embeddings=2048", "sft.max_length=2048", "dpo.max_length=2048",
                      "generation.max_new_tokens=512", "eval.max_new_tokens=512") for x in ("--set", kv)]
        times = {}
        if not (out / "init" / "config.json").is_file():
            times["init"] = run(oakdpo("model", "init", *common, "--train-data", str(sft_data), "-o",
                                       str(out / "init")), log)
        times["sft"] = run(oakdpo("sft", *common, "--model", str(out / "init"), "--train-data", str(sft_data),
                                  "-o", str(out / "sft")), log)
        times["eval_sft"] = run(oakdpo("eval", *common, "--model", str(out / "sft"), "--problems", str(val_data),
                                       "-o", str(out / "eval_sft")), log)
        times["oak"] = run(oakdpo("oak", *common, "--sft-model", str(out / "sft"), "--train-data", str(loop_data),
                                  "--val-data", str(val_data), "--dataset-type", task,
                                  "--iterations", str(args.iterations), "--samples", samples,
                                  "--set", f"oak.train_problems_per_iter={args.per_iter}",
                                  "--output-dir", str(out / "oak")), log)
        fig = figures(task, out, times)
        results.append(fig)
        print(json.dumps(fig), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "figures.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
