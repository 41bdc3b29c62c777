"""PrOntoQA (fictional ontology): our generator, the original generator's JSON and Logic-LM's format, the
lookup and natural prompts, the optionizer, the strict verifier and a forward-chaining label solver."""

from __future__ import annotations

import random

from ...io import UserError, read_json
from ...trace import Budget, Problem, parse_trace
from ..base import Task
from . import gold, loaders, prompt, solver
from .generator import cut_to_proof, generate_problems
from .verify import verify_parsed


class PrOntoQATask(Task):
    name = "prontoqa"
    import_formats = ("prontoqa-json", "logiclm")
    has_generator = True

    def load(self, path, fmt: str | None = None) -> list[Problem]:
        """fmt None: an original-generator JSON object or a Logic-LM JSON list, told apart by the file's shape."""
        if fmt is None:
            fmt = "logiclm" if isinstance(read_json(path), list) else "prontoqa-json"
        if fmt == "prontoqa-json":
            return loaders.load_prontoqa_json(path)
        if fmt == "logiclm":
            return loaders.load_logiclm(path)
        raise UserError(f"--format: task prontoqa reads {', '.join(self.import_formats)}, not {fmt!r}")

    def generate(self, num: int, seed: int = 0, **shape) -> list[Problem]:
        return generate_problems(num, seed=seed, **shape)

    def prompt(self, problem: Problem, style: str) -> tuple[str | None, str]:
        return prompt.prompt(problem, style)

    def gold_trace(self, problem: Problem, style: str) -> str | None:
        return gold.gold_trace(problem, style)

    def verify(self, problem: Problem, text: str, budget: Budget | None = None) -> dict:
        return verify_parsed(problem, parse_trace(text), budget)

    def label(self, problem: Problem) -> str | None:
        return solver.label(problem)

    def curriculum_problem(self, problem: Problem, keep: int, rng: random.Random, distractor: str) -> Problem:
        return cut_to_proof(problem, keep, rng, distractor)

    def lookups(self, problem: Problem, style: str) -> dict[str, list[tuple[str, str]]] | None:
        return prompt.lookups(problem) if style == "lookup" else None


__all__ = ["PrOntoQATask"]
