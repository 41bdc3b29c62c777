"""FOLIO loader: FOLIO JSONL -> Problem records that carry `fol = {"premises": [...], "query": ...}`."""

from __future__ import annotations

import os
from pathlib import Path

from ...io import UserError, read_jsonl_lines
from ...trace import Problem, short_repr

LABEL_MAP = {"true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN", "uncertain": "UNKNOWN"}

# ------------------------------------------------------------------------------------------------ loader


def _as_list(value, where: str, key: str) -> list[str]:
    if isinstance(value, str):
        return value.split("\n")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UserError(f"{where}: field '{key}' must be a list of strings or a newline-separated string, "
                    f"got {short_repr(value)}")


def folio_record_to_problem(rec: dict, where: str, source: str, default_id: str) -> Problem:
    """One FOLIO JSON record -> Problem. `where` ('file:line') prefixes errors."""
    def pick(*keys, required=True):
        for k in keys:
            if k in rec:
                return k, rec[k]
        if required:
            raise UserError(f"{where}: missing key '{keys[0]}'")
        return None, None

    _, premises = pick("premises")
    fol_key, fol_premises = pick("premises-FOL", "premises_FOL")
    _, conclusion = pick("conclusion")
    ckey, conclusion_fol = pick("conclusion-FOL", "conclusion_FOL", required=False)
    _, label = pick("label")
    premises = _as_list(premises, where, "premises")
    fol_premises = _as_list(fol_premises, where, fol_key)
    if not isinstance(conclusion, str):
        raise UserError(f"{where}: field 'conclusion' must be a string, got {short_repr(conclusion)}")
    if conclusion_fol is not None and not isinstance(conclusion_fol, str):
        raise UserError(f"{where}: field '{ckey}' must be a string, got {short_repr(conclusion_fol)}")
    if not isinstance(label, str) or label.strip().lower() not in LABEL_MAP:
        raise UserError(f"{where}: field 'label' must be True, False, Unknown or Uncertain, got {label!r}")
    # Drop pairs where both sides are empty, then FOL entries left over past the last sentence when empty.
    n = max(len(premises), len(fol_premises))
    pairs = [(premises[i] if i < len(premises) else None, fol_premises[i] if i < len(fol_premises) else None)
             for i in range(n)]
    pairs = [(nl, f) for nl, f in pairs if (nl or "").strip() or (f or "").strip()]
    for i, (nl, f) in enumerate(pairs):
        if not (f or "").strip():  # the solver would read the premise as absent and misjudge the label
            raise UserError(f"{where}: field '{fol_key}' has no formula for premise {i} ({short_repr(nl)})")
    # a sentence left empty beside a formula shows the formula (a problem's premises are never empty)
    premises = [(nl.strip() or (f or "").strip()) for nl, f in pairs if nl is not None]
    fol_premises = [f.strip() for _, f in pairs if f is not None]
    rid = rec.get("example_id", rec.get("id"))
    return Problem(
        id=str(rid) if rid is not None and str(rid).strip() else default_id,
        premises=premises,
        query=f"True or false: {conclusion.strip()}",
        label=LABEL_MAP[label.strip().lower()],
        proof=[], hops=None, rule="FOL", source=source, task="folio",
        fol={"premises": fol_premises,
             "query": conclusion_fol.strip() if isinstance(conclusion_fol, str) and conclusion_fol.strip() else None},
    )


def load_folio(path: str | os.PathLike) -> list[Problem]:
    """Read FOLIO JSONL (v0.0 keys premises, premises-FOL, conclusion, conclusion-FOL, label; the _FOL spelling
    too). Problem ids: example_id, else '<file>:<line>'. Errors: UserError naming file:line and the field.
    When the NL and FOL premise lists differ in length after dropping empty pairs, both are kept as they are:
    formula indices in traces always refer to fol['premises'] (build_folio_prompt shows the NL as context)."""
    path = Path(path)
    out = []
    for lineno, rec in read_jsonl_lines(path):
        out.append(folio_record_to_problem(rec, f"{path}:{lineno}", f"folio:{path.name}", f"{path.name}:{lineno}"))
    return out


