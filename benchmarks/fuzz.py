"""Fuzzing the verifiers: random, structured, mutated and pathological traces through oakdpo.verify.

Per task (PrOntoQA, FOLIO, ProofWriter: every task with a gold trace and a verifier), on shared-data problems:

    random_text    random characters and random lines of the trace grammar's words
    structured     random steps: premise sentences / formulas as thoughts, random options, indices, answers
    gold           the optionizer's gold traces (must all be valid; not mutants)
  mutants of gold traces (every one must be rejected):
    m_cite         a cited index changed to a formula that differs (FOLIO: one from which, by Z3 alone, the
                   claim no longer follows: another valid proof is no mutant)
    m_option       a reasoning step's option swapped for another rule (the claim may still follow)
    m_polarity     a claim negated (FOLIO: its FOL line)
    m_drop         a reasoning step removed
    m_answer       CONCLUDE and Final Answer changed to another label
    m_finals       a second Final Answer line (same or other answer, before or after the CONCLUDE)
    m_disagree     the Final Answer line disagrees with the CONCLUDE
    pathological   deep / huge formulas and thoughts (2,000 ↔, 5,000 ⊕, 1 MB ∧ chains, 900 KB thoughts,
                   1,000 steps or CONCLUDE lines), deep premises (FOLIO)

All traces go through oakdpo.verify.verify_traces with the per-trace budget (verify.trace_timeout_s, default
10 s) and `timing=True`. The table counts crashes (exceptions out of the verifier: a batch that raises is
re-run trace by trace to count them), traces whose verification took more than 2x the budget (wall time per
trace), and accepted mutants (trace_valid on a mutant). Acceptance: 0, 0, 0. Skips cleanly without
../shared/data.

    python benchmarks/fuzz.py [--traces 30000] [--workers 2] [--budget 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"
MUTANT_KINDS = ("m_cite", "m_option", "m_polarity", "m_drop", "m_answer", "m_finals", "m_disagree")
KINDS = ("random_text", "structured", "gold", *MUTANT_KINDS, "pathological")
LABELS = ("TRUE", "FALSE", "UNKNOWN")
WORDS = ["Thought:", "Action:", "FOL:", "Final Answer:", "<Option", 'type="MODUS_PONENS"', 'args="[0, 1]"', "/>",
         "CONCLUDE", "TRUE", "FALSE", "UNKNOWN", "So", "is", "not", "a", "[3]", "[Q]", "∀x", "(", ")", "→", "¬",
         "∧", "∨", "⊕", "↔", "P(x)", "Max", "the", "cow", "If", "then", ".", "\n", "\n\n", "  "]


# ------------------------------------------------------------------------------------------------ problems

def load_problems(task: str, n: int, rng: random.Random):
    """(problems, gold traces) of a task from the shared data: up to n problems that have a gold trace."""
    from oakdpo.tasks import get_task

    t = get_task(task)
    if task == "prontoqa":
        from oakdpo.tasks.prontoqa.generator import generate_problems
        from oakdpo.tasks.prontoqa.loaders import load_prontoqa_json

        pool = [p for f in sorted((SHARED / "prontoqa").glob("*.json")) for p in load_prontoqa_json(f)]
        pool = rng.sample(pool, min(len(pool), n // 2)) + generate_problems(n - min(len(pool), n // 2),
                                                                             hops=(1, 5), seed=rng.randrange(10**6))
    elif task == "folio":
        from oakdpo.tasks.folio.queries import atom_query_problems, handwritten_problems, load_stories

        train = SHARED / "folio" / "folio-v0.0-train.jsonl"
        pool = handwritten_problems(train, ROOT / "tests" / "data" / "folio_handwritten.json")
        pool += atom_query_problems(load_stories(train), per_story=3, seed=rng.randrange(10**6),
                                    limit=max(0, n - len(pool)))
    else:
        pool = t.load(SHARED / "proofwriter" / "train.json")
        pool = rng.sample(pool, min(len(pool), n))
    problems, golds = [], []
    for p in pool[:n]:
        style = rng.choice(("natural", "lookup"))
        g = t.gold_trace(p, style)
        if g is not None:
            problems.append(p)
            golds.append(g)
    return problems, golds


def formula_texts(task: str, problem) -> list[str]:
    return list((problem.fol or {}).get("premises") or []) if task == "folio" else list(problem.premises)


def same_formula(task: str, a: str | None, b: str | None) -> bool:
    """Do two formula texts state the same thing (so that citing one for the other is no real change)?"""
    if a is None or b is None:
        return a == b
    if task == "folio":
        from oakdpo.tasks.folio.fol import parse_fol

        fa, fb = parse_fol(a, allow_empty=True), parse_fol(b, allow_empty=True)
        return fa.ok and fb.ok and fa.formula == fb.formula
    if task == "prontoqa":
        from oakdpo.tasks.prontoqa.logic import parse_sentence

        pa, pb = parse_sentence(a), parse_sentence(b)
        if pa is not None and pb is not None:
            return pa == pb
    norm = lambda s: " ".join(re.sub(r"\[\s*\d+\s*\]", " ", s).lower().rstrip(" .").split())  # noqa: E731
    return norm(a) == norm(b)


def folio_follows(cited: list[str], claim: str) -> bool:
    """Do the cited formulas entail the claim (Z3 alone, not the verifier's rules)?"""
    from oakdpo.tasks.folio.fol import Z3Builder, parse_fol
    from oakdpo.tasks.folio.solver import _check

    parsed = [parse_fol(f, allow_empty=True) for f in cited]
    goal = parse_fol(claim)
    if not goal.ok or not all(r.ok for r in parsed):
        return False
    b = Z3Builder()
    return _check(b, [b.build(r.formula) for r in parsed], b.build(goal.formula), 2000) == "unsat"


# ------------------------------------------------------------------------------------------------ mutants

def _blocks(text: str):
    """The trace cut into steps: (lines of step i, including its Action line), and the tail after the last one."""
    blocks, cur = [], []
    for line in text.split("\n"):
        cur.append(line)
        if line.startswith("Action:"):
            blocks.append(cur)
            cur = []
    return blocks, cur


def _join(blocks, tail) -> str:
    return "\n".join([line for b in blocks for line in b] + tail)


def _action(block) -> str:
    return block[-1]


def _reasoning(blocks) -> list[int]:
    return [i for i, b in enumerate(blocks) if 'type="CONCLUDE"' not in _action(b)]


_ARGS_RE = re.compile(r'args="\[([^\]]*)\]"')
_TYPE_RE = re.compile(r'type="([^"]*)"')


def mutate(kind: str, task: str, problem, gold: str, rng: random.Random) -> str | None:
    """One mutant of `kind`, or None when the gold trace has nothing to mutate that way."""
    from oakdpo.trace import OPTION_TYPES, parse_trace

    blocks, tail = _blocks(gold)
    reasoning = _reasoning(blocks)
    concl = [i for i, b in enumerate(blocks) if 'type="CONCLUDE"' in _action(b)]
    if kind == "m_cite" and reasoning:
        parsed = parse_trace(gold)
        texts = formula_texts(task, problem)
        claims = [s.fol if task == "folio" else s.claim for s in parsed.steps if not s.is_conclude]
        formulas = texts + claims
        for _ in range(10):
            r = rng.choice(reasoning)
            k = reasoning.index(r)
            args = [int(a) for a in _ARGS_RE.search(_action(blocks[r])).group(1).split(",") if a.strip()]
            if not args:
                continue
            j = rng.randrange(len(args))
            limit = len(texts) + k  # a formula that exists before this step
            choices = [x for x in range(limit) if not same_formula(task, formulas[x], formulas[args[j]])]
            if not choices:
                continue
            args[j] = rng.choice(choices)
            if task == "folio" and folio_follows([formulas[a] for a in args if 0 <= a < limit], claims[k]):
                continue  # the claim still follows from the new citations: another proof, not a mutant
            blocks[r][-1] = _ARGS_RE.sub(f'args="[{", ".join(map(str, args))}]"', _action(blocks[r]), count=1)
            return _join(blocks, tail)
        return None
    if kind == "m_option" and reasoning:
        r = rng.choice(reasoning)
        old = _TYPE_RE.search(_action(blocks[r])).group(1)
        new = rng.choice([o for o in OPTION_TYPES if o not in (old, "CONCLUDE")])
        blocks[r][-1] = _action(blocks[r]).replace(f'type="{old}"', f'type="{new}"', 1)
        return _join(blocks, tail)
    if kind == "m_polarity" and reasoning:
        r = rng.choice(reasoning)
        b = blocks[r]
        if task == "folio":
            i = next((i for i, line in enumerate(b) if line.startswith("FOL:")), None)
            if i is None:
                return None
            f = b[i][len("FOL:"):].strip()
            b[i] = "FOL: " + (f"¬({f})" if not f.startswith("¬") else f[1:].strip())
            return _join(blocks, tail)
        i = max((i for i, line in enumerate(b) if line.startswith("Thought:")), default=None)
        if i is None:
            return None
        line = b[i]
        head, sep, last = line.rpartition(". ") if ". " in line.rstrip(". ") else ("", "", line)
        if " is not " in last:
            last = last.replace(" is not ", " is ", 1)
        elif " are not " in last:
            last = last.replace(" are not ", " are ", 1)
        elif " is " in last:
            last = last.replace(" is ", " is not ", 1)
        elif " are " in last:
            last = last.replace(" are ", " are not ", 1)
        else:
            return None
        b[i] = head + sep + last
        return _join(blocks, tail)
    if kind == "m_drop" and reasoning:
        del blocks[rng.choice(reasoning)]
        return _join(blocks, tail)
    if kind == "m_answer" and concl:
        label = problem.label
        new = rng.choice([x for x in LABELS if x != label])
        b = blocks[concl[-1]]
        b[-1] = _ARGS_RE.sub(f'args="[{LABELS.index(new)}]"', b[-1], count=1)
        tail = [f"Final Answer: {new}" if line.startswith("Final Answer:") else line for line in tail]
        return _join(blocks, tail)
    if kind == "m_finals":
        extra = f"Final Answer: {rng.choice(LABELS)}"
        where = rng.randrange(3)
        if where == 0 or not concl:
            return gold + "\n" + extra
        if where == 1:
            blocks[concl[-1]].insert(0, extra)  # before the CONCLUDE step
            return _join(blocks, tail)
        return gold.replace("Final Answer:", f"{extra}\nFinal Answer:", 1)
    if kind == "m_disagree":
        new = rng.choice([x for x in LABELS if x != problem.label])
        return re.sub(r"^Final Answer:.*$", f"Final Answer: {new}", gold, count=1, flags=re.M)
    return None


# ------------------------------------------------------------------------------------------ random traces

def random_text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        n = rng.randrange(400)
        return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0x2200, 0x2300), rng.randrange(0x110000))))
                       if rng.random() < 0.9 else "\n" for _ in range(n)).replace("\ud800", "?")
    return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(80)))


