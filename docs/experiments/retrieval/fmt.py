"""Prototype format: tags after sentences, backward plan in the first thought, fused subject tokens."""
import re
import oakdpo.formats as F
from oakdpo.formats import parse_trace, render_trace

def body(s):
    s = " ".join(s.split())
    return s.rstrip(".!?")

def build_prompt2(problem):
    if problem.fol:
        return F._orig_build_prompt(problem)
    lines = ["Premises:"] + [f"- {body(p)} [{i}]." for i, p in enumerate(problem.premises)]
    lines += [f"Query: {problem.query}", "Proof:"]
    return "\n".join(lines) + "\n"

def gold_trace2(problem, plan=True):
    g = F._orig_gold_trace(problem)
    if g is None or problem.fol:
        return g
    pt = parse_trace(g)
    P = len(problem.premises)
    texts = {i: body(p) for i, p in enumerate(problem.premises)}
    steps = []
    mp = [s for s in pt.steps if not s.is_conclude]
    for k, s in enumerate(pt.steps):
        if s.is_conclude:
            continue
        n = P + k
        texts[n] = body(s.claim)
    for k, s in enumerate(pt.steps):
        if s.is_conclude:
            # the supporting formula: last derived or a premise
            m = re.search(r"\[(\d+)\]", s.thought)
            j = int(m.group(1))
            word = "true" if problem.label == "TRUE" else "false"
            steps.append((f"{texts[j]} [{j}]. So the query is {word}.", "CONCLUDE", s.args))
            continue
        n = P + k
        cited = " ".join(f"{texts[a]} [{a}]." for a in s.args)
        th = f"{cited} So {texts[n]} [{n}]."
        if k == 0 and plan and len(mp) >= 1 and all(len(x.args) == 2 for x in mp):
            items = [f"{texts[x.args[1]]} [{x.args[1]}]" for x in reversed(mp)] + [f"{texts[mp[0].args[0]]} [{mp[0].args[0]}]"]
            th = "Plan: " + " ".join(items) + ". " + th
        steps.append((th, s.option, s.args))
    return render_trace(steps, pt.final_answer)

FUSED = r" ?(?:(?:Each|Every) \p{Ll}+ is(?: not)?(?: an?)?|\p{Lu}\p{Ll}+ (?:are|is)(?: not)?(?: an?)?)(?=\s)"
PATTERN = (FUSED + r'| ?\[\d+\]| ?<Option type="|" args="\[|\]" />| ?[\p{L}_]+| ?\p{N}+| ?(?!\[\d)[^\s\p{L}\p{N}]+'
           r"|\s+(?!\S)|\s+")

def install(plan=True):
    import oakdpo.model as M, oakdpo.generation as G, oakdpo.training as T, oakdpo.pairs as PR, oakdpo.knowledge as K
    if not hasattr(F, "_orig_build_prompt"):
        F._orig_build_prompt = F.build_prompt; F._orig_gold_trace = F.gold_trace
    gt = (lambda p: gold_trace2(p, plan))
    for mod in (F, M, G, T, PR, K):
        if hasattr(mod, "build_prompt"): mod.build_prompt = build_prompt2
    F.gold_trace = gt
    M.PRETOKENIZE_PATTERN = PATTERN
    return build_prompt2, gt
