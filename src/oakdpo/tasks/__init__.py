"""The task registry: built-in tasks by name, and third-party tasks from the `oakdpo.tasks` entry-point group.

A user's package adds a task without editing oakdpo by declaring, in its pyproject.toml,

    [project.entry-points."oakdpo.tasks"]
    mytask = "mypackage.mytask:MyTask"      # a Task subclass (or an instance)

after which `--dataset-type mytask`, `oakdpo data import --format <one of its import_formats>` and problems
records with `"task": "mytask"` all reach it. Built-in tasks are imported only when first asked for (FOLIO
imports z3), so a process pays for the tasks it uses.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from ..io import UserError
from .base import STYLES, Task

BUILTIN = {
    "prontoqa": "oakdpo.tasks.prontoqa:PrOntoQATask",
    "folio": "oakdpo.tasks.folio:FolioTask",
    "proofwriter": "oakdpo.tasks.proofwriter:ProofWriterTask",
}
ENTRY_POINT_GROUP = "oakdpo.tasks"

__all__ = ["STYLES", "Task", "get_task", "task_names", "task_for_format", "import_formats"]


def _entry_points() -> dict:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _instance(obj, name: str) -> Task:
    task = obj() if isinstance(obj, type) else obj
    if not isinstance(task, Task):
        raise UserError(f"task {name!r}: {obj!r} is not an oakdpo.tasks.Task")
    if task.name != name:
        task.name = name
    return task


@lru_cache(maxsize=None)
def get_task(name: str) -> Task:
    """The task registered as `name` (one instance per process)."""
    if not isinstance(name, str) or not name:
        raise UserError(f"task: expected a task name, got {name!r}")
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        return _instance(getattr(importlib.import_module(module), attr), name)
    ep = _entry_points().get(name)
    if ep is None:
        raise UserError(f"unknown task {name!r} (known: {', '.join(task_names())})")
    try:
        obj = ep.load()
    except Exception as e:  # a broken plugin is the user's error, named in one line
        raise UserError(f"task {name!r}: entry point {ep.value!r} failed to load ({type(e).__name__}: {e})") from None
    return _instance(obj, name)


def task_names() -> list[str]:
    """Built-in tasks first, then the installed plugins."""
    return list(BUILTIN) + sorted(n for n in _entry_points() if n not in BUILTIN)


def import_formats() -> dict[str, str]:
    """{import format: task name} over every registered task."""
    out: dict[str, str] = {}
    for name in task_names():
        for fmt in get_task(name).import_formats:
            out.setdefault(fmt, name)
    return out


def task_for_format(fmt: str) -> Task:
    formats = import_formats()
    if fmt not in formats:
        raise UserError(f"--format: unknown format {fmt!r} (known: {', '.join(formats)})")
    return get_task(formats[fmt])