def structured(task: str, problem, golds: list[str], rng: random.Random) -> str:
    from oakdpo.trace import OPTION_TYPES

    texts = formula_texts(task, problem) or ["x"]
    gold_lines = [line for g in rng.sample(golds, min(3, len(golds))) for line in g.split("\n")]
    steps = []
    for _ in range(rng.randrange(8)):
        thought = rng.choice([rng.choice(problem.premises or ["x"]), " ".join(rng.choices(WORDS, k=6)),
                              rng.choice(gold_lines)[len("Thought: "):] if gold_lines else "x"])
        lines = [f"Thought: {thought}"]
        if task == "folio" and rng.random() < 0.8:
            f = rng.choice(texts)
            f = rng.choice([f, f"¬({f})", f"{f} ∧ {rng.choice(texts)}", f"{f} ∨ {rng.choice(texts)}",
                            f.replace("∀x", "").strip() or f])
            lines.append(f"FOL: {f}")
        option = rng.choice(OPTION_TYPES + ("RULE", "modus_ponens"))
        args = [rng.randrange(-2, len(texts) + 8) for _ in range(rng.randrange(4))]
        lines.append(f'Action: <Option type="{option}" args="[{", ".join(map(str, args))}]" />')
        steps.append("\n".join(lines))
    answer = rng.choice(LABELS)
    steps.append(f'Thought: So the query is {answer.lower()}.\nAction: <Option type="CONCLUDE" '
                 f'args="[{LABELS.index(answer)}]" />')
    return "\n".join(steps) + f"\nFinal Answer: {rng.choice(LABELS + ('maybe',))}"


