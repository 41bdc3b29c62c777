"""FOLIO: first-order logic stories checked with the Z3 SMT solver (loader, prompt, optionizer, step verifier,
label solver). Every formula a trace cites or claims is FOL; docs/folio.md says what each option requires."""

from __future__ import annotations

from ...io import UserError
from ...trace import Budget, Problem
from ..base import Task


class FolioTask(Task):
    name = "folio"
    import_formats = ("folio",)

    def load(self, path, fmt: str | None = None) -> list[Problem]:
        if fmt not in (None, "folio"):
            raise UserError(f"--format: task folio reads folio JSONL, not {fmt!r}")
        from .loader import load_folio

        return load_folio(path)

    def prompt(self, problem: Problem, style: str) -> tuple[str | None, str]:
        from .prompt import prompt

        return prompt(problem, style)

    def gold_trace(self, problem: Problem, style: str) -> str | None:
        from .gold import folio_gold_trace

        return folio_gold_trace(problem)

    def verify(self, problem: Problem, text: str, budget: Budget | None = None) -> dict:
        from .verify import verify_folio_trace

        return verify_folio_trace(problem, text, budget=budget)

    def label(self, problem: Problem) -> str | None:
        return self.solve_record(problem)["predicted"]

    def solve_record(self, problem: Problem) -> dict:
        from .solver import solve_problem

        r = solve_problem(problem)
        return {"predicted": r.predicted, "status": r.status, "detail": r.detail, "ms": round(r.ms, 2)}
