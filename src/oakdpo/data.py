"""Problem files and the `oakdpo data` commands (generate, import, gold).

problems.jsonl holds one Problem record per line (oakdpo.trace). Every other file shape is a task's own format,
read by that task's loader (oakdpo.tasks): `read_problem_file` accepts either, so every stage takes both.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable

from .config import FORMAT_STYLES
from .io import UserError, read_jsonl_lines, write_jsonl
from .tasks import get_task, task_for_format
from .trace import LABELS, Problem, trace_record


def read_problems(path: str | Path, task: str | None = None) -> list[Problem]:
    """Read problems.jsonl. Any bad line raises UserError naming 'file:line' and the field. A record without a
    'task' field belongs to `task` (see Problem.from_dict)."""
    path = Path(path)
    out, seen = [], {}
    for lineno, rec in read_jsonl_lines(path):
        where = f"{path}:{lineno}"
        p = Problem.from_dict(rec, where=where, task=task)
        if p.id in seen:
            raise UserError(f"{where}: field 'id': duplicate id {p.id!r} (first on line {seen[p.id]})")
        seen[p.id] = lineno
        out.append(p)
    return out


def _is_problems_jsonl(path: Path) -> bool:
    """Whether the file's first record is a Problem record (else it is in a task's own format)."""
    try:
        with open(path, encoding="utf-8") as f:
            first = next((line for line in f if line.strip()), "")
        rec = json.loads(first) if first else None
    except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return path.suffix == ".jsonl"  # let read_problems name the bad line
    # "query" is our record's own key: the tasks' formats name it otherwise (FOLIO "conclusion", Logic-LM
    # "question", the original PrOntoQA a JSON object of examples), so a record with it that lacks another key is
    # a bad problems.jsonl line, reported as such.
    return isinstance(rec, dict) and "query" in rec


def read_problem_file(path: str | Path, task: str | None = None) -> list[Problem]:
    """problems.jsonl, or a file in a task's own format (the original PrOntoQA JSON, Logic-LM, FOLIO JSONL,
    ...), read by `task`'s loader (None: prontoqa). Errors name the file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a problems file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if _is_problems_jsonl(path):
        return read_problems(path, task)
    return get_task(task or "prontoqa").load(path)


def write_problems(path: str | Path, problems: Iterable[Problem]) -> int:
    """Write problems.jsonl atomically; returns the count."""
    return write_jsonl(path, (p.to_dict() for p in problems))


def label_summary(problems: list[Problem]) -> str:
    """'TRUE 1003 / FALSE 997 (50.1% TRUE)' (UNKNOWN shown when present)."""
    c = Counter(p.label for p in problems)
    parts = [f"{lab} {c[lab]}" for lab in LABELS if c[lab] or lab != "UNKNOWN"]
    pct = 100.0 * c["TRUE"] / len(problems) if problems else 0.0
    return f"{' / '.join(parts)} ({pct:.1f}% TRUE)"


def gold_traces(problems: list[Problem], style: str) -> list[tuple[Problem, str | None]]:
    """(problem, its gold trace or None) for each problem, from the problem's task."""
    return [(p, get_task(p.task).gold_trace(p, style)) for p in problems]


# ----------------------------------------------------------------------------------------------------------
# Command line

def _cmd_generate(args) -> int:
    task = get_task(args.dataset)
    if not task.has_generator:
        raise UserError(f"--dataset: task {args.dataset!r} has no generator (import its files with oakdpo data import)")
    from .tasks.prontoqa.generator import parse_hops, parse_premises

    lo, hi = parse_hops(args.hops)
    counts = parse_premises(args.premises)
    problems = task.generate(args.num, seed=args.seed, hops=(lo, hi), context_order=args.context_order,
                             remove_shortcut=not args.no_remove_shortcut, premises=counts, forms=args.forms,
                             query_phrasing=args.query_phrasing)
    write_problems(args.output, problems)
    hops = f"{lo}" if lo == hi else f"{lo}-{hi}"
    print(f"generated {len(problems)} problems ({args.dataset}, hops {hops}, premises {args.premises}, "
          f"seed {args.seed}, {args.context_order} context order, {args.forms} forms, "
          f"{args.query_phrasing} query phrasing, "
          f"shortcut {'kept' if args.no_remove_shortcut else 'removed'}): {label_summary(problems)} -> {args.output}")
    return 0