def pathological(task: str, problem, gold: str, i: int) -> tuple[object, str]:
    """(problem, trace) number i of the pathological set (the problem is a variant for deep premises)."""
    import dataclasses

    chain = lambda op, n: f" {op} ".join(f"P{j}(a)" for j in range(n))  # noqa: E731
    conclude = 'Thought: So the query is unknown.\nAction: <Option type="CONCLUDE" args="[2]" />'
    fols = [chain("∧", 60000), chain("∨", 60000), chain("↔", 2000), chain("⊕", 5000), chain("→", 5000),
            "¬" * 5000 + "P(a)", "(" * 5000 + "P(a)" + ")" * 5000, "".join(f"∀x{j} " for j in range(3000)) + "P(a)",
            "P(" + "f(" * 3000 + "a" + ")" * 3001, " ∧ ".join(f"∀x{j} (Q(x{j}))" for j in range(20000))]
    k = i % (len(fols) + 6)
    if k < len(fols):
        option = ("AND_INTRO", "OR_INTRO", "BICONDITIONAL_ELIM", "DISJUNCTIVE_SYLLOGISM", "MODUS_PONENS",
                  "DOUBLE_NEGATION", "AND_ELIM", "UNIV_INSTANTIATION", "MODUS_PONENS", "AND_INTRO")[k]
        step = f'Thought: So it holds.\nFOL: {fols[k]}\nAction: <Option type="{option}" args="[0, 1]" />'
        if task == "folio" and i % 2:  # the same formula as a premise of the problem
            fol = dict(problem.fol or {})
            fol["premises"] = list(fol.get("premises") or []) + [fols[k]]
            problem = dataclasses.replace(problem, fol=fol, premises=list(problem.premises) + ["Deep."])
            return problem, gold
        return problem, f"{step}\n{conclude}\nFinal Answer: UNKNOWN"
    k -= len(fols)
    if k == 0:
        return problem, "Thought: " + "So " * 300000 + "Max is a cat.\n" + gold
    if k == 1:
        claim = " and ".join(["the cow is blue"] * 60000)
        return problem, f'Thought: So {claim}.\nAction: <Option type="AND_INTRO" args="[0, 1]" />\n{gold}'
    if k == 2:
        return problem, "\n".join([conclude] * 1000) + "\nFinal Answer: UNKNOWN"
    if k == 3:
        blocks, tail = _blocks(gold)
        body = [b for j in _reasoning(blocks) for b in [blocks[j]]] or [blocks[0]]
        return problem, "\n".join("\n".join(body[j % len(body)]) for j in range(1000)) + "\n" + gold
    if k == 4:
        return problem, gold + "\nFinal Answer: TRUE" * 1000
    return problem, "Action: " * 50000 + "\n" + "Thought:\n" * 50000 + gold


