"""The Task interface: everything a stage needs to know about a reasoning task, and nothing else.

A task owns its data (loaders, a generator where it has one), how a problem is shown to the model in each
format style, its gold traces (the optionizer), its strict step verifier and its label solver. The stages
(SFT, generation, pairs, DPO, q-hat, evaluation, the loop, the report) only call these methods; they never ask
which task they run. Built-in tasks live in `oakdpo.tasks.<name>`; a user's package adds one through the
`oakdpo.tasks` entry-point group (see oakdpo.tasks.get_task and the README).

Every method is a pure function of its arguments. Verification runs in a process pool: a worker receives the
problem (which names its task) and looks the task up in its own registry, so a task object is never pickled.
"""

from __future__ import annotations

import random

from ..io import UserError
from ..trace import Budget, Problem

STYLES = ("natural", "lookup")  # format.style (config.FormatConfig)


class Task:
    """Subclass it, set `name`, and implement `prompt`, `gold_trace` and `verify` (the rest is optional).

    - `load(path, fmt)`: problems from a file in one of `import_formats` (fmt None: the task's default).
    - `generate(num, seed, **shape)`: problems from the task's own generator (only where it has one).
    - `prompt(problem, style)`: (system, user) text. `system` is the instruction (None: none); the stage frames
      both with the tokenizer's chat template or joins them as plain text (oakdpo.prompting).
    - `gold_trace(problem, style)`: a trace that the task's verifier accepts, or None where it has none.
    - `verify(problem, text, budget)`: the strict verdict (oakdpo.trace.make_verdict's shape). Never raises on
      any text; `budget` bounds the time it may take (Budget.check raises VerifyTimeout, which the caller turns
      into a `timeout` verdict).
    - `label(problem)`: TRUE / FALSE / UNKNOWN from the task's own solver, or None when it cannot decide;
      `solve_record(problem)` the same with the solver's status, for `oakdpo solve`.
    - `curriculum_problem(problem, keep, rng, distractor)`: a smaller problem for an SFT curriculum
      (sft.curriculum_steps); by default the problem itself.
    - `lookups(problem, style)`: for format.lookup_decoding, the premises a trace looks up by a word, as
      {word: [(tag, text), ...]}; None (the default) where the style has no lookups.
    """

    name: str = ""
    import_formats: tuple[str, ...] = ()  # `oakdpo data import --format X` names these
    has_generator: bool = False

    def load(self, path, fmt: str | None = None) -> list[Problem]:
        raise UserError(f"task {self.name}: no loader for {path}")

    def generate(self, num: int, seed: int = 0, **shape) -> list[Problem]:
        raise UserError(f"task {self.name} has no generator (oakdpo data import reads its files)")

    def prompt(self, problem: Problem, style: str) -> tuple[str | None, str]:
        raise NotImplementedError

    def gold_trace(self, problem: Problem, style: str) -> str | None:
        raise NotImplementedError

    def verify(self, problem: Problem, text: str, budget: Budget | None = None) -> dict:
        raise NotImplementedError

    def label(self, problem: Problem) -> str | None:
        return None

    def solve_record(self, problem: Problem) -> dict:
        """What `oakdpo solve` writes for one problem (besides problem_id and label): the solver's answer and
        its status. Tasks with a richer solver (FOLIO: timeouts, inconsistent premises) override it."""
        predicted = self.label(problem)
        return {"predicted": predicted, "status": "ok" if predicted is not None else "undecided"}

    def curriculum_problem(self, problem: Problem, keep: int, rng: random.Random, distractor: str) -> Problem:
        return problem

    def lookups(self, problem: Problem, style: str) -> dict[str, list[tuple[str, str]]] | None:
        return None
