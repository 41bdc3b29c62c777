"""Prototype 2: original prompt; a backward plan whose every step copies the left neighbour of a same-token match."""
import re
import oakdpo.formats as F
from oakdpo.formats import parse_trace

CONCEPT_PL = re.compile(r"^(\w+pus)es$")

def split(sentence):
    words = sentence.rstrip(".").split()
    obj = words[-1]
    m = CONCEPT_PL.match(obj)
    return " ".join(words[:-1]), (m.group(1) if m else obj)

def mp_chain(problem):
    """(forward gold trace, its MODUS_PONENS steps), the steps None when the proof is not such a chain."""
    try:
        g = F._orig_gold_trace(problem, backward=False)  # the package since session 3
    except TypeError:
        g = F._orig_gold_trace(problem)
    if g is None or problem.fol:
        return g, None
    mp = [s for s in parse_trace(g).steps if not s.is_conclude]
    if not mp or not all(s.option == "MODUS_PONENS" and len(s.args) == 2 for s in mp):
        return g, None
    return g, mp

def gold_trace3(problem):
    g, mp = mp_chain(problem)
    if mp is None:
        return g
    text = {i: " ".join(p.split()) for i, p in enumerate(problem.premises)}
    items = []
    for s in reversed(mp):
        fused, key = split(text[s.args[1]])
        items.append(f" {key} {fused}[{s.args[1]}]")
    fused, key = split(text[mp[0].args[0]])
    items.append(f" {key} {fused}[{mp[0].args[0]}]")
    plan = "Plan:" + "".join(items) + "."
    return g.replace("Thought: ", f"Thought: {plan} ", 1)

FUSED = r" ?(?:(?:Each|Every) \p{Ll}+ is(?: not)?(?: an?)?|\p{Lu}\p{Ll}+ (?:are|is)(?: not)?(?: an?)?)(?=\s|\[)"
PATTERN = (FUSED + r'|\[\d+\]| ?\p{Ll}+pus(?=es\b)| ?<Option type="|" args="\[|\]" />| ?[\p{L}_]+| ?\p{N}+'
           r'| ?(?!\[\d)[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+')

def build_prompt_qfirst(problem):
    lines = [f"Query: {problem.query}", "Premises:"] + [f"[{i}] {p}" for i, p in enumerate(problem.premises)]
    return "\n".join(lines + ["Proof:"]) + "\n"

# The query's adjective as its own token (word + period, query line only), so the plan's first retrieval key
# (the bare adjective) occurs only in the premises.
QTOK = r" ?\p{Ll}+\.(?=\n(?:Proof|Premises):)|"

def install(plan=True, qfirst=False, qtok=False):
    import oakdpo.model as M
    if not hasattr(F, "_orig_build_prompt"):
        F._orig_build_prompt = F.build_prompt; F._orig_gold_trace = F.gold_trace
    F.gold_trace = gold_trace3 if plan else F._orig_gold_trace
    M.PRETOKENIZE_PATTERN = (QTOK + PATTERN) if qtok else PATTERN
    if qfirst:
        import oakdpo.generation as G
        for mod in (F, M, G):
            mod.build_prompt = build_prompt_qfirst
    return F.build_prompt, F.gold_trace
