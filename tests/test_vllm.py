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
PROMPTS: list = []  # what the last generate call received
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
        PROMPTS[:] = prompts
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
    """LoRA adapters of r=4, 8 and 12 over the tiny model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = []
    for r in (4, 8, 12):
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
    out = vllm_backend.generate(model, [([1, 5], 11), ([1, 6], 12)], SAMPLING, GenerationConfig())
    assert out == [("Thought: t.\nFinal Answer: TRUE", 3, False)] * 2
    names = [e[0] for e in EVENTS]
    assert names == ["model.to", "init", "generate", "sleep"]  # off the GPU first, asleep after
    assert EVENTS[0][1] == "cpu" and EVENTS[3][1] == 1
    init = EVENTS[1][1]
    assert init["model"] == str(tiny_model_dir.resolve()) and init["enable_sleep_mode"] is True
    assert "enable_lora" not in init and "distributed_executor_backend" not in init
    assert EVENTS[2][3] == [11, 12]  # one request per item, each with its own seed
    assert PROMPTS == [{"prompt_token_ids": [1, 5]}, {"prompt_token_ids": [1, 6]}]  # token ids, never re-encoded
    # The same weights again: the engine wakes, no second one.
    EVENTS.clear()
    vllm_backend.generate(model, [([1, 5], 1)], SAMPLING, GenerationConfig())
    assert [e[0] for e in EVENTS] == ["model.to", "wake_up", "generate", "sleep"]
    # Full fine-tuning wrote new weights (a new folder): the old engine is shut down and a new one loads them.
    newer = tmp_path / "iter_0"
    shutil.copytree(tiny_model_dir, newer)
    EVENTS.clear()
    vllm_backend.generate(_policy(newer), [([1, 5], 1)], SAMPLING, GenerationConfig())
    assert [e[0] for e in EVENTS if e[0] != "model.to"] == ["shutdown", "init", "generate", "sleep"]
    assert EVENTS[[e[0] for e in EVENTS].index("init")][1]["model"] == str(newer.resolve())


def test_lora_policies_share_one_engine(fake_vllm, adapters):
    r4, r8, r12 = adapters
    vllm_backend.generate(_policy(r4), [([1, 5], 1)], SAMPLING, GenerationConfig())
    init = next(e[1] for e in EVENTS if e[0] == "init")
    # the adapter's r (adapter_config.json), raised to the least max_lora_rank vLLM accepts
    assert init["enable_lora"] is True and init["max_lora_rank"] == 8
    assert json.loads((r4 / "adapter_config.json").read_text())["r"] == 4
    EVENTS.clear()
    vllm_backend.generate(_policy(r4), [([1, 5], 1)], SAMPLING, GenerationConfig())
    assert [e[0] for e in EVENTS if e[0] != "model.to"] == ["wake_up", "generate", "sleep"]
    assert EVENTS[-2][2] == 1  # the same adapter keeps its id
    EVENTS.clear()
    vllm_backend.generate(_policy(r8), [([1, 5], 1)], SAMPLING, GenerationConfig())  # r=8 fits the same engine
    assert [e[0] for e in EVENTS if e[0] != "model.to"] == ["wake_up", "generate", "sleep"]
    # A larger rank needs an engine that admits it.
    EVENTS.clear()
    vllm_backend.generate(_policy(r12), [([1, 5], 1)], SAMPLING, GenerationConfig())
    assert [e[0] for e in EVENTS if e[0] != "model.to"] == ["shutdown", "init", "generate", "sleep"]
    assert next(e[1] for e in EVENTS if e[0] == "init")["max_lora_rank"] == 16


def test_one_engine_per_rank_and_release(fake_vllm, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    vllm_backend.generate(_policy(tiny_model_dir), [([1, 5], 7)], SAMPLING, GenerationConfig())
    init = next(e[1] for e in EVENTS if e[0] == "init")
    assert init["distributed_executor_backend"] == "external_launcher" and init["tensor_parallel_size"] == 1
    assert init["seed"] == 7 + 1
    vllm_backend.shutdown()
    EVENTS.clear()
    big = 5788409701804392049  # item_seed gives 63-bit seeds; the engine's goes to np.random.seed (32 bits)
    vllm_backend.generate(_policy(tiny_model_dir), [([1, 5], big)], SAMPLING, GenerationConfig())
    assert next(e[1] for e in EVENTS if e[0] == "init")["seed"] == (big + 1) % 2**32
    assert next(e for e in EVENTS if e[0] == "generate")[3] == [big]  # the request keeps its own seed
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
        vllm_backend.generate(model, [([1, 5], 1)], SAMPLING, GenerationConfig())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(UserError, match="vllm is not installed"):
        vllm_backend.generate(model, [([1, 5], 1)], SAMPLING, GenerationConfig())


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
    # the prompts go as the ids the HF path decodes from (one BOS, from the tokenizer's own encoding)
    from oakdpo.prompting import Framing

    framing = Framing(tok, None)
    want = [framing.encode(framing.prompt(p).text) for p in problems for _ in range(2)]
    assert [x["prompt_token_ids"] for x in PROMPTS] == want
    assert all(ids.count(tok.bos_token_id) == 1 for ids in want)
    assert EVENTS[-1] == ("sleep", 1)


def test_loop_evaluates_the_trained_policy_through_vllm(tmp_path, tiny_model_dir, small_problems, monkeypatch):
    # With generation.backend=vllm the engine loads the folder a policy came from: the evaluation after DPO must
    # hand it the new policy's folder (OUT/dpo/iter_0), not the SFT one the training copy was loaded from.
    from oakdpo.config import Config
    from oakdpo.loop import run_oak

    seen = []

    def fake_generate(model, requests, sampling, gen_cfg, progress=True):
        seen.append((str(getattr(model, "oakdpo_path", None)), sampling["temperature"]))
        return [("Thought: t.\nFinal Answer: TRUE", 3, False)] * len(requests)

    monkeypatch.setattr(vllm_backend, "generate", fake_generate)
    cfg = Config()
    cfg.format.style = "lookup"
    cfg.generation.backend = "vllm"
    cfg.dpo.batch_size, cfg.dpo.max_length, cfg.knowledge.enabled = 4, 512, False
    out = tmp_path / "run"
    run_oak(cfg, sft_model=tiny_model_dir, train=small_problems[:4], eval_sets={"val": small_problems[4:6]},
            output_dir=out, iterations=1, samples=1)
    assert seen[0] == (str(tiny_model_dir), cfg.generation.temperature)  # sampling from the SFT policy
    assert seen[-1] == (str(out / "dpo" / "iter_0"), 0.0)  # greedy evaluation of the trained policy
    assert len(seen) == 2


@pytest.fixture
def real_vllm():
    """The installed vLLM's classes, imported before fake_vllm replaces the module; skips where none is (CI)."""
    vllm = pytest.importorskip("vllm")
    from vllm.engine.arg_utils import EngineArgs
    from vllm.lora.request import LoRARequest

    return types.SimpleNamespace(LLM=vllm.LLM, SamplingParams=vllm.SamplingParams, EngineArgs=EngineArgs,
                                 LoRARequest=LoRARequest)


