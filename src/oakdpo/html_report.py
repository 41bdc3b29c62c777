"""OUT/report.html: one self-contained page per run, to browse what the loop did (`oakdpo report --html OUT`).

The page needs no network and loads nothing: CSS and JS are inline, plots are inline base64 PNGs. It holds
  - the metrics table of report.md (a row per stage and eval set) and a table of every iteration's stages
    (generate, verify, pairs, q-hat, DPO, eval: their figures and wall times);
  - plots of every stage: evaluation metrics per stage, the sampled traces' verification, pairs by kind, the
    SFT and DPO training losses, q-hat calibration, wall time per stage, the verifier's reasons;
  - per iteration, a sample of its preference pairs (the shared prompt once, chosen and rejected side by side)
    and of its traces (sampled and evaluated), every step shown with its option, the formulas it cites, its
    claim and its verdict; invalid steps are marked and carry the verifier's reason. A select per section
    filters by verdict reason (plain inline JS).
The sample is small whatever the run's size (`max_pairs`, `max_traces` per iteration, drawn across the
verdict reasons so that every kind of failure shows up), with counts of everything not shown.

Cited formulas are resolved against the problems: the run's own data/*.jsonl (quickstart) and any passed in
(`problems=`, `--problems`); without its problem a step shows the indices it cites.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections import Counter, defaultdict
from pathlib import Path

from .io import UserError, read_json, read_jsonl, write_text
from .report import paired_cell, paired_note
from .trace import Problem, parse_trace

MAX_PAIRS = 6  # pairs shown per iteration
MAX_TRACES = 8  # traces shown per iteration and source (sampled, each eval set)
MAX_STEPS = 30  # steps shown per trace (the rest counted)
MAX_CHARS = 400  # longest thought / formula text shown in a step
STAGE_ORDER = ("generate", "verify", "pairs", "knowledge", "dpo", "eval")


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _short(text: str, n: int = MAX_CHARS) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= n else text[:n - 1] + "…"


def reason_category(verdict: dict | None) -> str:
    """A trace's verdict reason with step numbers, formula indices and quoted names taken out, so that traces
    failing the same way share it: 'valid', 'claim does not follow from the cited formulas', ..."""
    if not verdict:
        return "not verified"
    reason = verdict.get("trace_reason") or "unknown"
    if reason == "ok":
        return "valid"
    reason = re.sub(r"^step \d+: ", "", reason)
    reason = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "'…'", reason)  # repr'd strings, escapes too
    return re.sub(r"\d+(\.\d+)?", "N", reason)


# ------------------------------------------------------------------------------------------ reading a run

def _read_jsonl(path: Path) -> list[dict]:
    try:
        return read_jsonl(path) if path.is_file() else []
    except UserError:
        return []  # a half-written or foreign file: the page shows what it can


def _read_json(path: Path):
    try:
        return read_json(path) if path.is_file() else None
    except UserError:
        return None


def _iter_dirs(run: Path) -> list[tuple[int, Path]]:
    out = []
    for d in run.glob("iter_*"):
        m = re.fullmatch(r"iter_(\d+)", d.name)
        if m and d.is_dir():
            out.append((int(m.group(1)), d))
    return sorted(out)


def _eval_dirs(base: Path, prefix: str) -> list[tuple[str, Path]]:
    """(eval set name, folder) under base: eval_sft/<set>/ (prefix '') or iter_k/eval_<set>/ (prefix 'eval_')."""
    if not base.is_dir():
        return []
    out = []
    for d in sorted(base.iterdir()):
        if d.is_dir() and d.name.startswith(prefix) and (d / "metrics.json").is_file():
            out.append((d.name[len(prefix):], d))
    return out


def _stage_files(it_dir: Path) -> dict:
    """A running iteration's stage metrics: iter_k/stages/<stage>.json, in stage order."""
    got = {f.stem: _read_json(f) for f in sorted((it_dir / "stages").glob("*.json"))} if (it_dir / "stages").is_dir() \
        else {}
    return {k: got[k] for k in sorted(got, key=lambda n: STAGE_ORDER.index(n) if n in STAGE_ORDER else 99)
            if isinstance(got[k], dict)}


def _heldout(run: Path, config: dict) -> list[Problem]:
    """quickstart's extra held-out file (config data.heldout), found as written (relative to the working
    directory) or relative to the folder the run directory sits in (runs/demo -> the repository root)."""
    d = config.get("data") or {}
    name = d.get("heldout")
    if not isinstance(name, str) or not name:
        return []
    for path in (Path(name), run.resolve().parent.parent / name):
        if path.is_file():
            from .data import read_problem_file

            try:
                return read_problem_file(path, d.get("dataset"))
            except UserError:
                return []
    return []


