"""Loaders for PrOntoQA files written by others: the original generator's JSON, and Logic-LM's format."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ...io import UserError, read_json
from ...trace import Problem, short_repr
from .generator import DEDUCTION_RULES

# ----------------------------------------------------------------------------------------------------------
# Loaders

def split_sentences(text: str) -> list[str]:
    """Split a context into sentences at '.', '!' or '?' followed by white space (names hold no periods)."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def _line_of(text: str, needle: str) -> int | None:
    """1-based line of the first occurrence of `needle` in `text` (for error messages), None if absent."""
    i = text.find(needle)
    return None if i < 0 else text.count("\n", 0, i) + 1


def _where(path: Path, text: str, needle: str, fallback: str) -> str:
    line = _line_of(text, needle)
    return f"{path}:{line}" if line else f"{path}: {fallback}"


def _rule_from_name(stem: str) -> str | None:
    """The deduction rule from an original output file name ('3hop_AndIntro_0shot' -> 'AndIntro')."""
    parts = stem.split("_")
    for part in parts:
        if part in DEDUCTION_RULES:
            return part
    if "ProofsOnly" in parts or re.search(r"\d+hop", stem):
        return "ModusPonens"
    return None


_FACT_LIKE = re.compile(r"^(?!Each |Every |Everything |Assume |Since |This |Therefore )[A-Z][a-z]+ is ")
_ADJ_NOUN = re.compile(r"\bis an? (?!not\b)[a-z]+ [a-z]+pus\b")


def _guess_rule(premises: list[str], proof: list[str]) -> str:
    """Best guess of the deduction rule of a proofs-only example from its sentence forms (used only when
    neither the caller nor the file name says; 'Composed' cannot be told apart this way)."""
    if any(s.startswith("Assume") for s in proof):
        return "ProofByContra" if any("contradict" in s for s in proof) else "OrElim"
    if any(_FACT_LIKE.match(s) and " or " in s for s in proof):
        return "OrIntro"
    if any(_FACT_LIKE.match(p) and (" and " in p or _ADJ_NOUN.search(p)) for p in premises):
        return "AndElim"  # the entity fact is a conjunction that the proof takes apart
    if any(_FACT_LIKE.match(s) and (" and " in s or _ADJ_NOUN.search(s)) for s in proof):
        return "AndIntro"
    return "ModusPonens"


def load_prontoqa_json(path: str | Path, rule: str | None = None) -> list[Problem]:
    """Load the original generator's JSON output (`run_experiment.py --model-name json`).

    Layout: {"exampleN": {"test_example": {"question", "query", "chain_of_thought", "answer"?}, ...}}; only the
    test example is used. `--proofs-only` files have "Prove: ..." queries and no answer: label TRUE.
    Hops come from the file name ('5hop_...'), else from the proof length. The rule comes from `rule`, the
    file name ('3hop_AndIntro_0shot.json'), or a guess from the sentences.

    Quirks of the original's Composed files, kept as written (each problem still has a gold trace that verifies,
    gold.gold_trace): the premise conjunction "E is X and E is Y and E is not D" sometimes holds the fact a proof
    by contradiction assumes, or one the premises refute, so the premises contradict each other (the query then
    follows, and so does its negation; the label stays TRUE, as the generator proved it); some queries are
    tautologies ("E is A or E is B or E is not A") or, over such premises, contradictions ("E is A and E is not
    A"); and the assumed fact is sometimes used in the proof before its "Assume ..." sentence.
    """
    path = Path(path)
    data = read_json(path)
    text = path.read_text(encoding="utf-8")
    if not isinstance(data, dict):
        raise UserError(f"{path}:1: expected a JSON object of examples ('example1': ...), got {type(data).__name__}")
    m = re.search(r"(\d+)hop", path.stem)
    file_hops = int(m.group(1)) if m else None
    file_rule = rule or _rule_from_name(path.stem)
    out = []
    for key, ex in data.items():
        where = _where(path, text, json.dumps(key), f"example {key!r}")
        if not isinstance(ex, dict) or "test_example" not in ex:
            raise UserError(f"{where}: example {key!r}: missing key 'test_example'")
        t = ex["test_example"]
        if not isinstance(t, dict):
            raise UserError(f"{where}: example {key!r}: field 'test_example' must be an object")
        for field in ("question", "query", "chain_of_thought"):
            if field not in t:
                raise UserError(f"{where}: example {key!r}: missing key '{field}'")
        if not isinstance(t["question"], str) or not isinstance(t["query"], str):
            raise UserError(f"{where}: example {key!r}: fields 'question' and 'query' must be strings")
        cot = t["chain_of_thought"]
        if not isinstance(cot, list) or not all(isinstance(s, str) for s in cot):
            raise UserError(f"{where}: example {key!r}: field 'chain_of_thought' must be a list of strings")
        query = " ".join(t["query"].split())
        if "answer" in t:
            answer = t["answer"]
            if answer not in ("True", "False"):
                raise UserError(f"{where}: example {key!r}: field 'answer' must be \"True\" or \"False\", "
                                f"got {answer!r}")
            label = answer.upper()
        elif query.startswith("Prove:"):
            label = "TRUE"  # provable by construction
        else:
            raise UserError(f"{where}: example {key!r}: missing key 'answer'")
        premises = split_sentences(t["question"])
        proof = [" ".join(s.split()) for s in cot if s.strip()]
        ex_rule = file_rule or _guess_rule(premises, proof)
        hops = file_hops
        if hops is None and ex_rule == "ModusPonens" and proof:
            hops = (len(proof) - 1) // 2
        out.append(Problem(id=f"{path.stem}/{key}", premises=premises, query=query, label=label, proof=proof,
                           hops=hops, rule=ex_rule, source=f"prontoqa-json:{path.name}"))
    return out


