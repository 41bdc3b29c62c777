"""benchmarks/sft_probe.py: the token roles it scores are the right spans of the gold trace."""

import importlib.util
import re
from pathlib import Path

from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.trace import parse_trace
from oakdpo.model import load_policy

ROOT = Path(__file__).resolve().parents[1]


def _probe_module():
    spec = importlib.util.spec_from_file_location("sft_probe", ROOT / "benchmarks" / "sft_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _runs(tok, ids, roles, role: str) -> list[str]:
    """The text of each run of consecutive tokens whose role is `role` or `role`_first."""
    out, prev = [], None
    for i, r in zip(ids, roles):
        hit = r in (role, role + "_first")
        if hit:
            if prev:
                out[-1] += tok.decode([i])
            else:
                out.append(tok.decode([i]))
        prev = hit
    return [x.strip() for x in out]


def test_tag_roles_are_the_cited_premises(tiny_model_dir, small_problems):
    probe = _probe_module()
    _, tok = load_policy(tiny_model_dir)
    checked = dead_ends = 0
    for p in small_problems[:20]:
        completion = gold_trace(p)
        ids, roles = probe.roles_of(tok, build_prompt(p), completion)
        steps = [s for s in parse_trace(completion).steps if not s.is_conclude]
        tried = [int(x) for x in re.findall(r"\[(\d+)\] [^.]*\. [\[{]\d+[\]}] [a-z]+\?", completion)]  # dead ends
        cited = sorted([a for s in steps for a in s.args if a < len(p.premises)] + tried)
        tags = "".join(tok.decode([i]) for i, r in zip(ids, roles) if r in ("tag", "tag_first", "tag_retry"))
        assert sorted(int(x) for x in re.findall(r"[\[{](\d+)[\]}]", tags)) == cited  # "{k}": formats.inner_tag
        first = [tok.decode([i]) for i, r in zip(ids, roles) if r == "tag_first"]
        key = [tok.decode([i]) for i, r in zip(ids, roles) if r == "key_first"]
        statement = p.query.rstrip(".").split()[-1]  # the first lookup is the query's property
        assert "".join(key).strip() == statement
        assert "".join(first).strip("[]{}") == str((tried or [steps[0].args[1]])[0])
        missing = [tok.decode([i]) for i, r in zip(ids, roles) if r == "missing"]
        assert missing == ["?"] * len(tried)
        # the cite right after a dead end is the retry: the next rule ending in the query's property
        retry = [tok.decode([i]) for i, r in zip(ids, roles) if r == "tag_retry"]
        after = [int(x) for x in re.findall(r"[a-z]+\? [a-z]+[\[{](\d+)[\]}]", completion)]
        assert [int(x) for x in re.findall(r"\d+", "".join(retry))] == after and len(after) == len(tried)
        dead_ends += len(tried)
        # each step restates the tag of the rule it extends before the key (a dead end's rule too), and that
        # rule is the step's second argument; the first argument is the premise it cites
        rule_tags = [tok.decode([i]) for i, r in zip(ids, roles) if r in ("rule_tag_first", "rule_tag")]
        assert [int(x) for x in re.findall(r"\d+", "".join(rule_tags))] == tried + [s.args[1] for s in steps]
        assert [int(x) for x in _runs(tok, ids, roles, "arg_rule")] == [s.args[1] for s in steps]
        assert [int(x) for x in _runs(tok, ids, roles, "arg_cite")] == [s.args[0] for s in steps]
        news = [tok.decode([i]) for i, r in zip(ids, roles) if r in ("new_tag_first", "new_tag")]
        assert "".join(news) == "".join(f"[{len(p.premises) + k}]" for k in range(len(steps)))
        first_new = [tok.decode([i]) for i, r in zip(ids, roles) if r == "new_tag_first"]
        assert "".join(first_new) == f"[{len(p.premises)}]"  # the prompt's "Next:" number
        assert all(r is None for r in roles[: len(tok(build_prompt(p))["input_ids"]) - 1])
        answer = "".join(tok.decode([i]) for i, r in zip(ids, roles) if r == "answer")
        assert answer.strip() == ("true" if p.label == "TRUE" else "false")
        checked += len(cited)
    assert checked >= 20 and dead_ends >= 3


def test_probe_counts_hits_and_gold_probability(tiny_model_dir, small_problems):
    probe = _probe_module()
    model, tok = load_policy(tiny_model_dir)
    out = probe.probe(model, tok, small_problems[:3])
    assert {"tag", "tag_first", "premise", "answer"} <= set(out)
    for hits, n, p in out.values():
        assert 0 <= hits <= n and 0.0 < p < n  # summed softmax of the gold token: a probability per token
    # an untrained model spreads its probability: far below one per token on the lookups
    hits, n, p = out["tag"]
    assert p / n < 0.5
