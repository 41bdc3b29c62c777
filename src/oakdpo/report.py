"""Run report (OUT/metrics.json, OUT/report.md + OUT/report.png, and OUT/report.html through oakdpo.html_report),
`oakdpo report` and `oakdpo inspect pairs`."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from .io import atomic_path, read_jsonl, write_json, write_text

METRICS = ("accuracy", "step_validity", "trace_validity")


def _fmt(v, pct=True) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{100 * v:.1f}%" if pct else f"{v:.3f}"
    return str(v)


def sign_test(mended: int, broken: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven if mending and breaking were equally
    likely (problems both stages get right, or both wrong, carry no information)."""
    n, k = mended + broken, min(mended, broken)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


def mended_broken(base_invalid, other_invalid) -> tuple[int, int, float]:
    """Two models' invalid problem ids over the same problems: mended (invalid in base, valid in other), broken (the
    reverse) and the sign test's p."""
    a, b = set(base_invalid), set(other_invalid)
    return len(a - b), len(b - a), sign_test(len(a - b), len(b - a))


def paired_counts(base: dict, other: dict) -> dict:
    """Two evaluations' metrics paired problem by problem (mended_broken); {} when either lacks invalid_ids or they
    saw different problem counts."""
    if "invalid_ids" not in base or "invalid_ids" not in other or base.get("problems") != other.get("problems"):
        return {}
    return dict(zip(("mended", "broken", "sign_p"), mended_broken(base["invalid_ids"], other["invalid_ids"])))


def report_rows(sft_eval: dict | None, sft_wall_s: float | None, iterations: list[dict]) -> list[dict]:
    """Flatten SFT + per-iteration metrics into one row per (stage, eval set); every row after an eval set's first
    is paired with that first one (paired_counts, with `against` naming its stage)."""
    rows = []
    first: dict[str, tuple[str, dict]] = {}

    def add(stage: str, name: str, m: dict, **extra) -> None:
        base = first.setdefault(name, (stage, m))
        pair = paired_counts(base[1], m) if base[1] is not m else {}
        rows.append({"stage": stage, "set": name, **{k: m.get(k) for k in METRICS}, **extra,
                     **({"against": base[0], **pair} if pair else {})})

    for name, m in (sft_eval or {}).items():
        add("sft", name, m, pairs=None, wall_s=sft_wall_s)
    for it in iterations:
        stages = it.get("stages", {})
        wall = round(sum(s.get("wall_s", 0.0) for s in stages.values()), 2)
        pairs = stages.get("pairs", {}).get("pairs")
        q = stages.get("knowledge", {})
        for name, m in it.get("eval", {}).items():
            add(f"iter_{it['iteration']}", name, m, pairs=pairs, wall_s=wall, qhat_ece=q.get("ece"),
                qhat_auroc=q.get("auroc"))
    return rows


def paired_cell(r: dict) -> str:
    """'mended / broken (p X)' of a report row, '-' when it is its set's first or could not be paired."""
    return f"{r['mended']} / {r['broken']} (p {r['sign_p']:.2g})" if "mended" in r else "-"


def paired_note(rows: list[dict]) -> str:
    """What the mended / broken column pairs, naming the stage each eval set is paired against."""
    against = sorted({(r["set"], r["against"]) for r in rows if "against" in r})
    if not against:
        return ""
    bases = ", ".join(f"{name}: {stage}" for name, stage in against)
    return ("Mended / broken: problems whose trace is invalid at the eval set's first stage and valid at this one, "
            f"and the reverse ({bases}); p is the exact two-sided sign test, the chance of a split at least this "
            "uneven if the stage mended and broke problems equally often.")


