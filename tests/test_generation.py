"""Batched trace generation: reproducible per seed, problem order, the stop on the Final Answer line."""

import json

import pytest
import torch
from transformers import LlamaForCausalLM

from oakdpo import cli
from oakdpo.config import GenerationConfig, ModelConfig
from oakdpo.tasks.prontoqa.generator import generate_problems
from oakdpo.data import write_problems
from oakdpo.generation import cut_after_final_answer, generate_traces
from oakdpo.io import UserError
from oakdpo.tiny import build_corpus, init_tiny_model
from oakdpo.model import load_policy

TINY = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=500)


@pytest.fixture(scope="module")
def problems():
    return generate_problems(6, (1, 3), seed=2)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, problems):
    out = tmp_path_factory.mktemp("gen") / "model"
    init_tiny_model(TINY, build_corpus(generate_problems(20, (1, 3), seed=3)), out)
    return out


@pytest.fixture(scope="module")
def policy(tiny_dir):
    return load_policy(tiny_dir)


def _gen(policy, problems, samples=2, **kw):
    model, tok = policy
    cfg = GenerationConfig(batch_size=4, max_new_tokens=12, temperature=1.0)
    return generate_traces(model, tok, problems, samples, cfg, progress=False, **kw)


def test_fixed_seed_reproduces_texts(policy, problems):
    a = _gen(policy, problems, seed=7)
    b = _gen(policy, problems, seed=7)
    c = _gen(policy, problems, seed=8)
    assert [t["text"] for t in a] == [t["text"] for t in b]
    assert [t["num_tokens"] for t in a] == [t["num_tokens"] for t in b]
    assert sum(x["text"] != y["text"] for x, y in zip(a, c)) >= len(a) // 2


def test_traces_come_back_in_problem_order(policy, problems):
    traces = _gen(policy, problems, samples=3, seed=0)
    assert [(t["problem_id"], t["sample"]) for t in traces] == [(p.id, s) for p in problems for s in range(3)]
    assert set(traces[0]) == {"problem_id", "sample", "text", "num_tokens"}
    assert all(1 <= t["num_tokens"] <= 12 for t in traces)


def test_greedy_gives_identical_samples(policy, problems):
    traces = _gen(policy, problems, samples=2, do_sample=False)
    assert all(traces[2 * i]["text"] == traces[2 * i + 1]["text"] for i in range(len(problems)))


class ScriptedLM(LlamaForCausalLM):
    """Writes a fixed token script whatever the input (one forward call per new token), never EOS."""

    script: list[int] = []

    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        step = self.calls
        self.calls += 1
        logits = torch.full_like(out.logits[:, -1, :], -1e9)
        logits[:, self.script[step]] = 0.0
        out.logits[:, -1, :] = logits
        return out


def test_generation_stops_after_the_final_answer_line(tiny_dir, problems):
    _, tok = load_policy(tiny_dir)
    written = ('Thought: [0] So the query is true.\nAction: <Option type="CONCLUDE" args="[0]" />\n'
               "Final Answer: TRUE")
    script = tok(written + "\nThought: more words after the answer", add_special_tokens=False)["input_ids"]
    model = ScriptedLM.from_pretrained(tiny_dir)
    model.script, model.calls = script, 0
    model.eval()
    cfg = GenerationConfig(batch_size=8, max_new_tokens=len(script))
    traces = generate_traces(model, tok, problems[:3], 1, cfg, do_sample=False, progress=False)
    n = len(tok(written, add_special_tokens=False)["input_ids"])
    assert [t["text"] for t in traces] == [written] * 3
    assert [t["num_tokens"] for t in traces] == [n] * 3
    assert model.calls == n  # stopped right there, not at max_new_tokens


def test_cut_after_final_answer():
    assert cut_after_final_answer("a\nFinal Answer: FALSE\nThought: x") == "a\nFinal Answer: FALSE"
    assert cut_after_final_answer("a\nFinal Answer: perhaps  \nmore") == "a\nFinal Answer: perhaps"
    assert cut_after_final_answer("no answer line\nx") == "no answer line\nx"
    assert cut_after_final_answer("") == ""


def test_vllm_backend_without_vllm_or_gpu_is_a_user_error(policy, problems):
    model, tok = policy
    cfg = GenerationConfig(backend="vllm")
    with pytest.raises(UserError, match=r"^generation.backend=vllm"):
        generate_traces(model, tok, problems, 1, cfg, progress=False)


def test_cli_generate(tmp_path, tiny_dir, problems):
    write_problems(tmp_path / "p.jsonl", problems)
    rc = cli.main(["generate", "--model", str(tiny_dir), "--problems", str(tmp_path / "p.jsonl"), "--samples", "2",
                   "--set", "generation.max_new_tokens=5", "-o", str(tmp_path / "t.jsonl")])
    assert rc == 0
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [(r["problem_id"], r["sample"]) for r in lines] == [(p.id, s) for p in problems for s in range(2)]
