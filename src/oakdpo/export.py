"""Datasets for other trainers: `oakdpo data export --for trl|verl` turns problems into RL prompts whose rows
carry the problem, so oakdpo.rewards can verify each completion against it.

The prompt is framed as our own stages frame it (oakdpo.prompting): the task's prompt in the format style
(`--style`, else the config's format.style), as plain text (the system text, a blank line, the user text) or as
chat messages ([system, user]). With `--tokenizer DIR` the choice follows that tokenizer exactly as training
does (its chat template, format.chat_template, a template that takes no system message).

    trl   JSONL for datasets.load_dataset("json", data_files=OUT): {prompt, problem, problem_id, task};
          `problem` is the Problem record as a JSON string (the column oakdpo.rewards reads).
    verl  parquet with verl's RL fields: data_source ("oakdpo/<task>"), prompt (chat messages), ability,
          reward_model {style: "rule", ground_truth: the problem record as JSON}, extra_info {split, index,
          problem_id, task}; score it with oakdpo.rewards.compute_score.
"""

from __future__ import annotations

import json
from pathlib import Path

from .io import UserError, atomic_path, write_jsonl
from .tasks import STYLES, get_task
from .trace import Problem

TARGETS = ("trl", "verl")
PROMPT_FORMS = ("plain", "chat")
ABILITY = "logical_reasoning"


def problem_json(problem: Problem) -> str:
    return json.dumps(problem.to_dict(), ensure_ascii=False)


def frame_prompt(problem: Problem, style: str, form: str, framing=None) -> str | list[dict]:
    """The prompt of one problem: plain text or chat messages. `framing` (oakdpo.prompting.Framing) decides the
    messages the way training does (a template without a system role gets the instruction in the user turn)."""
    system, user = get_task(problem.task).prompt(problem, style)
    if form == "plain":
        return f"{system}\n\n{user}" if system else user
    if framing is not None:
        return framing.messages(system, user)
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def export_records(problems: list[Problem], target: str, style: str, form: str, *, split: str = "train",
                   framing=None) -> list[dict]:
    """One row per problem for `target` (TARGETS)."""
    if target not in TARGETS:
        raise UserError(f"--for: unknown target {target!r} (known: {', '.join(TARGETS)})")
    if style not in STYLES:
        raise UserError(f"--style: unknown style {style!r} (known: {', '.join(STYLES)})")
    if form not in PROMPT_FORMS:
        raise UserError(f"--prompt: unknown prompt form {form!r} (known: {', '.join(PROMPT_FORMS)})")
    if target == "verl" and form != "chat":
        raise UserError("--prompt plain: verl's prompt field is chat messages (verl applies the chat template)")
    rows = []
    for i, p in enumerate(problems):
        prompt = frame_prompt(p, style, form, framing)
        if target == "trl":
            rows.append({"prompt": prompt, "problem": problem_json(p), "problem_id": p.id, "task": p.task})
        else:
            rows.append({"data_source": f"oakdpo/{p.task}", "prompt": prompt, "ability": ABILITY,
                         "reward_model": {"style": "rule", "ground_truth": problem_json(p)},
                         "extra_info": {"split": split, "index": i, "problem_id": p.id, "task": p.task}})
    return rows


def write_export(rows: list[dict], target: str, path: str | Path) -> None:
    """TRL: JSONL; verl: parquet (through datasets). Written atomically."""
    if target == "trl":
        write_jsonl(path, rows)
        return
    from datasets import Dataset

    with atomic_path(path) as tmp:
        Dataset.from_list(rows).to_parquet(str(tmp))


def _load_framing(tokenizer_dir: str, fmt):
    from transformers import AutoTokenizer

    from .prompting import Framing

    if not Path(tokenizer_dir).is_dir():
        raise UserError(f"--tokenizer: {tokenizer_dir}: no such folder (a local checkpoint or tokenizer folder)")
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserError(f"--tokenizer: {tokenizer_dir}: cannot load a tokenizer ({type(e).__name__})") from None
    return Framing(tok, fmt)


def run_export(args) -> int:
    """`oakdpo data export`."""
    from .config import load_config
    from .data import label_summary, read_problem_file

    cfg = load_config(args.config, args.set)
    style = args.style or cfg.format.style
    problems = read_problem_file(args.problems, args.dataset)
    framing = _load_framing(args.tokenizer, cfg.format) if args.tokenizer else None
    form = args.prompt or ("chat" if args.target == "verl" or (framing is not None and framing.chat) else "plain")
    rows = export_records(problems, args.target, style, form, split=args.split, framing=framing)
    write_export(rows, args.target, args.output)
    print(f"exported {len(rows)} problems for {args.target} ({style} style, {form} prompts): "
          f"{label_summary(problems)} -> {args.output}")
    return 0


def add_cli(data_sub) -> None:
    """`oakdpo data export` (cli.py hands in the `data` command's subparsers)."""
    add_arguments(data_sub.add_parser("export", help="Write RL prompts that carry their problems, for TRL "
                                                     "(JSONL) or verl (parquet), to score with oakdpo.rewards."))


def add_arguments(p) -> None:
    """The flags of `oakdpo data export`."""
    p.add_argument("--for", dest="target", required=True, choices=TARGETS,
                   help="trl: JSONL with prompt + problem columns (GRPOTrainer & co. with oakdpo.rewards); "
                        "verl: parquet with data_source, prompt, ability, reward_model, extra_info.")
    p.add_argument("--problems", required=True, help="problems.jsonl (or a task's own file, with --dataset).")
    p.add_argument("--dataset", default=None, help="Task that reads a file in its own format (default prontoqa).")
    p.add_argument("--style", default=None, help="natural or lookup (default: the config's format.style).")
    p.add_argument("--prompt", default=None, choices=PROMPT_FORMS,
                   help="plain text or chat messages (default: chat for verl; for trl, chat when --tokenizer "
                        "has a chat template the config uses, else plain).")
    p.add_argument("--tokenizer", default=None, help="Local checkpoint/tokenizer folder whose chat template "
                   "decides the framing, as in training (optional).")
    p.add_argument("--split", default="train", help="verl: extra_info.split of every row.")
    p.add_argument("--config", default=None, help="YAML config (format section).")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="Config override.")
    p.add_argument("-o", "--output", required=True, help="File to write: .jsonl (trl) or .parquet (verl).")
    p.set_defaults(func=run_export)