_LOGICLM_Q = re.compile(r"^\s*Is the following statement true or false\?\s*(.+?)\s*$", re.S)


def load_logiclm(path: str | Path) -> list[Problem]:
    """Load Logic-LM's ProntoQA JSON list: [{id, context, question, options, answer: "A"|"B", explanation}].

    A/B are read through `options` ("A) True", "B) False") when present, else A = TRUE, B = FALSE. The query
    becomes "True or false: <sentence>."; the explanation becomes the gold proof.
    """
    path = Path(path)
    data = read_json(path)
    text = path.read_text(encoding="utf-8")
    if not isinstance(data, list):
        raise UserError(f"{path}:1: expected a JSON list of examples, got {type(data).__name__}")
    out = []
    for i, rec in enumerate(data):
        rid = rec.get("id") if isinstance(rec, dict) else None
        where = _where(path, text, json.dumps(rid), f"item {i}") if isinstance(rid, str) else f"{path}: item {i}"
        if not isinstance(rec, dict):
            raise UserError(f"{where}: expected an object, got {type(rec).__name__}")
        for field in ("id", "context", "question", "answer"):
            if field not in rec:
                raise UserError(f"{where}: missing key '{field}'")
        if not isinstance(rec["id"], (str, int)) or isinstance(rec["id"], bool):
            raise UserError(f"{where}: field 'id' must be a string, got {short_repr(rec['id'])}")
        for field in ("context", "question"):
            if not isinstance(rec[field], str):
                raise UserError(f"{where}: field '{field}' must be a string, got {short_repr(rec[field])}")
        options = rec.get("options")
        if options is not None and (not isinstance(options, list) or not all(isinstance(o, str) for o in options)):
            raise UserError(f"{where}: field 'options' must be a list of strings such as \"A) True\", "
                            f"got {short_repr(options)}")
        m = _LOGICLM_Q.match(rec["question"])
        if not m:
            raise UserError(f"{where}: field 'question' must read 'Is the following statement true or false? "
                            f"<sentence>', got {rec['question'][:60]!r}")
        statement = m.group(1)
        if not statement.endswith("."):
            statement += "."
        letters = {"A": "TRUE", "B": "FALSE"}
        for opt in options or []:
            om = re.match(r"^\s*([A-Z])\)\s*(True|False|Unknown)\s*$", opt, re.I)
            if om:
                letters[om.group(1).upper()] = om.group(2).upper()
        answer = rec["answer"]
        if not isinstance(answer, str) or answer not in letters:
            raise UserError(f"{where}: field 'answer' must be one of {', '.join(sorted(letters))}, "
                            f"got {short_repr(answer)}")
        expl = rec.get("explanation") or []
        if not isinstance(expl, list) or not all(isinstance(s, str) for s in expl):
            raise UserError(f"{where}: field 'explanation' must be a list of strings, got {short_repr(expl)}")
        proof = [" ".join(s.split()) for s in expl if s.strip()]
        out.append(Problem(id=str(rec["id"]), premises=split_sentences(rec["context"]),
                           query=f"True or false: {statement}", label=letters[answer], proof=proof,
                           hops=(len(proof) - 1) // 2 if proof else None, rule="ModusPonens",
                           source=f"logiclm:{path.name}"))
    return out


