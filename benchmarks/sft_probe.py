"""Where a trained policy fails inside a proof: teacher-forced accuracy per token role of the gold traces.

Feeds each problem's prompt + gold trace to the model once and counts, for every completion token, whether the
model's argmax prediction at the previous position is that token. Tokens are grouped by their role in a step of
the backward proof (formats.gold_trace):

    Thought: key[tag] premise. So [new_tag] claim.
    Action: <Option type="HYPOTHETICAL_SYLLOGISM" args="[args]" />

`key` is the word the step looks up (the query's property, then the current rule's subject), `tag` the lookup
itself (the premise whose last word is the key), `premise` the premise's text after its tag, `new_tag` the
number of the formula the step derives (`new_tag_first`: the first step's, the prompt's "Next:" number; then
each the successor of the one before). The first
cited premise of a trace is reported apart (`*_first`): two rules end in the query's property (the proof's and a
distractor) and the trace tries the one listed first; when that is the distractor, its subject is looked up and
found missing (`missing_key`, then `missing`: the "?"), and the next cite is the proof's rule (`*_retry`, its
tag in the second form, "{10}"). Every later key
occurs once as a last word in the premises. `query` is the last step's restatement of the query, copied by its tag
("So [Q] Max is not wooden: true."), and `answer` its true/false: the derived fact compared with the query.

    python benchmarks/sft_probe.py --model runs/demo/sft [--problems N] [--hops 3-5] [--premises 8-30]
    python benchmarks/sft_probe.py --model runs/demo/sft --prontoqa ../shared/data/prontoqa/5hop_0shot_random.json
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from oakdpo.tasks.prontoqa.generator import generate_problems  # noqa: E402
from oakdpo.tasks.prontoqa.loaders import load_prontoqa_json  # noqa: E402
from oakdpo.trace import QUERY_TAG  # noqa: E402
from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt  # noqa: E402
from oakdpo.tasks.prontoqa.gold import gold_trace  # noqa: E402
from oakdpo.io import UserError  # noqa: E402
from oakdpo.model import load_policy  # noqa: E402

CITE = re.compile(r"(?<=[: ])(?P<key>[a-z]+)(?P<tag>\[\d+\]|\{\d+\}) (?P<premise>[^\[\n]*?\.)")
CLAIM = re.compile(r"So (?P<new_tag>\[\d+\]) (?P<claim>[^\n]*?\.)\n")
ARGS = re.compile(r'type="(?!CONCLUDE)[A-Z_]+" args="\[(?P<arg_cite>\d+), (?P<arg_rule>\d+)\]"')
MISSING = re.compile(r"(?<=[\]}] )(?P<missing_key>[a-z]+)(?P<missing>\?)")
RULE_TAG = re.compile(r"(?:Thought: |\. )(?P<rule_tag>\[\d+\]|\{\d+\}) (?=[a-z]+[\[{?])")
ANSWER = re.compile(r"So " + re.escape(QUERY_TAG) + r" (?P<query>[^:\n]*): (?P<answer>true|false)\.")


def _cite_suffix(pattern, k: int, completion: str, start: int) -> str:
    """'_first' for a trace's first cite and first derived formula ("So [25]": the copy of the prompt's "Next:"
    tag), '_retry' for the cite right after a dead end ("yumpus? "), else ''."""
    if pattern is CLAIM or pattern is ARGS or pattern is RULE_TAG:
        return "_first" if k == 0 else ""
    if pattern is not CITE:
        return ""
    return "_first" if k == 0 else "_retry" if completion[:start].endswith("? ") else ""


def roles_of(tok, prompt: str, completion: str) -> tuple[list[int], list[str | None]]:
    """Token ids of prompt + completion and, per token, its role (None for prompt tokens)."""
    char_role: dict[int, str] = {}
    for pattern in (CITE, CLAIM, ARGS, MISSING, ANSWER, RULE_TAG):
        for k, m in enumerate(pattern.finditer(completion)):
            for name in pattern.groupindex:
                a, b = m.span(name)
                for c in range(a, b):
                    char_role[len(prompt) + c] = name + _cite_suffix(pattern, k, completion, m.start())
    enc = tok(prompt + completion, return_offsets_mapping=True)
    roles: list[str | None] = []
    for a, b in enc["offset_mapping"]:
        if b <= len(prompt):
            roles.append(None)
        else:
            roles.append(char_role.get(b - 1, "other"))
    return enc["input_ids"], roles


def probe(model, tok, problems) -> dict[str, tuple[int, int, float]]:
    """Per role: (argmax hits, tokens, summed probability of the gold token)."""
    hit: Counter = Counter()
    total: Counter = Counter()
    prob: Counter = Counter()
    with torch.no_grad():
        for p in problems:
            completion = gold_trace(p)
            if not completion:
                continue
            ids, roles = roles_of(tok, build_prompt(p), completion)
            logits = model(torch.tensor([ids])).logits[0]
            pred = logits.argmax(-1).tolist()
            gold_p = torch.softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()
            for t in range(1, len(ids)):
                if roles[t] is not None:
                    total[roles[t]] += 1
                    hit[roles[t]] += pred[t - 1] == ids[t]
                    prob[roles[t]] += gold_p[t - 1]
    return {r: (hit[r], total[r], prob[r]) for r in sorted(total)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="Trained policy folder (e.g. runs/demo/sft).")
    ap.add_argument("--problems", type=int, default=60, help="Generated problems to probe (seed 77).")
    ap.add_argument("--hops", default="3-5")
    ap.add_argument("--premises", default="8-30", help="Premise counts of the generated problems (N or N1-N2).")
    ap.add_argument("--context-order", default="mix", help="random, proof, preorder or mix.")
    ap.add_argument("--prontoqa", default=None, help="Probe an original PrOntoQA json file instead.")
    args = ap.parse_args()
    torch.set_num_threads(2)
    try:
        model, tok = load_policy(args.model)
        if args.prontoqa:
            problems = load_prontoqa_json(args.prontoqa)[: args.problems]
        else:
            problems = generate_problems(args.problems, args.hops, seed=77, premises=args.premises,
                                         context_order=args.context_order)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    premises = sum(len(p.premises) for p in problems) / len(problems)
    print(f"{len(problems)} problems, {premises:.1f} premises on average (chance: tag_first 0.5, "
          f"tag ~{1 / premises:.3f} without the lookup)")
    print(f"{'role':18s} {'accuracy':>9s} {'p(gold)':>8s} {'tokens':>7s}")
    for role, (h, n, pr) in probe(model, tok, problems).items():
        print(f"{role:18s} {h / n:9.3f} {pr / n:8.3f} {n:7d}")


if __name__ == "__main__":
    main()
