"""OUT/report.html (oakdpo.html_report) and `oakdpo report`: built from a synthetic run directory (gold and
mutated traces, verified for real), no training."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oakdpo.cli import main
from oakdpo.config import Config, save_config
from oakdpo.data import write_problems
from oakdpo.html_report import external_refs, reason_category, write_html_report
from oakdpo.io import write_json, write_jsonl
from oakdpo.report import report_rows, sign_test, write_report
from oakdpo.tasks import get_task
from oakdpo.trace import parse_trace
from oakdpo.verify import summarize, verify_traces

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = '<script>alert(1)</script><img src="http://example.com/x.png"> url(http://example.com/y)'


def _break_last_step(text: str) -> str:
    """The last reasoning step cites what the first one cites: invalid, 'claim does not follow ...'."""
    steps = [s for s in parse_trace(text).steps if not s.is_conclude]
    s = steps[-1]
    line = text[s.span[0]:s.span[1]]
    new = re.sub(r'args="[^"]*"', f'args="[{", ".join(map(str, steps[0].args))}]"', line)
    return text[:s.span[0]] + new + text[s.span[1]:]


def _make_run(root: Path, n_problems: int = 6, copies: int = 1) -> dict:
    from oakdpo.tasks.prontoqa.generator import generate_problems

    problems = generate_problems(n_problems + 3, hops=(2, 3), seed=11)
    train, val = problems[:n_problems], problems[n_problems:]
    write_problems(root / "data" / "train.jsonl", train)
    write_problems(root / "data" / "val.jsonl", val)
    cfg = Config()
    cfg.format.style = "natural"
    save_config(cfg, root / "config.yaml")
    task = get_task("prontoqa")
    traces = []
    for p in train:
        gold = task.gold_trace(p, "natural")
        traces += [{"problem_id": p.id, "sample": 0, "text": gold, "num_tokens": 50},
                   {"problem_id": p.id, "sample": 1, "text": _break_last_step(gold), "num_tokens": 50}]
    traces.append({"problem_id": train[0].id, "sample": 2, "text": HOSTILE, "num_tokens": 9})
    verdicts = verify_traces(train, traces, progress=False)
    it = root / "iter_0"
    write_jsonl(it / "traces.jsonl", traces)
    write_jsonl(it / "verdicts.jsonl", verdicts)
    pairs = []
    for p in train:
        system, user = task.prompt(p, "natural")
        by_sample = {t["sample"]: t for t in traces if t["problem_id"] == p.id}
        v1 = next(v for v in verdicts if v["problem_id"] == p.id and v["sample"] == 1)
        pairs += [{"problem_id": p.id, "prompt": f"{system}\n\n{user}", "chosen": by_sample[0]["text"],
                   "rejected": by_sample[1]["text"], "kind": "valid_vs_invalid", "rejected_partial": False,
                   "rejected_truncated": False, "chosen_sample": 0, "rejected_sample": 1, "chosen_step_validity": 1.0,
                   "rejected_step_validity": v1["step_validity"]}] * copies
    write_jsonl(it / "pairs.jsonl", pairs)
    ev_traces = [{"problem_id": p.id, "sample": 0, "text": task.gold_trace(p, "natural")} for p in val]
    ev_verdicts = verify_traces(val, ev_traces, progress=False)
    ev = summarize(ev_verdicts)
    write_jsonl(it / "eval_val" / "traces.jsonl", ev_traces)
    write_jsonl(it / "eval_val" / "verdicts.jsonl", ev_verdicts)
    ev = {**ev, "problems": len(val), "invalid_ids": []}
    write_json(it / "eval_val" / "metrics.json", ev)
    write_json(root / "eval_sft" / "val" / "metrics.json", {**ev, "trace_validity": 0.5, "invalid_ids": [val[0].id]})
    stages = {"generate": {"wall_s": 3.0, "traces": len(traces)}, "verify": {"wall_s": 0.5, **summarize(verdicts)},
              "pairs": {"wall_s": 0.1, "pairs": len(pairs), "by_kind": {"valid_vs_invalid": len(pairs)}},
              "knowledge": {"wall_s": 1.0, "ece": 0.05, "auroc": 0.8},
              "dpo": {"wall_s": 9.0, "train_loss": 0.69, "steps": 2, "rewards_accuracies_last": 0.5},
              "eval": {"wall_s": 2.0, "val": {"trace_validity": ev["trace_validity"]}}}
    write_json(it / "progress.json", stages)
    write_json(it / "metrics.json", {"iteration": 0, "policy": "sft", "output": "dpo/iter_0", "stages": stages,
                                     "eval": {"val": ev}})
    write_json(root / "sft" / "trainer_state.json", {"log_history": [{"step": i, "loss": 2.0 / i} for i in range(1, 6)]})
    write_json(root / "dpo" / "iter_0" / "trainer_state.json",
               {"log_history": [{"step": 1, "loss": 0.69}, {"step": 2, "loss": 0.6}]})
    write_json(root / "timing.json", {"sft_wall_s": 30.0})
    return {"train": train, "val": val, "traces": traces, "verdicts": verdicts, "pairs": pairs}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report") / "run"
    info = _make_run(root)
    write_html_report(root)
    return root, info


def _page(root: Path) -> str:
    return (root / "report.html").read_text(encoding="utf-8")


def test_page_is_self_contained_and_escapes_model_text(run):
    root, _ = run
    page = _page(root)
    assert external_refs(page) == []
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) >= 6  # eval, verify, pairs, SFT, DPO, q-hat, ...
    assert page.count("<script>") == 1  # the filter's own inline script


def test_metrics_and_stage_tables(run):
    root, _ = run
    page = _page(root)
    table = page[page.index('<table class="metrics">'):page.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in rows[1:]]
    assert [c[:2] for c in cells] == [["sft", "val"], ["iter_0", "val"]]
    assert cells[0][4] == "50.0%" and cells[1][4] == "100.0%"  # trace validity after SFT / after iteration 0
    assert cells[0][5] == "-" and cells[1][5] == "1 / 0 (p 1)"  # against SFT: one problem mended, none broken
    assert cells[1][6] == "6"  # pairs
    assert "eval set&#x27;s first stage and valid at this one, and the reverse (val: sft)" in page
    assert "0.69 loss" not in page and "2 steps, loss 0.69, reward accuracy 50.0%" in page


def test_pairs_show_each_step_with_cites_claim_and_verdict(run):
    root, info = run
    page = _page(root)
    pairs = re.findall(r'<div class="card pair".*?(?=<div class="card pair"|<div class="section")', page, re.S)
    assert len(pairs) == 6
    first = info["pairs"][0]
    card = next(c for c in pairs if f"problem {first['problem_id']}" in c)
    # the shared prompt once, chosen and rejected side by side
    assert card.count("<summary>shared prompt") == 1
    assert card.count('<div class="side">') == 2
    chosen, rejected = card.split('<h4 class="rejected">')
    # every step of the chosen (gold) trace is valid; the rejected trace's last reasoning step is marked
    rv = next(v for v in info["verdicts"] if v["problem_id"] == first["problem_id"] and v["sample"] == 1)
    bad = [s for s in rv["steps"] if not s["valid"] and s["option"] != "CONCLUDE"]
    assert 'class="step bad"' not in chosen and chosen.count('class="step ok"') == len(rv["steps"])
    assert rejected.count('class="step bad"') >= len(bad) == 1
    assert f'<div class="reason">{html.escape(bad[0]["reason"])}</div>' in rejected
    # the cited formulas: premises by their text, an earlier step by its claim
    problem = next(p for p in info["train"] if p.id == first["problem_id"])
    step0 = rv["steps"][0]
    for a in step0["args"]:
        assert f"<b>[{a}]</b> {html.escape(problem.premises[a])}" in rejected
    assert f'<span class="claim">{html.escape(step0["claim"])}</span>' in rejected
    assert '<span class="opt">MODUS_PONENS</span>' in rejected


def test_filters_by_verdict_reason_with_counts(run):
    root, info = run
    page = _page(root)
    sec = page[page.index('id="traces-0"'):page.index('id="eval-0-val"')]
    reasons = {}
    for v in info["verdicts"]:
        reasons[reason_category(v)] = reasons.get(reason_category(v), 0) + 1
    for r, n in reasons.items():
        e = re.escape(html.escape(r))
        assert re.search(rf'<option value="{e}">{e} \(\d+ shown of {n}\)</option>', sec), r
    cards = re.findall(r'<div class="card" data-reason="([^"]*)"', sec)
    assert set(map(html.unescape, cards)) == set(reasons)  # the sample holds every reason
    assert "function oakFilter(sel)" in page


def test_long_runs_keep_the_page_small(tmp_path):
    root = tmp_path / "big"
    info = _make_run(root, n_problems=40, copies=50)  # 2,000 pairs
    page = write_html_report(root, max_pairs=5, max_traces=6).read_text(encoding="utf-8")
    assert len(info["pairs"]) == 2000
    assert "Preference pairs: 5 shown of 2000" in page
    assert page.count('<div class="card pair"') == 5
    assert len(set(re.findall(r'<div class="card pair".*?problem (gen-[\w-]+)', page))) == 5  # distinct problems
    assert len(page.encode()) < 600_000


def test_reason_categories():
    assert reason_category({"trace_reason": "ok"}) == "valid"
    assert reason_category({"trace_reason": "step 3: cites its own formula 17"}) == "cites its own formula N"
    assert reason_category({"trace_reason": "step 0: unknown predicate 'Dependnet' (not in the premises or query)"}) \
        == "unknown predicate '…' (not in the premises or query)"
    assert reason_category(None) == "not verified"


def test_model_text_in_a_verdict_reason_neither_breaks_the_plots_nor_leaks_into_the_categories(tmp_path):
    root = tmp_path / "math"
    info = _make_run(root, n_problems=2)
    text = 'Thought: x.\nAction: <Option type="CONCLUDE" args="[0]" />\nFinal Answer: it\'s $\\frac{$ "\nFinal Answer: TRUE\n'
    (verdict,) = verify_traces(info["train"][:1], [{"problem_id": info["train"][0].id, "sample": 3, "text": text}],
                               progress=False)
    assert "$" in verdict["trace_reason"]
    assert reason_category(verdict) == "N Final Answer lines ('…', '…'); need exactly N"
    it = root / "iter_0"
    write_jsonl(it / "traces.jsonl", info["traces"] + [{"problem_id": info["train"][0].id, "sample": 3, "text": text,
                                                        "num_tokens": 9}])
    write_jsonl(it / "verdicts.jsonl", info["verdicts"] + [verdict])
    page = write_html_report(root).read_text(encoding="utf-8")
    assert "N Final Answer lines" in page and "\\frac{$" not in page.split("<body")[0]


def test_report_cli(run, tmp_path, capsys):
    root = tmp_path / "run"
    shutil.copytree(run[0], root)
    (root / "report.html").unlink()
    assert main(["report", "--html", str(root)]) == 0
    assert (root / "report.html").is_file() and "wrote" in capsys.readouterr().out
    assert main(["report", str(root)]) == 0
    assert "| iter_0 | val |" in (root / "report.md").read_text() and (root / "report.png").is_file()
    assert main(["report", "--html", str(root / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2  # nothing to report: one line, no report written
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path / 'empty'}: not a run directory (no iter_*/ or "
                                               "eval_sft/ of oakdpo oak or quickstart)")
    assert list((tmp_path / "empty").iterdir()) == []


def test_page_without_problem_files_still_renders(run, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(run[0], root)
    shutil.rmtree(root / "data")
    page = write_html_report(root).read_text(encoding="utf-8")
    assert "not in the run's problem files" in page and 'class="step bad"' in page
    assert external_refs(page) == []


@pytest.mark.slow
def test_headless_chromium_renders_the_page(run):
    """benchmarks/html_report.py: Chromium (installed from Debian's packages when missing) screenshots the page."""
    if shutil.which("chromium") is None and shutil.which("apt-get") is None:
        pytest.skip("no chromium and no apt-get")
    root, _ = run
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "html_report.py"), str(root)], capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["passed"] and summary["screenshot_bytes"] > 20_000