def test_the_calls_fit_the_installed_vllm(real_vllm, fake_vllm, adapters, tiny_model_dir, tmp_path, monkeypatch):
    """Where vLLM is installed (the vllm extra), every argument the backend passes is one vLLM's own classes take:
    the engine's keywords are LLM's or EngineArgs' fields, the sampling settings of both the greedy and the sampled
    path build a real SamplingParams, and the LoRA request a real LoRARequest."""
    import dataclasses
    import inspect
    import shutil

    from oakdpo.generation import generate_traces
    from oakdpo.model import load_policy
    from oakdpo.tasks.prontoqa.generator import generate_problems

    made, requests = [], []
    monkeypatch.setattr(sys.modules["vllm"], "SamplingParams", lambda **kw: made.append(kw) or FakeParams(**kw))
    monkeypatch.setattr(sys.modules["vllm.lora.request"], "LoRARequest",
                        lambda *a, **kw: requests.append((a, kw)) or FakeLoRARequest(*a, **kw))
    with_defaults = tmp_path / "with_defaults"  # a checkpoint whose generation_config sets top_k and a penalty
    shutil.copytree(tiny_model_dir, with_defaults)
    (with_defaults / "generation_config.json").write_text(json.dumps(
        {"do_sample": True, "top_k": 5, "top_p": 0.9, "repetition_penalty": 1.1}))
    faked, torch.cuda.is_available = torch.cuda.is_available, REAL_CUDA
    try:
        policies = [load_policy(tiny_model_dir), load_policy(with_defaults)]
    finally:
        torch.cuda.is_available = faked
    problems = generate_problems(2, 2, seed=4)
    for (model, tok), cfg in zip(policies, (GenerationConfig(backend="vllm"),
                                            GenerationConfig(backend="vllm", use_model_defaults=True))):
        generate_traces(model, tok, problems, 1, cfg, do_sample=True, progress=False)
        generate_traces(model, tok, problems, 1, cfg, do_sample=False, progress=False)
    vllm_backend.generate(_policy(adapters[0]), [([1, 5], 1)], SAMPLING, GenerationConfig())
    monkeypatch.setenv("WORLD_SIZE", "2")
    vllm_backend.shutdown()
    vllm_backend.generate(_policy(tiny_model_dir), [([1, 5], 1)], SAMPLING, GenerationConfig())

    llm_params = set(inspect.signature(real_vllm.LLM.__init__).parameters)
    engine_fields = {f.name for f in dataclasses.fields(real_vllm.EngineArgs)}
    inits = [e[1] for e in EVENTS if e[0] == "init"]
    assert any("enable_lora" in k for k in inits) and any("distributed_executor_backend" in k for k in inits)
    for kwargs in inits:
        assert set(kwargs) <= llm_params | engine_fields, set(kwargs) - llm_params - engine_fields
    assert {kw["temperature"] for kw in made} == {0.0, 1.0}
    assert any(kw.get("top_k") == 5 and kw["repetition_penalty"] == 1.1 for kw in made)
    for kw in made:
        real_vllm.SamplingParams(**kw)  # vLLM validates its fields here
    assert len(requests) == 1
    for a, kw in requests:
        real_vllm.LoRARequest(*a, **kw)
    inspect.signature(real_vllm.LLM.generate).bind(None, [], [], lora_request=None, use_tqdm=False)
    inspect.signature(real_vllm.LLM.sleep).bind(None, level=1)
    inspect.signature(real_vllm.LLM.wake_up).bind(None)