# ------------------------------------------------------------------------------------------------ running

def build(task: str, n_traces: int, rng: random.Random):
    """(problems, traces, kinds): n_traces traces of the task spread over the kinds."""
    n_problems = {"folio": 400, "prontoqa": 1200, "proofwriter": 800}.get(task, 400)
    problems, golds = load_problems(task, n_problems, rng)
    if not problems:
        return [], [], []
    plist, traces, kinds = list(problems), [], []
    per_kind = max(1, (n_traces - 40) // (len(KINDS) - 1))

    def add(p, text, kind):
        traces.append({"problem_id": p.id, "sample": len(traces), "text": text})
        kinds.append(kind)

    for i in range(per_kind):
        j = rng.randrange(len(problems))
        add(problems[j], random_text(rng), "random_text")
        add(problems[j], structured(task, problems[j], golds, rng), "structured")
    n_gold = min(per_kind, len(problems))
    for i in range(n_gold):
        add(problems[i], golds[i], "gold")
    extra = (per_kind - n_gold) // len(MUTANT_KINDS) + 1  # fewer problems than golds wanted: more mutants
    for kind in MUTANT_KINDS:
        made, tries, want = 0, 0, per_kind + extra
        while made < want and tries < 20 * want:
            tries += 1
            j = rng.randrange(len(problems))
            m = mutate(kind, task, problems[j], golds[j], rng)
            if m is not None and m != golds[j]:
                add(problems[j], m, kind)
                made += 1
    for i in range(40):
        j = rng.randrange(len(problems))
        p, text = pathological(task, problems[j], golds[j], i)
        if p is not problems[j]:
            import dataclasses

            p = dataclasses.replace(p, id=f"{p.id}#deep{i}")
            plist.append(p)
        add(p, text, "pathological")
    return plist, traces, kinds


def run_batches(problems, traces, workers: int, budget: float, batch: int = 2000):
    """Verdicts (None where the verifier raised) and the number of crashes."""
    from oakdpo.verify import verify_one, verify_traces

    by_id = {p.id: p for p in problems}
    verdicts, crashes = [], []
    for i in range(0, len(traces), batch):
        part = traces[i:i + batch]
        try:
            verdicts += verify_traces(problems, part, progress=False, workers=workers, timeout_s=budget, timing=True)
        except Exception:  # count them one by one
            for rec in part:
                t0 = time.perf_counter()
                try:
                    v = verify_one(by_id[rec["problem_id"]], rec["text"], budget)
                    verdicts.append({**v, "verify_s": time.perf_counter() - t0})
                except Exception as e:  # noqa: BLE001 - a crash is what we count
                    crashes.append((rec["problem_id"], repr(e)[:200]))
                    verdicts.append(None)
    return verdicts, crashes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=30000, help="Traces in all, shared out over the tasks.")
    ap.add_argument("--workers", type=int, default=2, help="verify.workers for verify_traces.")
    ap.add_argument("--budget", type=float, default=None, help="Per-trace budget, s (default: the config's "
                    "verify.trace_timeout_s).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", default="prontoqa,folio,proofwriter")
    args = ap.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent")
        return 0
    from oakdpo.config import VerifyConfig
    from oakdpo.tasks import get_task
    from oakdpo.tasks.base import Task

    budget = args.budget if args.budget is not None else VerifyConfig().trace_timeout_s
    tasks = [t for t in args.tasks.split(",") if type(get_task(t)).gold_trace is not Task.gold_trace]
    share = {"prontoqa": 0.4, "folio": 0.3, "proofwriter": 0.3}
    total = sum(share.get(t, 0.3) for t in tasks)
    rows, grand = [], collections.Counter()
    crash_examples, slow_examples, accepted_examples = [], [], []
    for task in tasks:
        rng = random.Random(args.seed)
        t0 = time.perf_counter()
        problems, traces, kinds = build(task, int(args.traces * share.get(task, 0.3) / total), rng)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        verdicts, crashes = run_batches(problems, traces, args.workers, budget)
        t_verify = time.perf_counter() - t0
        crash_examples += crashes[:3]
        stats = collections.defaultdict(collections.Counter)
        for kind, rec, v in zip(kinds, traces, verdicts):
            s = stats[kind]
            s["traces"] += 1
            if v is None:
                s["crashes"] += 1
                continue
            secs = v.get("verify_s", 0.0)
            s["max_ms"] = max(s["max_ms"], int(secs * 1000))
            if secs > 2 * budget:
                s["over_2x"] += 1
                slow_examples.append((task, kind, rec["problem_id"], round(secs, 2)))
            s["timeouts"] += bool(v.get("timeout"))
            s["valid"] += bool(v["trace_valid"])
            if kind.startswith("m_") and v["trace_valid"]:
                s["accepted"] += 1
                accepted_examples.append((task, kind, rec["problem_id"], rec["text"]))
            if kind == "gold" and not v["trace_valid"]:
                s["gold_rejected"] += 1
                accepted_examples.append((task, kind, rec["problem_id"], v["trace_reason"]))
        for kind in KINDS:
            if kind in stats:
                rows.append((task, kind, stats[kind]))
                grand.update({k: v for k, v in stats[kind].items() if k != "max_ms"})
        print(f"# {task}: {len(traces)} traces on {len(problems)} problems (built in {t_build:.0f} s, verified in "
              f"{t_verify:.0f} s with {args.workers} workers)", flush=True)
    print(f"\nper-trace budget {budget:g} s; over_2x = verification wall time > {2 * budget:g} s")
    head = f"{'task':12s} {'kind':13s} {'traces':>7s} {'crashes':>8s} {'over_2x':>8s} {'max_ms':>7s} " \
           f"{'timeouts':>8s} {'valid':>6s} {'accepted':>8s}"
    print(head)
    print("-" * len(head))
    for task, kind, s in rows:
        acc = str(s["accepted"]) if kind.startswith("m_") else "-"
        print(f"{task:12s} {kind:13s} {s['traces']:7d} {s['crashes']:8d} {s['over_2x']:8d} {s['max_ms']:7d} "
              f"{s['timeouts']:8d} {s['valid']:6d} {acc:>8s}")
    print("-" * len(head))
    print(f"{'all':12s} {'':13s} {grand['traces']:7d} {grand['crashes']:8d} {grand['over_2x']:8d} {'':7s} "
          f"{grand['timeouts']:8d} {grand['valid']:6d} {grand['accepted']:8d}")
    for c in crash_examples:
        print("crash:", c)
    for c in slow_examples[:5]:
        print("slow:", c)
    for task, kind, pid, text in accepted_examples[:5]:
        print(f"{'rejected' if kind == 'gold' else 'accepted'} {task} {kind} {pid}:\n{text}\n")
    ok = not (grand["crashes"] or grand["over_2x"] or grand["accepted"] or grand["gold_rejected"])
    print(f"gold traces rejected: {grand['gold_rejected']}")
    verdict = "PASS" if ok else "FAIL"
    print(f"acceptance (0 crashes, 0 over 2x budget, 0 accepted mutants, 0 gold rejected): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