def write_report(rows: list[dict], out_dir: str | Path, title: str = "OaK-DPO run") -> None:
    """OUT/metrics.json ({"rows": rows}: a row per stage and eval set), OUT/report.md (the same as a table) and
    OUT/report.png (the same as a plot)."""
    out = Path(out_dir)
    write_json(out / "metrics.json", {"rows": rows})
    lines = [f"# {title}", "", "Strict verification of greedy traces on held-out problems.", "",
             "| stage | eval set | accuracy | step validity | trace validity | mended / broken | pairs "
             "| wall time (s) | q-hat ECE | q-hat AUROC |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        wall = f"{r['wall_s']:.0f}" if isinstance(r.get("wall_s"), (int, float)) else "-"
        lines.append(f"| {r['stage']} | {r['set']} | {_fmt(r['accuracy'])} | {_fmt(r['step_validity'])} | "
                     f"{_fmt(r['trace_validity'])} | {paired_cell(r)} | {_fmt(r['pairs'])} | {wall} | "
                     f"{_fmt(r.get('qhat_ece'), pct=False)} | {_fmt(r.get('qhat_auroc'), pct=False)} |")
    note = paired_note(rows)
    lines += ([""] + textwrap.wrap(note, 120) if note else []) + ["", "![metrics per stage](report.png)", ""]
    write_text(out / "report.md", "\n".join(lines))
    _plot(rows, out / "report.png")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = sorted({r["set"] for r in rows})
    fig, axes = plt.subplots(1, max(1, len(sets)), figsize=(5 * max(1, len(sets)), 3.6), squeeze=False)
    for ax, name in zip(axes[0], sets):
        sub = [r for r in rows if r["set"] == name]
        xs = [r["stage"] for r in sub]
        for key in METRICS:
            ax.plot(xs, [100 * (r[key] or 0.0) for r in sub], marker="o", label=key.replace("_", " "))
        ax.set_title(f"eval set: {name}")
        ax.set_ylim(0, 102)
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def inspect_pairs(path: str | Path, n: int = 3, width: int = 100) -> str:
    """A readable view of the first n pairs of a pairs.jsonl."""
    pairs = read_jsonl(path, required=("prompt", "chosen", "rejected"))
    out = [f"{path}: {len(pairs)} pairs"]
    for i, p in enumerate(pairs[:n]):
        out.append("=" * width)
        out.append(f"pair {i}  problem {p.get('problem_id')}  kind {p.get('kind')}  "
                   f"step validity chosen {p.get('chosen_step_validity')} / rejected {p.get('rejected_step_validity')}")
        out.append("-- prompt " + "-" * (width - 10))
        out.append(p["prompt"].rstrip())
        for key in ("chosen", "rejected"):
            out.append(f"-- {key} " + "-" * (width - 4 - len(key)))
            out += [textwrap.shorten(line, width=width * 2, placeholder=" ...") for line in p[key].splitlines()]
    return "\n".join(out)


def add_cli(sub) -> None:
    p = sub.add_parser("inspect", help="Look at run artifacts.")
    isub = p.add_subparsers(dest="what", required=True)
    q = isub.add_parser("pairs", help="Print a few preference pairs readably.")
    q.add_argument("path", help="OUT/iter_{k}/pairs.jsonl")
    q.add_argument("-n", type=int, default=3, help="How many pairs to print.")
    q.set_defaults(func=lambda a: print(inspect_pairs(a.path, a.n)))
    q = isub.add_parser("prompt", help="Print exactly what the model sees for one problem: the framed prompt, its "
                                       "token count and how the completion ends.")
    q.add_argument("--problems", required=True, help="problems.jsonl (or a task's own file).")
    q.add_argument("--model", default=None, help="Checkpoint or adapter folder whose tokenizer frames the prompt "
                   "(its chat template, if any); without it, plain text.")
    q.add_argument("--config", default=None, help="YAML config (format section).")
    q.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="Config override.")
    q.add_argument("--index", type=int, default=0, help="Which problem (0-based).")
    q.set_defaults(func=_inspect_prompt)


def _inspect_prompt(args) -> int:
    from .prompting import inspect_prompt

    print(inspect_prompt(args.problems, args.model, args.config, args.index, args.set))
    return 0