def test_running_iteration_reads_its_stage_files(run, tmp_path):
    """An iteration without metrics.json yet: its stages/<name>.json give the stage table; no metrics row."""
    root = tmp_path / "run"
    shutil.copytree(run[0], root)
    it = root / "iter_0"
    stages = json.loads((it / "progress.json").read_text())
    (it / "metrics.json").unlink()
    (it / "progress.json").unlink()
    for name in ("generate", "verify", "pairs"):
        write_json(it / "stages" / f"{name}.json", stages[name])
    page = write_html_report(root).read_text(encoding="utf-8")
    assert "<td>iter_0 (running)</td><td>13 traces</td>" in page
    assert "<td>iter_0</td><td>val</td>" not in page  # no eval yet
    assert "Preference pairs: 6 shown of 6" in page


@pytest.mark.parametrize("mended, broken, p", [(0, 0, 1.0), (1, 2, 1.0), (1, 1, 1.0), (5, 0, 0.0625),
                                               (0, 6, 0.03125), (10, 0, 2 / 1024), (2, 9, 0.0654296875)])
def test_sign_test(mended, broken, p):
    assert sign_test(mended, broken) == pytest.approx(p)


def _eval(invalid, n=20):
    return {"accuracy": 1.0, "step_validity": 1.0, "trace_validity": 1 - len(invalid) / n, "problems": n,
            "invalid_ids": sorted(invalid)}


