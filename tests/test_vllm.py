"""The vLLM backend's lifecycle against a stand-in module with vLLM's API shape (no GPU, no vLLM in CI): the
training copy leaves the GPU before the engine holds the weights, the engine sleeps after generating (and before
DPO), is reused for a LoRA policy's next adapter and rebuilt when full fine-tuning wrote new weights, takes its
LoRA rank from the adapter, and runs one engine per rank under torchrun."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from oakdpo import vllm_backend
from oakdpo.config import GenerationConfig

EVENTS: list[tuple] = []
REAL_CUDA = torch.cuda.is_available


class _Output:
    def __init__(self, text):
        self.outputs = [types.SimpleNamespace(text=text, token_ids=[5, 6, 7], finish_reason="stop")]


class FakeLLM:
    def __init__(self, **kwargs):
        EVENTS.append(("init", kwargs))
        self.llm_engine = types.SimpleNamespace(shutdown=lambda: EVENTS.append(("shutdown",)))

    def generate(self, prompts, params, lora_request=None, use_tqdm=False):
        EVENTS.append(("generate", len(prompts), lora_request and lora_request.lora_int_id,
                       [p.kwargs["seed"] for p in params]))
        return [_Output("Thought: t.\nFinal Answer: TRUE") for _ in prompts]

    def sleep(self, level=1):
        EVENTS.append(("sleep", level))

    def wake_up(self, tags=None):
        EVENTS.append(("wake_up",))


class FakeParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class FakeLoRARequest:
    def __init__(self, name, lora_int_id, path):
        self.lora_name, self.lora_int_id, self.lora_path = name, lora_int_id, path


@pytest.fixture
def fake_vllm(monkeypatch):
    EVENTS.clear()
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, FakeParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = FakeLoRARequest
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", request)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: EVENTS.append(("model.to", str(a[0]))) or self)
    yield
    vllm_backend.shutdown()


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, tiny_model_dir):
    """Two LoRA adapters (r=4, then r=8) over the tiny model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = []
    for r in (4, 8):
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
        d = tmp_path_factory.mktemp("adapter") / f"r{r}"
        get_peft_model(base, LoraConfig(r=r, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(d)
        out.append(d)
    return out


def _policy(path):
    """Load on the real (CPU) device: loading with a faked GPU would try pinned memory."""
    from oakdpo.model import load_policy

    faked, torch.cuda.is_available = torch.cuda.is_available, REAL_CUDA
    try:
        return load_policy(path, for_training=True)[0]
    finally:
        torch.cuda.is_available = faked


SAMPLING = dict(temperature=1.0, top_p=1.0, max_tokens=8)


def test_full_model_lifecycle(fake_vllm, tiny_model_dir, tmp_path):
    import shutil

    model = _policy(tiny_model_dir)
    EVENTS.clear()
    out = vllm_backend.generate(model, [("p0", 11), ("p1", 12)], SAMPLING, GenerationConfig())
    assert out == [("Thought: t.\nFinal Answer: TRUE", 3, False)] * 2
    names = [e[0] for e in EVENTS]
    assert names == ["model.to", "init", "generate", "sleep"]  # off the GPU first, asleep after
    assert EVENTS[0][1] == "cpu" and EVENTS[3][1] == 1
    init = EVENTS[1][1]
    assert init["model"] == str(tiny_model_dir.resolve()) and init["enable_sleep_mode"] is True
    assert "enable_lora" not in init and "distributed_executor_backend" not in init
    assert EVENTS[2][3] == [11, 12]  # one request per item, each with its own seed
    # The same weights again: the engine wakes, no second one.
    EVENTS.clear()
    vllm_backend.generate(model, [("p", 1)], SAMPLING, GenerationConfig())
    assert [e[0] for e in EVENTS] == ["model.to", "wake_up", "generate", "sleep"]
    # Full fine-tuning wrote new weights (a new folder): the old engine is shut down and a new one loads them.
    newer = tmp_path / "iter_0"
    shutil.copytree(tiny_model_dir, newer)
    EVENTS.clear()
    vllm_backend.generate(_policy(newer), [("p", 1)], SAMPLING, GenerationConfig())
    assert [e[0] for e in EVENTS if e[0] != "model.to"] == ["shutdown", "init", "generate", "sleep"]
    assert EVENTS[[e[0] for e in EVENTS].index("init")][1]["model"] == str(newer.resolve())


def test_lora_policies_share_one_engine(fake_vllm, adapters):
    r4, r8 = adapters
    vllm_backend.generate(_policy(r4), [("p", 1)], SAMPLING, GenerationConfig())
    init = next(e[1] for e in EVENTS if e[0] == "init")
    assert init["enable_lora"] is True and init["max_lora_rank"] == 4  # from the adapter's adapter_config.json
    assert json.loads((r4 / "adapter_config.json").read_text())["r"] == 4
    EVENTS.clear()
    vllm_backend.generate(_policy(r4), [("p", 1)], SAMPLING, GenerationConfig())
    assert [e[0] for e in EVENTS if e[0] != "model.to"] == ["wake_up", "generate", "sleep"]
    assert EVENTS[-2][2] == 1  # the same adapter keeps its id
    # A larger rank needs an engine that admits it.
    EVENTS.clear()
    vllm_backend.generate(_policy(r8), [("p", 1)], SAMPLING, GenerationConfig())
    assert [e[0] for e in EVENTS if e[0] != "model.to"] == ["shutdown", "init", "generate", "sleep"]
    assert next(e[1] for e in EVENTS if e[0] == "init")["max_lora_rank"] == 8


def test_one_engine_per_rank_and_release(fake_vllm, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    vllm_backend.generate(_policy(tiny_model_dir), [("p", 7)], SAMPLING, GenerationConfig())
    init = next(e[1] for e in EVENTS if e[0] == "init")
    assert init["distributed_executor_backend"] == "external_launcher" and init["tensor_parallel_size"] == 1
    assert init["seed"] == 7 + 1
    EVENTS.clear()
    vllm_backend.release()  # already asleep after generating: nothing to do
    assert EVENTS == []
    vllm_backend.shutdown()
    assert EVENTS == [("shutdown",)]


def test_errors_without_vllm_or_gpu(monkeypatch, tiny_model_dir):
    from oakdpo.io import UserError

    model = _policy(tiny_model_dir)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        vllm_backend.generate(model, [("p", 1)], SAMPLING, GenerationConfig())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(UserError, match="vllm is not installed"):
        vllm_backend.generate(model, [("p", 1)], SAMPLING, GenerationConfig())


def test_generate_traces_through_the_vllm_backend(fake_vllm, tiny_model_dir):
    # generation.backend=vllm: one request per (problem, sample), seeded with the item's seed as the HF path
    # draws it, stopping on the Final Answer line; records as the HF path writes them
    from oakdpo.generation import item_seed
    from oakdpo.generation import generate_traces
    from oakdpo.model import load_policy
    from oakdpo.tasks.prontoqa.generator import generate_problems

    faked, torch.cuda.is_available = torch.cuda.is_available, REAL_CUDA
    try:
        model, tok = load_policy(tiny_model_dir)
    finally:
        torch.cuda.is_available = faked
    problems = generate_problems(3, 2, seed=4)
    traces = generate_traces(model, tok, problems, 2, GenerationConfig(backend="vllm", seed=9), progress=False)
    assert [(t["problem_id"], t["sample"], t["text"], t["num_tokens"], t["truncated"]) for t in traces] == [
        (p.id, s, "Thought: t.\nFinal Answer: TRUE", 3, False) for p in problems for s in range(2)]
    gen = [e for e in EVENTS if e[0] == "generate"]
    assert gen == [("generate", 6, None, [item_seed(9, p.id, s) for p in problems for s in range(2)])]
    assert EVENTS[-1] == ("sleep", 1)