def load_run(run_dir: str | Path, problems: list[Problem] | None = None) -> dict:
    """Everything the page shows, read from a run directory (a run in progress too: what is there)."""
    from .report import report_rows

    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"{run}: no such run directory")
    by_id: dict[str, Problem] = {}
    for f in sorted((run / "data").glob("*.jsonl")) if (run / "data").is_dir() else []:
        from .data import read_problems

        try:
            by_id.update({p.id: p for p in read_problems(f)})
        except UserError:
            pass
    config = None
    if (run / "config.yaml").is_file():
        import yaml

        from .config import read_yaml

        try:
            config = read_yaml((run / "config.yaml").read_text(encoding="utf-8"))
        except yaml.YAMLError:
            config = None
    by_id.update({p.id: p for p in _heldout(run, config or {})})
    for p in problems or []:
        by_id[p.id] = p
    timing = _read_json(run / "timing.json") or {}
    sft_eval = {name: _read_json(d / "metrics.json") for name, d in _eval_dirs(run / "eval_sft", "")}
    iterations = []
    for k, d in _iter_dirs(run):
        metrics = _read_json(d / "metrics.json")
        progress = (metrics or {}).get("stages") or _stage_files(d) or _read_json(d / "progress.json") or {}
        iterations.append({"iteration": k, "dir": d, "metrics": metrics, "stages": progress,
                           "evals": {name: ed for name, ed in _eval_dirs(d, "eval_")}})
    complete = [it["metrics"] for it in iterations if it["metrics"]]
    rows = report_rows(sft_eval or None, timing.get("sft_wall_s"), complete)
    return {"run": run, "config": config or {}, "problems": by_id, "timing": timing, "sft_eval": sft_eval,
            "iterations": iterations, "rows": rows,
            "sft_log": (_read_json(run / "sft" / "trainer_state.json") or {}).get("log_history", []),
            "dpo_logs": {it["iteration"]: (_read_json(run / "dpo" / f"iter_{it['iteration']}" / "trainer_state.json")
                                           or {}).get("log_history", []) for it in iterations}}


# ------------------------------------------------------------------------------------------ plots

def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.3, 2.5))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    return fig, ax


def _finish(fig, ax, legend=True) -> str:
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _png(fig)


