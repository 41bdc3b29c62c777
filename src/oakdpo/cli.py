"""`oakdpo` command line. Each subcommand is a thin wrapper over a library function.

The parsers of the commands that run a model (model init, sft, generate, eval, oak, quickstart) are declared
here and their handlers imported only when they run, so `oakdpo --help` and an argument error never import torch
or transformers. Modules whose import is cheap (data, export, verify, html_report, report) register their own
subcommands.

Errors in user input raise `UserError`; main() prints them as one line `error: ...` and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .io import UserError



def _lazy(target: str):
    """A handler that imports `module:function` when the command runs."""
    def run(args):
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)(args)

    return run


def _config_args(p, what: str) -> None:
    p.add_argument("--config", default=None, help=f"YAML config ({what}); default: the schema defaults, which are "
                                                 "for real checkpoints (configs/tiny.yaml is the tiny demo's).")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="Config override.")


def add_oak_arguments(p) -> None:
    """The loop's flags (`oakdpo oak` and scripts/run_oak_dpo.py)."""
    _config_args(p, "configs/training.yaml for a 7-8B checkpoint, configs/tiny.yaml for the tiny model")
    p.add_argument("--sft-model", default=None,
                   help="Local HF checkpoint or LoRA adapter folder to start from (default: model.name_or_path).")
    p.add_argument("--train-data", required=True, help="problems.jsonl or a file in the task's own format.")
    p.add_argument("--val-data", default=None, help="Validation problems evaluated after each iteration.")
    p.add_argument("--dataset-type", default=None,
                   help="The task: prontoqa, folio, proofwriter or an installed plugin's name (default: config "
                        "data.dataset).")
    p.add_argument("--iterations", type=int, default=None, help="OaK iterations (default: config oak.iterations).")
    p.add_argument("--samples", type=int, default=None, help="Samples per problem (default: config oak.samples).")
    p.add_argument("--output-dir", default="runs/oak", help="Run directory (reruns resume).")


def _add_model_commands(sub) -> None:
    p = sub.add_parser("model", help="Built-in tiny model.")
    msub = p.add_subparsers(dest="model_command", required=True)
    q = msub.add_parser("init", help="Train a tokenizer on generated problems and save a fresh tiny Llama.")
    _config_args(q, "model section sets the sizes; configs/tiny.yaml")
    q.add_argument("--train-data", default=None, help="Problems whose prompts and gold traces the tokenizer is trained "
                   "on (the first model.corpus_problems; default: PrOntoQA problems of our generator).")
    q.add_argument("-o", "--output", required=True, help="Output folder.")
    q.set_defaults(func=_lazy("oakdpo.tiny:cmd_init"))
    q = msub.add_parser("standin", help="Save a random-init Qwen2 or Llama checkpoint with a locally trained "
                                        "tokenizer (a stand-in for a real one: framing checks, smoke runs).")
    q.add_argument("--arch", default="qwen2", help="qwen2 (ChatML chat template) or llama (no chat template, no pad).")
    q.add_argument("--size", default="tiny", help="tiny, small or 0.5b (Qwen2-0.5B's shapes).")
    q.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="float32 or bfloat16.")
    q.add_argument("--seed", type=int, default=0, help="Initialisation seed.")
    q.add_argument("-o", "--output", required=True, help="Output folder.")
    q.set_defaults(func=_lazy("oakdpo.standin:cmd_standin"))

    p = sub.add_parser("sft", help="Supervised fine-tuning on gold traces (TRL SFTTrainer).")
    _config_args(p, "model, format and sft sections")
    p.add_argument("--train-data", required=True, help="problems.jsonl with gold proofs.")
    p.add_argument("--model", required=True, help="Local HF checkpoint folder (e.g. from `oakdpo model init`).")
    p.add_argument("-o", "--output", required=True, help="Output folder (a rerun resumes from its checkpoint).")
    p.add_argument("--limit", type=int, default=0, help="Only the first N problems (0: all).")
    p.set_defaults(func=_lazy("oakdpo.training:cmd_sft"))

    p = sub.add_parser("generate", help="Sample traces from a policy for each problem.")
    p.add_argument("--model", required=True, help="Local HF checkpoint folder or LoRA adapter folder.")
    p.add_argument("--problems", required=True, help="problems.jsonl or a file in the task's own format.")
    p.add_argument("--samples", type=int, default=1, help="Traces per problem.")
    p.add_argument("-o", "--output", required=True, help="traces.jsonl to write.")
    _config_args(p, "model, format and generation sections")
    p.add_argument("--seed", type=int, default=None, help="Sampling seed (default: generation.seed).")
    p.add_argument("--temperature", type=float, default=None, help="Default: generation.temperature.")
    p.add_argument("--greedy", action="store_true", help="Greedy decoding instead of sampling.")
    p.add_argument("--limit", type=int, default=0, help="Only the first N problems (0: all).")
    p.set_defaults(func=_lazy("oakdpo.generation:cmd_generate"))

    p = sub.add_parser("eval", help="Greedy traces + strict verification; metrics overall and by hop count.")
    p.add_argument("--model", required=True, help="Local HF checkpoint folder or LoRA adapter folder.")
    p.add_argument("--problems", required=True, help="problems.jsonl or a file in the task's own format.")
    p.add_argument("-o", "--output", required=True, help="Output folder (metrics.json, traces.jsonl, "
                   "verdicts.jsonl, summary.md).")
    _config_args(p, "model, format and eval sections")
    p.add_argument("--limit", type=int, default=0, help="Only the first N problems (0: all).")
    p.add_argument("--rerank", type=int, default=None, metavar="N",
                   help="Also sample N traces per problem and keep the one q-hat scores highest (eval.rerank).")
    p.add_argument("--qhat", default=None, help="q-hat folder for --rerank, e.g. OUT/iter_0/qhat.")
    p.set_defaults(func=_lazy("oakdpo.evaluation:cmd_eval"))

    p = sub.add_parser("oak", help="Run the OaK-DPO loop (generate -> verify -> pairs -> DPO -> evaluate).")
    add_oak_arguments(p)
    p.set_defaults(func=_lazy("oakdpo.loop:main_oak"))

    q = sub.add_parser("quickstart", help="The whole loop on the built-in tiny model (what `make demo` runs).")
    q.add_argument("-o", "--output-dir", default="runs/demo", help="Run directory (reruns resume).")
    q.add_argument("--config", default=None, help="Config YAML (default: the repository's configs/tiny.yaml).")
    q.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="Config override.")
    q.set_defaults(func=_lazy("oakdpo.loop:cmd_quickstart"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oakdpo", description="Train LMs to reason with solver-verified proofs.")
    sub = p.add_subparsers(dest="command", required=True)
    data_sub = importlib.import_module("oakdpo.data").add_cli(sub)
    importlib.import_module("oakdpo.export").add_cli(data_sub)
    importlib.import_module("oakdpo.verify").add_cli(sub)
    _add_model_commands(sub)
    for name in ("html_report", "report"):
        importlib.import_module(f"oakdpo.{name}").add_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output was piped into `head` & co., which stopped reading
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
