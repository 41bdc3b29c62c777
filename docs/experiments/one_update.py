"""Session-7 test bed: one training run on a fixed pair file, then greedy traces on the 5-hop file (docs/tiny-model.md,
"How much one update moves this model"); a prototype, not part of the package.

Loads an SFT model, trains it once with oakdpo.dpo.run_dpo on PAIRS (a pairs.jsonl from `oakdpo oak`, or gold traces
written as pairs with the same fields), with TrainingArguments overrides given as JSON, evaluates greedy decoding on the
held-out file and counts the problems that turned valid (up) and invalid (down) against the SFT model's verdicts.

    python docs/experiments/one_update.py --model RUN/sft --base-verdicts RUN/eval_sft/heldout/verdicts.jsonl \
        --pairs RUN2/iter_0/pairs.jsonl --args '{"learning_rate": 2e-4, "lr_scheduler_type": "cosine"}' \
        --set dpo.loss_type=sft --set dpo.sft_weight=0 -o /tmp/one_update
    python docs/experiments/one_update.py --gold-pairs 2000 --gold-seed 777 ...   # continued SFT on fresh gold traces

--gold-pairs N writes N fresh generated problems (hops 1-5) as pairs whose chosen is the gold trace; train them with
`--set dpo.loss_type=sft --set dpo.sft_weight=0` (only the chosen side is used).
"""
import argparse
import json
import shutil
from pathlib import Path

from oakdpo.config import load_config
from oakdpo.data import generate_problems
from oakdpo.dpo import base_dpo_args, iteration_args, run_dpo
from oakdpo.evaluation import evaluate
from oakdpo.formats import build_prompt, gold_trace
from oakdpo.io import read_jsonl
from oakdpo.loop import load_problem_file
from oakdpo.model import load_policy

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--base-verdicts", required=True, help="the SFT model's verdicts.jsonl on the same held-out file")
ap.add_argument("--pairs", help="a pairs.jsonl")
ap.add_argument("--gold-pairs", type=int, default=0)
ap.add_argument("--gold-seed", type=int, default=777)
ap.add_argument("--heldout", default="../shared/data/prontoqa/5hop_0shot_random.json")
ap.add_argument("--config", default="configs/tiny.yaml")
ap.add_argument("--args", default="{}", help="JSON: DPOConfig (TrainingArguments) fields to override")
ap.add_argument("--set", action="append", default=[])
ap.add_argument("-o", "--out", required=True)
a = ap.parse_args()

cfg = load_config(a.config, a.set)
out = Path(a.out)
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)
if a.gold_pairs:
    pairs = []
    for p in generate_problems(a.gold_pairs, (1, 5), seed=a.gold_seed, remove_shortcut=True):
        g = gold_trace(p)
        pairs.append({"problem_id": p.id, "prompt": build_prompt(p), "chosen": g, "rejected": g[:40],
                      "rejected_partial": True})
else:
    pairs = read_jsonl(a.pairs)
model, tok = load_policy(a.model, cfg.model, for_training=True)
args = iteration_args(base_dpo_args(cfg, out), out, 0)
for k, v in json.loads(a.args).items():
    setattr(args, k, v)
metrics, model = run_dpo(model, tok, pairs, args, cfg, out / "dataset")
print("train:", {k: round(v, 3) for k, v in metrics.items() if isinstance(v, float)})
tok.padding_side = "left"
model.eval()
m = evaluate(model, tok, load_problem_file(a.heldout), cfg.eval, out / "eval", progress=False)
base = {v["problem_id"]: v["trace_valid"] for v in read_jsonl(a.base_verdicts)}
new = {v["problem_id"]: v["trace_valid"] for v in read_jsonl(out / "eval" / "verdicts.jsonl")}
up = sum(new[k] and not base[k] for k in new)
down = sum(base[k] and not new[k] for k in new)
print(f"trace validity {m['trace_validity']:.3f} (before {sum(base.values()) / len(base):.3f}): up {up}, down {down}")
