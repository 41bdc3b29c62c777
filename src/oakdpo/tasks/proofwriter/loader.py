"""Logic-LM's ProofWriter files -> Problem records.

A file is a JSON list of rows {id, context, question, options, answer}:
    context   one paragraph of facts and rules ("The cow is blue. If something is cold then it visits the tiger.")
    question  "Based on the above information, is the following statement true, false, or unknown? <statement>"
    options   ["A) True", "B) False", "C) Unknown"]
    answer    the letter of the right option
A row becomes Problem(task="proofwriter", premises = the context's sentences, query = the statement, label =
the answer's option read through `options`, hops = the depth of the solver's proof (None for UNKNOWN),
meta = {"theory": "RelNeg-OWA-D5"} when the id names it). Every field is type-checked where it is read: a bad
row is one UserError naming the file, the row's line and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ...io import UserError, read_json
from ...trace import LABELS, Problem

_OPTION = re.compile(r"^\s*\(?([A-Za-z])\)\s*(True|False|Unknown|Uncertain)\s*\.?\s*$", re.IGNORECASE)
_THEORY = re.compile(r"^ProofWriter_(.+?)-\d+_Q\d+$")


def split_sentences(text: str) -> list[str]:
    """A context's sentences, split at '.', '!' or '?' followed by white space."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def statement_of(question: str) -> str:
    """The statement a question asks about: the text after its last '?' (the whole text when it has none),
    ending in a period."""
    s = question.rsplit("?", 1)[1] if "?" in question else question
    s = " ".join(s.split())
    return s if not s or s.endswith((".", "!")) else s + "."


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Where:
    """'FILE:LINE: item I' for error messages, the line found only when an error is raised (a find per row
    would be quadratic in the file's size)."""

    def __init__(self, path: Path, text: str, i: int, row):
        self.path, self.text, self.i = path, text, i
        self.rid = row.get("id") if isinstance(row, dict) else None

    def __str__(self) -> str:
        if isinstance(self.rid, str) and self.rid:
            pos = self.text.find(json.dumps(self.rid))
            if pos >= 0:
                return f"{self.path}:{self.text.count(chr(10), 0, pos) + 1}: item {self.i}"
        return f"{self.path}: item {self.i}"


def load_logiclm(path: str | Path) -> list[Problem]:
    from .solver import goal_of, solve  # the solver gives each problem's proof depth (hops)

    path = Path(path)
    data = read_json(path)
    text = path.read_text(encoding="utf-8")
    if not isinstance(data, list):
        raise UserError(f"{path}:1: expected a JSON list of ProofWriter rows, got {type(data).__name__}")
    out = []
    seen: dict[str, str] = {}
    for i, row in enumerate(data):
        where = _Where(path, text, i, row)
        if not isinstance(row, dict):
            raise UserError(f"{where}: expected an object, got {type(row).__name__}")
        for key in ("id", "context", "question", "options", "answer"):
            if key not in row:
                raise UserError(f"{where}: missing key '{key}'")
        for key in ("id", "context", "question", "answer"):
            if not isinstance(row[key], str):
                raise UserError(f"{where}: field '{key}' must be a string, got {_short(row[key])}")
        if not row["id"].strip():
            raise UserError(f"{where}: field 'id' is empty")
        if row["id"] in seen:
            raise UserError(f"{where}: field 'id': duplicate id {row['id']!r} (also {seen[row['id']]})")
        seen[row["id"]] = f"item {i}"
        options = row["options"]
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise UserError(f"{where}: field 'options' must be a list of strings, got {_short(options)}")
        letters: dict[str, str] = {}
        for j, opt in enumerate(options):
            m = _OPTION.match(opt)
            if not m:
                raise UserError(f"{where}: field 'options[{j}]' must read 'A) True', 'B) False' or 'C) Unknown', "
                                f"got {_short(opt)}")
            word = m.group(2).upper()
            letters[m.group(1).upper()] = "UNKNOWN" if word == "UNCERTAIN" else word
        answer = row["answer"].strip().rstrip(")").upper()
        if answer not in letters:
            raise UserError(f"{where}: field 'answer' must be one of the option letters "
                            f"{', '.join(letters) or '(none)'}, got {_short(row['answer'])}")
        premises = split_sentences(row["context"])
        if not premises:
            raise UserError(f"{where}: field 'context' has no sentences")
        statement = statement_of(row["question"])
        if not statement.strip(" .!"):
            raise UserError(f"{where}: field 'question' has no statement after its question")
        label = letters[answer]
        assert label in LABELS
        m = _THEORY.match(row["id"])
        problem = Problem(id=row["id"], premises=premises, query=statement, label=label, task="proofwriter",
                          source=f"logiclm:{path.name}", meta={"theory": m.group(1)} if m else None)
        predicted, _, c = solve(problem)
        if predicted in ("TRUE", "FALSE") and predicted == label and c is not None:
            goal = goal_of(problem)
            target = goal if label == "TRUE" else goal.negate()
            problem.hops = max((d.depth for d in c.proof(target)), default=0)
        out.append(problem)
    return out
