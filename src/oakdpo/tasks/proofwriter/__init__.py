"""ProofWriter (Logic-LM's format): facts and rules over entities, open-world labels TRUE / FALSE / UNKNOWN.

loader (Logic-LM rows -> problems), logic (the sentence parser), solver (forward chaining, the label and its
proof), gold (the optionizer), verify (the strict step verifier), prompt (both format styles).
docs/proofwriter.md describes the sentence forms, the option types per step shape and what supports UNKNOWN.
"""

from __future__ import annotations

from ...io import UserError
from ...trace import Budget, Problem, parse_trace
from ..base import Task


class ProofWriterTask(Task):
    name = "proofwriter"
    import_formats = ("proofwriter-logiclm",)

    def load(self, path, fmt: str | None = None) -> list[Problem]:
        if fmt not in (None, "proofwriter-logiclm"):
            raise UserError(f"--format: task proofwriter reads {', '.join(self.import_formats)}, not {fmt!r}")
        from .loader import load_logiclm

        return load_logiclm(path)

    def prompt(self, problem: Problem, style: str) -> tuple[str | None, str]:
        from .prompt import prompt

        return prompt(problem, style)

    def gold_trace(self, problem: Problem, style: str) -> str | None:
        from .gold import gold_trace

        return gold_trace(problem, style)

    def verify(self, problem: Problem, text: str, budget: Budget | None = None) -> dict:
        from .verify import verify_parsed

        return verify_parsed(problem, parse_trace(text), budget)

    def label(self, problem: Problem) -> str | None:
        from .solver import label

        return label(problem)

    def solve_record(self, problem: Problem) -> dict:
        from .solver import solve

        predicted, status, _ = solve(problem)
        return {"predicted": predicted, "status": status}


__all__ = ["ProofWriterTask"]