def make_plots(data: dict) -> list[tuple[str, str]]:
    """(caption, data URI[, wide]) of each plot the run has data for; a wide one spans two columns."""
    plots = []
    rows = data["rows"]
    for name in sorted({r["set"] for r in rows}):
        sub = [r for r in rows if r["set"] == name]
        fig, ax = _figure(f"evaluation: {name} (greedy traces)")
        xs = [r["stage"] for r in sub]
        for key in ("accuracy", "step_validity", "trace_validity"):
            ax.plot(xs, [100 * (r[key] or 0.0) for r in sub], marker="o", label=key.replace("_", " "))
        ax.set_ylim(0, 102)
        ax.set_ylabel("%", fontsize=8)
        title = f"Eval set {name}: accuracy, step validity and trace validity after each stage"
        plots.append((title, _finish(fig, ax)))
    its = data["iterations"]
    ver = [(it["iteration"], it["stages"].get("verify")) for it in its if it["stages"].get("verify")]
    if ver:
        fig, ax = _figure("verify: the policy's sampled traces")
        xs = [f"iter_{k}" for k, _ in ver]
        for key in ("accuracy", "step_validity", "trace_validity"):
            ax.plot(xs, [100 * (v.get(key) or 0.0) for _, v in ver], marker="o", label=key.replace("_", " "))
        ax.set_ylim(0, 102)
        ax.set_ylabel("%", fontsize=8)
        plots.append(("Verification of the traces sampled in each iteration (the pairs are built from them)",
                      _finish(fig, ax)))
    pairs = [(it["iteration"], it["stages"].get("pairs")) for it in its if it["stages"].get("pairs")]
    if pairs:
        fig, ax = _figure("pairs: preference pairs by kind")
        kinds = sorted({k for _, p in pairs for k in (p.get("by_kind") or {})}) or ["pairs"]
        xs = [f"iter_{k}" for k, _ in pairs]
        bottom = [0] * len(pairs)
        for kind in kinds:
            ys = [(p.get("by_kind") or {}).get(kind, 0) if kind != "pairs" else p.get("pairs", 0) for _, p in pairs]
            ax.bar(xs, ys, bottom=bottom, label=kind)
            bottom = [b + y for b, y in zip(bottom, ys)]
        plots.append(("Preference pairs built in each iteration, by kind", _finish(fig, ax)))
    sft = [(h["step"], h["loss"]) for h in data["sft_log"] if "loss" in h and "step" in h]
    dpo = {k: [(h["step"], h["loss"]) for h in log if "loss" in h and "step" in h]
           for k, log in data["dpo_logs"].items()}
    if sft:
        fig, ax = _figure("SFT: training loss")
        ax.plot(*zip(*sft), lw=1.2)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_yscale("log")
        plots.append(("SFT training loss (sft/trainer_state.json)", _finish(fig, ax, legend=False)))
    if any(dpo.values()):
        fig, ax = _figure("DPO: training loss per iteration")
        for k, pts in sorted(dpo.items()):
            if pts:
                ax.plot(*zip(*pts), marker=".", lw=1.2, label=f"iter_{k}")
        ax.set_xlabel("optimizer step", fontsize=8)
        plots.append(("DPO training loss of each iteration (dpo/iter_k/trainer_state.json)", _finish(fig, ax)))
    q = [(it["iteration"], it["stages"].get("knowledge")) for it in its
         if (it["stages"].get("knowledge") or {}).get("ece") is not None]
    if q:
        fig, ax = _figure("q-hat: held-out calibration")
        xs = [f"iter_{k}" for k, _ in q]
        ax.plot(xs, [m.get("ece") for _, m in q], marker="o", label="ECE (lower is better)")
        ax.plot(xs, [m.get("auroc") or 0.0 for _, m in q], marker="s", label="AUROC")
        ax.set_ylim(0, 1.02)
        plots.append(("q-hat (the option-success predictor) on held-out steps", _finish(fig, ax)))
    walls = [(f"iter_{it['iteration']}", it["stages"]) for it in its if it["stages"]]
    if walls or data["timing"].get("sft_wall_s"):
        fig, ax = _figure("wall time per stage")
        xs = (["sft"] if data["timing"].get("sft_wall_s") else []) + [x for x, _ in walls]
        bottom = [0.0] * len(xs)
        if data["timing"].get("sft_wall_s"):
            ax.bar(["sft"], [data["timing"]["sft_wall_s"]], label="sft")
            bottom[0] = data["timing"]["sft_wall_s"]
        off = len(xs) - len(walls)
        for stage in STAGE_ORDER:
            ys = [0.0] * off + [float((s.get(stage) or {}).get("wall_s") or 0.0) for _, s in walls]
            if any(ys):
                ax.bar(xs, ys, bottom=bottom, label=stage)
                bottom = [b + y for b, y in zip(bottom, ys)]
        ax.set_ylabel("s", fontsize=8)
        plots.append(("Wall time of each stage", _finish(fig, ax)))
    reasons = data.get("reason_counts") or {}
    if reasons:
        total = Counter()
        for c in reasons.values():
            total.update(c)
        top = [r for r, _ in total.most_common(7)]
        fig, ax = _figure("verifier: why sampled traces fail")
        fig.set_size_inches(8.8, 2.5)
        xs = list(reasons)
        left = [0] * len(xs)
        for r in top:
            ys = [reasons[x].get(r, 0) for x in xs]
            ax.barh(xs, ys, left=left, label=_short(r, 48).replace("$", r"\$"))  # '$' starts mathtext
            left = [a + b for a, b in zip(left, ys)]
        ax.invert_yaxis()
        ax.set_xlabel("traces", fontsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        plots.append(("Verdict reasons of the sampled traces per iteration (the most frequent)", _png(fig), True))
    return plots


# ------------------------------------------------------------------------------------------ traces

def _formula(problem: Problem | None, index: int, derived: dict[int, tuple[str, bool]]) -> tuple[str, str]:
    """(label, text) of formula `index`: a premise, or the claim of an earlier step of the same trace."""
    if problem is not None and 0 <= index < len(problem.premises):
        fol = (problem.fol or {}).get("premises") or []
        text = problem.premises[index]
        if index < len(fol) and fol[index]:
            text = f"{fol[index]}  ({text})"
        return "premise", text
    if index in derived:
        claim, valid = derived[index]
        return ("step" if valid else "invalid step"), claim
    return "missing", "no such formula"


def render_trace(text: str, verdict: dict | None, problem: Problem | None, note: str = "") -> str:
    """One trace: its steps (option, cited formulas, claim, verdict; invalid steps marked), the answer line,
    and the raw text."""
    parsed = parse_trace(text or "")
    vsteps = {s.get("index"): s for s in (verdict or {}).get("steps") or []}
    P = len(problem.premises) if problem is not None else None
    derived: dict[int, tuple[str, bool]] = {}
    k = 0
    out = []
    for s in parsed.steps[:MAX_STEPS]:
        v = vsteps.get(s.index)
        valid = None if v is None else bool(v.get("valid"))
        claim = (v or {}).get("claim") or s.claim or ""
        if s.option == "CONCLUDE":
            code = (s.args or [None])[0]
            cites = f'<span class="cite">answer {esc({0: "TRUE", 1: "FALSE", 2: "UNKNOWN"}.get(code, code))}</span>'
        else:
            items = []
            for a in s.args or []:
                kind, ftext = _formula(problem, a, derived)
                items.append(f'<li class="f-{kind.replace(" ", "-")}"><b>[{a}]</b> {esc(_short(ftext))}</li>')
            cites = f'<ul class="cites">{"".join(items)}</ul>' if items else '<span class="muted">cites nothing</span>'
            if P is not None:
                derived[P + k] = (claim, bool(valid))
            k += 1
        mark = {True: ("ok", "✓ valid"), False: ("bad", "✗ invalid"), None: ("unk", "not verified")}[valid]
        reason = "" if valid or v is None else f'<div class="reason">{esc(v.get("reason"))}</div>'
        formula_no = f"→ [{P + k - 1}]" if P is not None and s.option != "CONCLUDE" else ""
        out.append(
            f'<div class="step {mark[0]}"><div class="head"><span class="idx">step {s.index}</span>'
            f'<span class="opt">{esc(s.option or "?")}</span><span class="fno">{formula_no}</span>'
            f'<span class="verdict">{mark[1]}</span></div>{reason}'
            f'<div class="row"><span class="lab">cites</span>{cites}</div>'
            f'<div class="row"><span class="lab">claim</span><span class="claim">{esc(_short(claim)) or "<i>none</i>"}'
            f'</span></div><div class="thought">{esc(_short(s.thought))}</div></div>')
    if len(parsed.steps) > MAX_STEPS:
        out.append(f'<div class="muted">… {len(parsed.steps) - MAX_STEPS} more steps (see the raw text)</div>')
    if not parsed.steps:
        out.append('<div class="muted">no Action line: no steps</div>')
    answer = parsed.final_answer or "none"
    tv = (verdict or {}).get("trace_reason")
    verdict_line = ("" if verdict is None else
                    f'<div class="tverdict {"ok" if tv == "ok" else "bad"}">trace '
                    f'{"valid" if tv == "ok" else "invalid: " + esc(tv)} · step validity '
                    f'{100 * float(verdict.get("step_validity") or 0):.0f}% · answer {esc(verdict.get("answer"))} '
                    f'({"correct" if verdict.get("correct") else "wrong"})</div>')
    return (f'<div class="trace">{verdict_line}{note}{"".join(out)}<div class="final">Final Answer: {esc(answer)}</div>'
            f'<details class="raw"><summary>raw text ({len(text or "")} chars)</summary><pre>{esc(text)}</pre>'
            f'</details></div>')


def _problem_head(problem: Problem | None, pid: str) -> str:
    if problem is None:
        return (f'<span class="pid">problem {esc(pid)}</span> '
                '<span class="muted">(not in the run\'s problem files)</span>')
    return (f'<span class="pid">problem {esc(pid)}</span> · {esc(problem.task)} · label <b>{esc(problem.label)}</b>'
            f'{" · " + str(problem.hops) + " hops" if problem.hops is not None else ""} · <span class="query">'
            f'{esc(problem.query)}</span>')


def _premises(problem: Problem | None) -> str:
    if problem is None:
        return ""
    fol = (problem.fol or {}).get("premises") or []
    lines = [f"[{i}] {p}" + (f"    FOL: {fol[i]}" if i < len(fol) and fol[i] else "")
             for i, p in enumerate(problem.premises)]
    return "\n".join(lines)


def sample_by_reason(items: list[dict], n: int) -> list[dict]:
    """Up to n items, round-robin over their `reason` categories (most frequent first), each pick the first item
    of its category whose problem is not shown yet (else the next in file order): every kind of verdict, on as
    many problems as the sample holds."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for it in items:
        groups[it["reason"]].append(it)
    order = sorted(groups, key=lambda r: (-len(groups[r]), r))
    out: list[dict] = []
    used: set = set()
    while len(out) < n and any(groups[r] for r in order):
        for r in order:
            if not groups[r] or len(out) >= n:
                continue
            pick = next((x for x in groups[r] if x.get("problem_id") not in used), groups[r][0])
            groups[r].remove(pick)
            used.add(pick.get("problem_id"))
            out.append(pick)
    return out


def _filter(section_id: str, counts: Counter, shown: Counter, what: str) -> str:
    opts = [f'<option value="">all reasons ({sum(shown.values())} shown of {sum(counts.values())} {what})</option>']
    for r, c in counts.most_common():
        opts.append(f'<option value="{esc(r)}">{esc(r)} ({shown.get(r, 0)} shown of {c})</option>')
    return (f'<label class="filter">filter by verdict reason: <select data-section="{section_id}" '
            f'onchange="oakFilter(this)">{"".join(opts)}</select></label>')


def _step_failure(verdict: dict | None) -> bool:
    """Whether a reasoning step of the trace is invalid (what the page marks)."""
    return any(not s.get("valid") and s.get("option") != "CONCLUDE" for s in (verdict or {}).get("steps") or [])


def render_pairs(it: dict, data: dict, max_pairs: int) -> str:
    d = it["dir"]
    pairs = _read_jsonl(d / "pairs.jsonl")
    if not pairs:
        return '<p class="muted">no pairs.jsonl</p>' if not (d / "pairs.jsonl").is_file() else '<p>0 pairs</p>'
    verdicts = {(v.get("problem_id"), v.get("sample")): v for v in _read_jsonl(d / "verdicts.jsonl")}
    items = []
    for i, p in enumerate(pairs):
        rv = verdicts.get((p.get("problem_id"), p.get("rejected_sample")))
        items.append({"i": i, "pair": p, "rv": rv, "reason": reason_category(rv), "problem_id": p.get("problem_id")})
    # Pairs whose rejected side fails at a step first: they show what the verifier marks.
    sample = sample_by_reason([x for x in items if _step_failure(x["rv"])], max_pairs)
    if len(sample) < max_pairs:
        sample += sample_by_reason([x for x in items if not _step_failure(x["rv"])], max_pairs - len(sample))
    counts = Counter(x["reason"] for x in items)
    shown = Counter(x["reason"] for x in sample)
    sid = f"pairs-{it['iteration']}"
    cards = []
    from .verify import verify_one

    timeout = ((data["config"].get("verify") or {}).get("trace_timeout_s")) or 10.0
    for x in sample:
        p, rv = x["pair"], x["rv"]
        problem = data["problems"].get(p.get("problem_id"))
        cv = verdicts.get((p.get("problem_id"), p.get("chosen_sample"))) if p.get("chosen_sample") is not None else None
        chosen_note = ""
        if cv is None and problem is not None:  # the gold trace: verified here, it is in no verdicts file
            cv = verify_one(problem, p.get("chosen", ""), timeout)
            chosen_note = '<div class="muted">gold trace (verified for this page)</div>'
        rnote = ('<div class="muted">rejected side as trained: cut after its first invalid step; the verdict is '
                 'the whole sample\'s</div>' if p.get("rejected_partial") and not p.get("rejected_truncated") else "")
        if p.get("rejected_truncated"):
            rnote = '<div class="muted">rejected sample ran out of tokens (max_new_tokens)</div>'
        cards.append(
            f'<div class="card pair" data-reason="{esc(x["reason"])}"><div class="chead">pair {x["i"]} · '
            f'{_problem_head(problem, p.get("problem_id"))} · kind <b>{esc(p.get("kind"))}</b> · step validity '
            f'chosen {_pct(p.get("chosen_step_validity"))} / rejected {_pct(p.get("rejected_step_validity"))}</div>'
            f'<details class="prompt"><summary>shared prompt ({len(p.get("prompt", ""))} chars)'
            f'{"; premises resolved below" if problem else ""}</summary><pre>{esc(p.get("prompt"))}</pre></details>'
            f'<div class="sides"><div class="side"><h4 class="chosen">chosen'
            f'{" (sample " + str(p.get("chosen_sample")) + ")" if p.get("chosen_sample") is not None else ""}</h4>'
            f'{render_trace(p.get("chosen", ""), cv, problem, chosen_note)}</div>'
            f'<div class="side"><h4 class="rejected">rejected (sample {esc(p.get("rejected_sample"))})</h4>'
            f'{render_trace(p.get("rejected", ""), rv, problem, rnote)}</div></div></div>')
    return (f'<div class="section" id="{sid}"><h3>Preference pairs: {len(sample)} shown of {len(pairs)}</h3>'
            f'{_filter(sid, counts, shown, "pairs")}{"".join(cards)}</div>')


def _pct(v) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{100 * v:.0f}%"


def render_traces(source: str, folder: Path, data: dict, max_traces: int, sid: str) -> tuple[str, Counter]:
    traces = _read_jsonl(folder / "traces.jsonl")
    verdicts = _read_jsonl(folder / "verdicts.jsonl")
    if not traces:
        return "", Counter()
    by_key = {(v.get("problem_id"), v.get("sample")): v for v in verdicts}
    items = []
    for i, t in enumerate(traces):
        v = by_key.get((t.get("problem_id"), t.get("sample", 0)))
        items.append({"i": i, "t": t, "v": v, "reason": reason_category(v), "problem_id": t.get("problem_id")})
    sample = sample_by_reason(items, max_traces)
    counts = Counter(x["reason"] for x in items)
    shown = Counter(x["reason"] for x in sample)
    cards = []
    for x in sample:
        t = x["t"]
        problem = data["problems"].get(t.get("problem_id"))
        cards.append(
            f'<div class="card" data-reason="{esc(x["reason"])}"><div class="chead">trace {x["i"]} · sample '
            f'{esc(t.get("sample", 0))} · {_problem_head(problem, t.get("problem_id"))}'
            f'{" · " + str(t["num_tokens"]) + " tokens" if t.get("num_tokens") is not None else ""}</div>'
            + (f'<details class="prompt"><summary>premises</summary><pre>{esc(_premises(problem))}</pre></details>'
               if problem else "")
            + f'{render_trace(t.get("text", ""), x["v"], problem)}</div>')
    return (f'<div class="section" id="{sid}"><h3>{esc(source)}: {len(sample)} shown of {len(traces)} traces</h3>'
            f'{_filter(sid, counts, shown, "traces")}<div class="grid2">{"".join(cards)}</div></div>', counts)


# ------------------------------------------------------------------------------------------ tables

def _fmt(v, pct=True) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{100 * v:.1f}%" if pct else f"{v:.3f}"
    return esc(v)


def metrics_table(rows: list[dict]) -> str:
    head = ("stage", "eval set", "accuracy", "step validity", "trace validity", "mended / broken", "pairs",
            "wall time (s)", "q-hat ECE", "q-hat AUROC")
    body = []
    for r in rows:
        wall = f"{r['wall_s']:.0f}" if isinstance(r.get("wall_s"), (int, float)) else "-"
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
            esc(r["stage"]), esc(r["set"]), _fmt(r["accuracy"]), _fmt(r["step_validity"]), _fmt(r["trace_validity"]),
            esc(paired_cell(r)), _fmt(r["pairs"]), wall, _fmt(r.get("qhat_ece"), pct=False),
            _fmt(r.get("qhat_auroc"), pct=False))) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(head)}" class="muted">no stage evaluated yet</td></tr>')
    return (f'<table class="metrics"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def stages_table(data: dict) -> str:
    head = ("iteration", "generate", "verify: step / trace validity, accuracy", "timeouts", "pairs (by kind)",
            "q-hat ECE / AUROC", "DPO", "eval", "wall (s)")
    body = []
    for it in data["iterations"]:
        s = it["stages"]
        g, v, pa, q, dpo, ev = (s.get(k) or {} for k in STAGE_ORDER)
        kinds = ", ".join(f"{esc(k)} {n}" for k, n in (pa.get("by_kind") or {}).items())
        dpo_txt = ("-" if not dpo else esc(dpo.get("skipped")) if dpo.get("skipped") else
                   f"{dpo.get('steps', '-')} steps"
                   + (f", loss {dpo['train_loss']:.3g}" if isinstance(dpo.get("train_loss"), (int, float)) else "")
                   + (f", reward accuracy {_fmt(float(dpo['rewards_accuracies_last']))}"
                      if isinstance(dpo.get("rewards_accuracies_last"), (int, float)) else ""))
        evs = "; ".join(f"{esc(n)}: {_fmt((m or {}).get('trace_validity'))} valid" for n, m in ev.items()
                        if isinstance(m, dict))
        wall = sum(float((s.get(k) or {}).get("wall_s") or 0.0) for k in STAGE_ORDER)
        cells = (f"iter_{it['iteration']}" + ("" if it["metrics"] else " (running)"),
                 f"{g.get('traces', '-')} traces" if g else "-",
                 f"{_fmt(v.get('step_validity'))} / {_fmt(v.get('trace_validity'))}, {_fmt(v.get('accuracy'))}" if v else "-",
                 _fmt(v.get("timeouts")) if v else "-",
                 f"{pa.get('pairs', '-')}" + (f" ({kinds})" if kinds else "") if pa else "-",
                 f"{_fmt(q.get('ece'), False)} / {_fmt(q.get('auroc'), False)}" if q else "-",
                 dpo_txt, evs or "-", f"{wall:.0f}")
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        return ""
    return (f'<table class="metrics"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


# ------------------------------------------------------------------------------------------ page

def external_refs(page: str) -> list[str]:
    """What in a page would load from outside it: URL attributes (src, href, ...) that are neither in-page
    anchors nor data: URIs, CSS url() / @import (in <style> or style attributes) that are not data:, and
    <link>/<iframe>/<object>/<embed>/<base> tags. Text on the page (a trace that writes a URL) loads nothing.
    The report's pages have none (tests and benchmarks/html_report.py check it)."""
    from html.parser import HTMLParser

    found: list[str] = []
    css: list[str] = []

    class Refs(HTMLParser):
        in_style = False

        def handle_starttag(self, tag, attrs):
            self.in_style = tag == "style"
            if tag in ("link", "iframe", "object", "embed", "base"):
                found.append(f"<{tag}>")
            for k, v in attrs:
                if v is None:
                    continue
                if k == "style":
                    css.append(v)
                elif k in ("src", "href", "srcset", "action", "poster", "data", "formaction") and \
                        not (v.startswith("#") or v.startswith("data:")):
                    found.append(f"<{tag} {k}={v[:60]}>")

        def handle_endtag(self, tag):
            self.in_style = False

        def handle_data(self, data):
            if self.in_style:
                css.append(data)

    Refs().feed(page)
    for text in css:
        for m in re.finditer(r"url\(\s*['\"]?([^)'\"]*)", text):
            if not m.group(1).startswith("data:"):
                found.append(f"url({m.group(1)[:60]})")
        found += [m.group(0)[:60] for m in re.finditer(r"@import[^;]*", text)]
    return found


CSS = """
body{font:13px/1.4 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f4f5f7}
header{background:#1d2330;color:#fff;padding:10px 18px}header h1{font-size:18px;margin:0 0 2px}
header .sub{color:#b9c0cc;font-size:12px}nav{margin-top:4px}nav a{color:#9cc4ff;margin-right:12px;font-size:12px}
main{padding:10px 18px}h2{font-size:16px;margin:18px 0 6px;border-bottom:2px solid #d5d9e0;padding-bottom:2px}
h3{font-size:14px;margin:12px 0 4px}table.metrics{border-collapse:collapse;background:#fff;font-size:12px}
table.metrics th,table.metrics td{border:1px solid #d5d9e0;padding:3px 8px;text-align:left}
table.metrics th{background:#e9ecf1}table.metrics tr:nth-child(even) td{background:#fafbfc}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:8px}
.plots figure{margin:0;background:#fff;border:1px solid #d5d9e0;padding:4px}
.plots figure.wide{grid-column:span 2}.plots img{width:100%;display:block}.plots figcaption{font-size:11px;color:#555}
.card{background:#fff;border:1px solid #d5d9e0;border-radius:4px;margin:8px 0;padding:6px 8px}
.chead{font-size:12px;margin-bottom:4px}.pid{font-weight:600}.query{font-style:italic}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:8px}.grid2{display:grid;grid-template-columns:1fr 1fr;gap:0 8px}
h4{margin:4px 0;font-size:13px}h4.chosen{color:#17733a}h4.rejected{color:#b3261e}
.step{border:1px solid #dfe3e8;border-left:4px solid #9aa3ad;border-radius:3px;margin:3px 0;padding:2px 6px}
.step.ok{border-left-color:#2e9d57}.step.bad{border-left-color:#d93025;background:#fdecea;border-color:#f3b8b3}
.step .head{display:flex;gap:8px;align-items:baseline}.idx{color:#666;font-size:11px}
.opt{font-family:monospace;font-weight:700;background:#eef1f5;padding:0 4px;border-radius:3px}
.fno{color:#666;font-family:monospace;font-size:11px}.verdict{margin-left:auto;font-weight:700;font-size:12px}
.step.ok .verdict{color:#2e9d57}.step.bad .verdict{color:#d93025}.step.unk .verdict{color:#888}
.reason{color:#b3261e;font-weight:600;font-size:12px}.row{display:flex;gap:6px;font-size:12px}
.lab{color:#888;min-width:38px;font-size:11px}.cites{margin:0;padding:0;list-style:none}
.cites li{font-family:monospace;font-size:11px}.cites li.f-invalid-step,.cites li.f-missing{color:#b3261e}
.cites li.f-step{color:#1a5fb4}.claim{font-weight:600}.thought{color:#777;font-size:11px;display:none}
body.thoughts .thought{display:block}.final{font-family:monospace;font-size:12px;margin-top:3px}
.tverdict{font-size:12px;font-weight:600;margin-bottom:3px}.tverdict.ok{color:#17733a}.tverdict.bad{color:#b3261e}
.muted{color:#888;font-size:11px}details.prompt,details.raw{font-size:11px;margin:2px 0}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f8fa;border:1px solid #e3e6ea;padding:4px;
max-height:320px;overflow:auto;font-size:11px;margin:2px 0}.filter{font-size:12px}.filter select{font-size:12px}
.iter{background:#eceff3;border:1px solid #d5d9e0;border-radius:4px;padding:0 10px 8px;margin:10px 0}
.iter>summary{font-size:15px;font-weight:700;padding:6px 0;cursor:pointer}.toggle{font-size:12px;color:#fff}
"""

JS = """
function oakFilter(sel){var s=document.getElementById(sel.dataset.section);var v=sel.value;
s.querySelectorAll('.card').forEach(function(c){c.style.display=(!v||c.dataset.reason===v)?'':'none';});}
function oakThoughts(cb){document.body.classList.toggle('thoughts',cb.checked);}
"""


def build_html(data: dict, title: str | None = None, max_pairs: int = MAX_PAIRS, max_traces: int = MAX_TRACES) -> str:
    cfg = data["config"]
    task = (cfg.get("data") or {}).get("dataset", "?")
    style = (cfg.get("format") or {}).get("style", "?")
    model = (cfg.get("model") or {}).get("name_or_path") or "built-in tiny model"
    title = title or f"OaK-DPO run {data['run'].name}"
    sections = []
    reason_counts: dict[str, Counter] = {}
    iter_html = []
    for it in data["iterations"]:
        k = it["iteration"]
        parts = [render_pairs(it, data, max_pairs)]
        html_s, counts = render_traces("Traces sampled by the policy (verify stage)", it["dir"], data, max_traces,
                                       f"traces-{k}")
        parts.append(html_s)
        if counts:
            reason_counts[f"iter_{k}"] = Counter({r: c for r, c in counts.items() if r != "valid"})
        for name, folder in it["evals"].items():
            parts.append(render_traces(f"Evaluation traces after iteration {k}: {name}", folder, data, max_traces,
                                       f"eval-{k}-{name}")[0])
        qpng = it["dir"] / "qhat_reliability.png"
        if qpng.is_file():
            uri = "data:image/png;base64," + base64.b64encode(qpng.read_bytes()).decode("ascii")
            parts.append(f'<h3>q-hat reliability (held-out steps)</h3><img src="{uri}" style="max-width:420px">')
        iter_html.append(f'<details class="iter" id="iter-{k}"{" open" if k == data["iterations"][0]["iteration"] else ""}>'
                         f'<summary>Iteration {k}</summary>{"".join(parts)}</details>')
    sft_parts = [render_traces(f"Evaluation traces of the SFT model: {name}", run_dir, data, max_traces,
                               f"eval-sft-{name}")[0]
                 for name, run_dir in _eval_dirs(data["run"] / "eval_sft", "")]
    data["reason_counts"] = reason_counts
    plots = make_plots(data)
    nav = "".join(['<a href="#metrics">metrics</a><a href="#plots">plots</a>']
                  + [f'<a href="#iter-{it["iteration"]}">iteration {it["iteration"]}</a>' for it in data["iterations"]]
                  + (['<a href="#sft-traces">SFT traces</a>'] if sft_parts else []))
    note = paired_note(data["rows"])
    sections.append(f'<h2 id="metrics">Metrics</h2><p class="muted">Strict verification of greedy traces on held-out '
                    f'problems, after SFT and after each OaK iteration (as report.md).</p>{metrics_table(data["rows"])}'
                    + (f'<p class="muted">{esc(note)}</p>' if note else ''))
    st = stages_table(data)
    if st:
        sections.append(f'<h3>Stages of each iteration</h3>{st}')
    if (data["run"] / "config.yaml").is_file():
        sections.append(f'<details class="prompt"><summary>config.yaml</summary><pre>'
                        f'{esc((data["run"] / "config.yaml").read_text(encoding="utf-8", errors="replace"))}</pre></details>')
    figures = []
    for cap, uri, *wide in plots:
        cls = ' class="wide"' if wide and wide[0] else ""
        figures.append(f'<figure{cls}><img src="{uri}" alt="{esc(cap)}"><figcaption>{esc(cap)}</figcaption></figure>')
    sections.append('<h2 id="plots">Plots</h2><div class="plots">' + "".join(figures) + "</div>")
    sections.append('<h2>Iterations</h2><p class="muted">Each step: its option, the formulas it cites (premises, or '
                    'earlier steps\' claims), its claim and the verifier\'s verdict; invalid steps are red with the '
                    'reason. Cited formulas: <b>[n]</b> a premise, <span style="color:#1a5fb4">[n]</span> a valid earlier step\'s '
                    'claim, <span style="color:#b3261e">[n]</span> an invalid step\'s or a missing one. '
                    '<label><input type="checkbox" onchange="oakThoughts(this)"> show each step\'s thought'
                    '</label></p>' + ("".join(iter_html) or '<p class="muted">no iteration yet</p>'))
    if sft_parts:
        sections.append('<h2 id="sft-traces">SFT model</h2>' + "".join(sft_parts))
    sub = (f"{esc(data['run'])} · task {esc(task)} · {esc(style)} style · policy {esc(model)} · "
           f"{len(data['iterations'])} iteration(s) · {len(data['problems'])} problems known")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body>'
            f'<header><h1>{esc(title)}</h1><div class="sub">{sub}</div><nav>{nav}</nav></header>'
            f'<main>{"".join(sections)}</main><script>{JS}</script></body></html>')