def test_report_pairs_each_stage_with_its_sets_first(tmp_path):
    sft = {"val": _eval({"a", "b", "c"}), "heldout": _eval({"x"}, n=300)}
    iters = [{"iteration": 0, "stages": {"pairs": {"pairs": 7}},
              "eval": {"val": _eval({"b", "d"}), "heldout": _eval(set(), n=300)}},
             {"iteration": 1, "stages": {}, "eval": {"val": _eval(set()), "heldout": {"trace_validity": 1.0}}}]
    rows = report_rows(sft, 10.0, iters)
    got = {(r["stage"], r["set"]): (r.get("against"), r.get("mended"), r.get("broken")) for r in rows}
    assert got == {("sft", "val"): (None, None, None), ("sft", "heldout"): (None, None, None),
                   ("iter_0", "val"): ("sft", 2, 1), ("iter_0", "heldout"): ("sft", 1, 0),
                   ("iter_1", "val"): ("sft", 3, 0),
                   ("iter_1", "heldout"): (None, None, None)}  # written before invalid_ids: not paired
    assert [r["sign_p"] for r in rows if r["stage"] == "iter_1" and r["set"] == "val"] == [0.25]
    # an `oak` run has no SFT evaluation: iteration 0 is the first stage of each set
    rows = report_rows(None, None, iters[:1] + [{"iteration": 1, "eval": {"val": _eval({"a", "c"})}}])
    assert [(r["stage"], r.get("against"), r.get("mended"), r.get("broken")) for r in rows if r["set"] == "val"] == \
        [("iter_0", None, None, None), ("iter_1", "iter_0", 2, 2)]
    # other problems (another count) are not paired
    assert "mended" not in report_rows({"val": _eval({"a"})}, None, [{"iteration": 0, "eval": {"val": _eval(
        set(), n=21)}}])[1]

    write_report(report_rows(sft, 10.0, iters), tmp_path)
    md = (tmp_path / "report.md").read_text()
    summary = {(r["stage"], r["set"]): r for r in json.loads((tmp_path / "metrics.json").read_text())["rows"]}
    assert (summary["iter_0", "val"]["trace_validity"], summary["iter_0", "val"]["mended"],
            summary["iter_1", "val"]["sign_p"], summary["sft", "val"]["wall_s"]) == (0.9, 2, 0.25, 10.0)
    assert "| iter_0 | val | 100.0% | 100.0% | 90.0% | 2 / 1 (p 1) | 7 |" in md
    assert "| iter_1 | val | 100.0% | 100.0% | 100.0% | 3 / 0 (p 0.25) | - |" in md
    assert "| sft | val | 100.0% | 100.0% | 85.0% | - | - | 10 |" in md
    assert "(heldout: sft, val: sft)" in " ".join(md.split())
