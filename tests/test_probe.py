"""benchmarks/sft_probe.py: the token roles it scores are the right spans of the gold trace."""

import importlib.util
import re
from pathlib import Path

from oakdpo.formats import build_prompt, gold_trace, parse_trace
from oakdpo.model import load_policy

ROOT = Path(__file__).resolve().parents[1]


def _probe_module():
    spec = importlib.util.spec_from_file_location("sft_probe", ROOT / "benchmarks" / "sft_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rule_tag_role_is_the_cited_rule(tiny_model_dir, small_problems):
    probe = _probe_module()
    _, tok = load_policy(tiny_model_dir)
    checked = 0
    for p in small_problems[:20]:
        completion = gold_trace(p)
        ids, roles = probe.roles_of(tok, build_prompt(p), completion)
        cited = [s.args[1] for s in parse_trace(completion).steps if s.option == "MODUS_PONENS"]
        rule_tags = "".join(tok.decode([i]) for i, r in zip(ids, roles) if r in ("rule_tag", "rule_tag_first"))
        assert [int(x) for x in re.findall(r"\[(\d+)\]", rule_tags)] == cited
        first = [tok.decode([i]) for i, r in zip(ids, roles) if r == "fact_tag_first"]
        assert "".join(first).strip() == f"[{parse_trace(completion).steps[0].args[0]}]"
        assert all(r is None for r in roles[: len(tok(build_prompt(p))["input_ids"]) - 1])
        checked += len(cited)
    assert checked >= 20