def write_html_report(run_dir: str | Path, out_path: str | Path | None = None, problems: list[Problem] | None = None,
                      title: str | None = None, max_pairs: int = MAX_PAIRS, max_traces: int = MAX_TRACES) -> Path:
    """Write RUN_DIR/report.html (or out_path) from the run's files; returns the path."""
    data = load_run(run_dir, problems)
    out = Path(out_path) if out_path else Path(run_dir) / "report.html"
    write_text(out, build_html(data, title, max_pairs, max_traces))
    return out


def run_report(args) -> int:
    """`oakdpo report RUN_DIR [--html]`: metrics.json, report.md and report.png from the run's files; with --html
    report.html."""
    from .report import write_report

    from .io import UserError

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    if not (run_dir / "eval_sft").is_dir() and not any(run_dir.glob("iter_*")):
        raise UserError(f"{run_dir}: not a run directory (no iter_*/ or eval_sft/ of oakdpo oak or quickstart)")
    problems = []
    for f in args.problems or []:
        from .data import read_problem_file

        problems += read_problem_file(f, args.dataset)
    if args.html:
        out = write_html_report(args.run_dir, args.output, problems=problems, max_pairs=args.pairs,
                                max_traces=args.traces)
        print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    else:
        data = load_run(args.run_dir, problems)
        write_report(data["rows"], args.run_dir)
        print(f"wrote {Path(args.run_dir) / 'report.md'}, report.png and metrics.json ({len(data['rows'])} rows)")
    return 0


def add_cli(sub) -> None:
    """`oakdpo report RUN_DIR [--html]`."""
    r = sub.add_parser("report", help="Write a run's report from its files: metrics.json, report.md and report.png, or "
                                      "with --html one self-contained report.html to browse.")
    r.add_argument("run_dir", help="Run directory (OUT of oakdpo quickstart / oakdpo oak).")
    r.add_argument("--html", action="store_true", help="Write RUN_DIR/report.html: metrics, plots of every stage, "
                   "and per iteration a sample of pairs and traces with every step's verdict.")
    r.add_argument("-o", "--output", default=None, help="--html: the page to write (default RUN_DIR/report.html).")
    r.add_argument("--problems", action="append", default=[], metavar="FILE",
                   help="Problem files that resolve the cited premises (the run's data/*.jsonl are read anyway); "
                        "repeatable.")
    r.add_argument("--dataset", default=None, help="Task that reads a --problems file in its own format.")
    r.add_argument("--pairs", type=int, default=MAX_PAIRS, help="Pairs shown per iteration.")
    r.add_argument("--traces", type=int, default=MAX_TRACES, help="Traces shown per iteration and source.")
    r.set_defaults(func=run_report)