def _cmd_import(args) -> int:
    task = task_for_format(args.format)
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for inp in args.inputs:
        if Path(inp).is_dir():
            raise UserError(f"{inp}: is a directory, expected a {args.format} file")
        for p in task.load(inp, args.format):
            if p.id in seen:
                raise UserError(f"{inp}: field 'id': duplicate id {p.id!r} (also in {seen[p.id]})")
            seen[p.id] = inp
            problems.append(p)
    write_problems(args.output, problems)
    rules = Counter(p.rule for p in problems)
    print(f"imported {len(problems)} problems from {len(args.inputs)} file(s) ({args.format}; "
          f"{', '.join(f'{r} {n}' for r, n in sorted(rules.items()))}): {label_summary(problems)} "
          f"-> {args.output}")
    return 0


def _cmd_gold(args) -> int:
    from .config import load_config

    style = args.style or load_config(args.config, args.set).format.style
    problems = read_problem_file(args.problems, args.dataset)
    golds = gold_traces(problems, style)
    # A problem whose proof the optionizer cannot write has no gold trace: it is skipped, and counted.
    records = [trace_record(p.id, 0, text) for p, text in golds if text is not None]
    write_jsonl(args.output, records)
    skipped = len(problems) - len(records)
    written = [p for p, text in golds if text is not None]  # the labels of the traces written, not of the input
    print(f"wrote {len(records)} gold traces ({style} style) for {len(problems)} problems"
          + (f" ({skipped} without a gold proof skipped)" if skipped else "")
          + f": {label_summary(written)} -> {args.output}")
    return 0


def add_cli(sub):
    """`oakdpo data generate|import|gold`; returns the subparsers (oakdpo.export adds `data export`)."""
    p = sub.add_parser("data", help="Generate, import and write gold traces of problems.")
    dsub = p.add_subparsers(dest="data_command", required=True)

    g = dsub.add_parser("generate", help="Generate problems with a task's generator (PrOntoQA).")
    g.add_argument("--dataset", default="prontoqa", help="Task whose generator to use (prontoqa).")
    g.add_argument("--num", type=int, required=True, help="Number of problems.")
    g.add_argument("--hops", default="1-5", help="Hops H or a range H1-H2 (1..5), drawn uniformly.")
    g.add_argument("--seed", type=int, default=0, help="Generator seed (problem i depends on seed and i only).")
    g.add_argument("--premises", default="8-30",
                   help="Premise count N or a range N1-N2 (at most 33), drawn uniformly whatever the hop count; "
                        "'original': the original generator's story, whose ontology depth sets the count.")
    g.add_argument("--context-order", default="mix",
                   help="Order of the rule sentences: random, proof (the proof's rules in proof order), preorder, "
                        "or mix (random or proof per problem); the entity facts come last.")
    g.add_argument("--forms", default="mix",
                   help="Rule sentence forms: plural ('Xs are Ys'), each ('Each X is a Y'), every ('Every X is not "
                        "ADJ'), or mix (the original's draw per sentence).")
    g.add_argument("--query-phrasing", default="mix",
                   help="true-or-false ('True or false: S'), is-the-following ('Is the following statement true "
                        "or false? S'), or mix (a fair coin per problem).")
    g.add_argument("--no-remove-shortcut", action="store_true",
                   help="Keep the original's label shortcut (distractor rule of opposite polarity).")
    g.add_argument("-o", "--output", required=True, help="problems.jsonl to write.")
    g.set_defaults(func=_cmd_generate)

    im = dsub.add_parser("import", help="Import problems from a task's own file format.")
    im.add_argument("--format", required=True, help="One of the tasks' import formats (prontoqa-json, logiclm, "
                    "folio, proofwriter-logiclm, ...).")
    im.add_argument("inputs", nargs="+", help="Input files.")
    im.add_argument("-o", "--output", required=True, help="problems.jsonl to write.")
    im.set_defaults(func=_cmd_import)

    gd = dsub.add_parser("gold", help="Write the gold trace of every problem (the task's optionizer).")
    gd.add_argument("--problems", required=True, help="problems.jsonl (or a task's own file, with --dataset)")
    gd.add_argument("--dataset", default=None, help="Task that reads a file in its own format (default prontoqa).")
    gd.add_argument("--style", default=None, choices=FORMAT_STYLES,
                    help="natural or lookup (default: the config's format.style).")
    gd.add_argument("--config", default=None, help="YAML config (format section).")
    gd.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="Config override.")
    gd.add_argument("-o", "--output", required=True, help="traces.jsonl to write ({problem_id, sample, text}).")
    gd.set_defaults(func=_cmd_gold)
    return dsub
