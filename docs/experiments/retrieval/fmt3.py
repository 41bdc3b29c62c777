"""Prototype 3: a backward proof. Query first in the prompt; the first step cites the rule that ends in the
query's adjective, every later step cites the premise whose OBJECT is the current subject (unique in the prompt)
and composes with HYPOTHETICAL_SYLLOGISM, the last step applies the composite rule to the entity's fact (MP).
Each cited premise is written "<key>[tag] <premise>." where <key> is its object, so the tag is the token two to
the left of the key's occurrence in the prompt and the premise follows its (unique) tag."""
import re
import oakdpo.formats as F
from oakdpo.formats import render_trace
from oakdpo.logic import Fact, Rule, parse_sentence, render
import diag3
import fmt2

CONCEPT_PL = re.compile(r"^(\w+pus)es$")


def key(sentence):
    obj = sentence.rstrip(".").split()[-1]
    m = CONCEPT_PL.match(obj)
    return m.group(1) if m else obj


def gold_trace_back(problem):
    g, mp = fmt2.mp_chain(problem)
    if mp is None:
        return g
    P = len(problem.premises)
    text = {i: " ".join(p.split()) for i, p in enumerate(problem.premises)}
    form = {i: parse_sentence(t) for i, t in text.items()}
    rules = [s.args[1] for s in mp]          # forward order
    fact0 = mp[0].args[0]
    if any(a >= P for a in rules) or fact0 >= P:
        return g
    item = lambda i: f"{key(text[i])}[{i}] {text[i]}"
    steps = []
    last = rules[-1]
    comp = form[last]
    first = True
    for r in reversed(rules[:-1]):
        ante = form[r]
        comp = Rule(ante.ante, ante.ante_op, comp.cons, comp.cons_op)
        n = P + len(steps)
        cited = (item(last) + " " if first else "") + item(r)
        prev = last if first else n - 1
        steps.append((f"{cited} So [{n}] {render(comp)}", "HYPOTHETICAL_SYLLOGISM", [r, prev]))
        first = False
    n = P + len(steps)
    fact = form[fact0]
    concl = Fact(fact.entity, comp.cons, comp.cons_op, name=fact.name) if hasattr(fact, "name") else None
    cited = (item(last) + " " if first else "") + item(fact0)
    claim = render(concl)
    prev = last if first else n - 1
    steps.append((f"{cited} So [{n}] {claim}", "MODUS_PONENS", [fact0, prev]))
    word = "true" if problem.label == "TRUE" else "false"
    steps.append((f"[{n}] {claim} So the query is {word}.", "CONCLUDE", [F.ANSWER_CODES[problem.label]]))
    return render_trace(steps, problem.label)


def build_prompt_mtag(problem):
    """Query first; each premise line also carries its tag between the subject part and the object."""
    lines = [f"Query: {problem.query}", "Premises:"]
    for i, p in enumerate(problem.premises):
        words = " ".join(p.split()).split(" ")
        lines.append(f"[{i}] {' '.join(words[:-1])}[{i}] {words[-1]}")
    return "\n".join(lines + ["Proof:"]) + "\n"


def install(mtag=False):
    import oakdpo.model as M
    import oakdpo.generation as G
    if not hasattr(F, "_orig_build_prompt"):
        F._orig_build_prompt = F.build_prompt; F._orig_gold_trace = F.gold_trace
    F.gold_trace = gold_trace_back
    M.PRETOKENIZE_PATTERN = fmt2.QTOK + fmt2.PATTERN
    for mod in (F, M, G):
        mod.build_prompt = build_prompt_mtag if mtag else fmt2.build_prompt_qfirst
    return F.build_prompt, F.gold_trace


TAG = re.compile(r"^\[\d+\]$")


def prep(tok, probs, bp, gt):
    out = []
    for p in probs:
        pr, full, toks, roles = diag3.encode(tok, p, bp, gt)
        nitem = 0; claim = False
        for t in range(len(pr), len(full)):
            s = toks[t]
            if TAG.match(s):
                if toks[t - 1] == " " and toks[t - 2] == " So":
                    roles[t] = "newtag"; claim = True; continue
                if re.match(r"^ ?\w+$", toks[t - 1]) and toks[t - 1] not in (" So", ":"):
                    suf = "1" if nitem == 0 else ("2" if nitem == 1 else "3+")
                    roles[t] = "itag" + suf; roles[t - 1] = "key" + suf
                    if t + 1 < len(full): roles[t + 1] = "ifused" + suf
                    nitem += 1; continue
                roles[t] = "othertag"; continue
            if roles[t] is not None:
                continue
            if claim:
                if s == ".": claim = False; roles[t] = "other"; continue
                roles[t] = "claim"; continue
            roles[t] = "other"
        out.append((full, roles))
    return out
