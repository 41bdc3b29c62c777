"""Trace generation: reproducible per (seed, problem, sample) whatever the batch size, sharding or resume; our own
decoding settings (greedy unaffected by a checkpoint's generation_config); stops; truncation; resume from a
partial file (a SIGKILL test); setting validation; the imports of the generate command."""

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import GenerationConfig as HFGenerationConfig
from transformers import LlamaForCausalLM

from oakdpo import cli
from oakdpo import generation as G
from oakdpo.config import GenerationConfig, ModelConfig
from oakdpo.data import write_problems
from oakdpo.dist import shard
from oakdpo.generation import cut_after_final_answer, generate_traces, item_seed, partial_files
from oakdpo.io import UserError
from oakdpo.model import load_policy
from oakdpo.tasks.prontoqa.generator import generate_problems
from oakdpo.tiny import build_corpus, init_tiny_model

TINY = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=500)
ROOT = Path(__file__).resolve().parents[1]


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


def _cfg(**kw):
    return GenerationConfig(**{"batch_size": 4, "max_new_tokens": 12, "temperature": 1.0, **kw})


def _gen(policy, problems, samples=2, cfg=None, **kw):
    model, tok = policy
    return generate_traces(model, tok, problems, samples, cfg or _cfg(), progress=False, **kw)


def _texts(traces):
    return [(t["problem_id"], t["sample"], t["text"], t["num_tokens"], t["truncated"]) for t in traces]


@pytest.fixture
def padded_only(monkeypatch):
    """Force the padded decoder (transformers generate), as for a model the slot decoder does not take."""
    monkeypatch.setattr(G, "_slots_supported", lambda *a: False)


# ------------------------------------------------------------------------------------------ reproducibility

def test_fixed_seed_reproduces_texts(policy, problems):
    a = _gen(policy, problems, seed=7)
    b = _gen(policy, problems, seed=7)
    c = _gen(policy, problems, seed=8)
    assert _texts(a) == _texts(b)
    assert sum(x["text"] != y["text"] for x, y in zip(a, c)) >= len(a) // 2


def test_a_lora_policy_keeps_only_the_last_logits_and_writes_its_base_models_traces(tiny_dir, policy, problems):
    from peft import LoraConfig, get_peft_model

    model, tok = load_policy(tiny_dir)
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    assert G._forward_kwargs(policy[0], "C") == G._forward_kwargs(lora, "C") == {cache_name: "C", "logits_to_keep": 1}
    assert _texts(_gen((lora, tok), problems, seed=7)) == _texts(_gen(policy, problems, seed=7))  # LoRA B = 0


def test_batch_size_does_not_change_traces(policy, problems):
    a = _gen(policy, problems, samples=3, cfg=_cfg(batch_size=3, max_new_tokens=20), seed=5)
    b = _gen(policy, problems, samples=3, cfg=_cfg(batch_size=16, max_new_tokens=20), seed=5)
    assert _texts(a) == _texts(b)
    assert len({t["text"] for t in a}) > len(problems)  # the samples of a problem differ: this is sampling


def test_two_shards_concatenated_equal_one_call(policy, problems):
    """What two ranks do (dist.shard, then gather in rank order) gives the traces of one rank."""
    one = _gen(policy, problems, samples=2, seed=3)
    two = [t for r in range(2) for t in _gen(policy, shard(problems, r, 2), samples=2, seed=3,
                                             cfg=_cfg(batch_size=5))]
    assert _texts(one) == _texts(two)


def test_slot_decoder_matches_transformers_generate(policy, problems, monkeypatch):
    """The continuous-batching decoder and transformers `generate` (the padded decoder) write the same traces."""
    for do_sample in (True, False):
        slots = _gen(policy, problems, samples=2, do_sample=do_sample, seed=1, cfg=_cfg(max_new_tokens=25))
        with monkeypatch.context() as m:
            m.setattr(G, "_slots_supported", lambda *a: False)
            padded = _gen(policy, problems, samples=2, do_sample=do_sample, seed=1, cfg=_cfg(max_new_tokens=25))
        assert _texts(slots) == _texts(padded)


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory, tiny_dir):
    """A random-init Qwen2 with grouped-query attention (4 query heads, 1 key/value head) on the tiny tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    _, tok = load_policy(tiny_dir)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=1, max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=0))
    out = tmp_path_factory.mktemp("gen") / "qwen2"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("variant", ["qwen2-gqa", "llama-eager"])
def test_slot_decoder_matches_generate_on_other_attention(variant, qwen2_dir, tiny_dir, problems, monkeypatch):
    if variant == "qwen2-gqa":
        policy = load_policy(qwen2_dir)
    else:
        _, tok = load_policy(tiny_dir)
        policy = (LlamaForCausalLM.from_pretrained(tiny_dir, attn_implementation="eager").eval(), tok)
    assert G._slots_supported(policy[0], {0: [1]}, G.decoding_config(
        policy[0], _cfg(), do_sample=True, temperature=None, stop_ids=[2], pad_id=0))
    for do_sample in (True, False):
        slots = _gen(policy, problems, samples=2, do_sample=do_sample, seed=1, cfg=_cfg(max_new_tokens=25))
        with monkeypatch.context() as m:
            m.setattr(G, "_slots_supported", lambda *a: False)
            padded = _gen(policy, problems, samples=2, do_sample=do_sample, seed=1, cfg=_cfg(max_new_tokens=25))
        assert _texts(slots) == _texts(padded)


def test_item_seed_is_stable():
    """The per-item seed is part of what a fixed seed reproduces: changing the hash changes every trace."""
    assert item_seed(0, "p-1", 0) == item_seed(0, "p-1", 0)
    assert len({item_seed(0, "p-1", 0), item_seed(0, "p-1", 1), item_seed(1, "p-1", 0), item_seed(0, "p-2", 0)}) == 4
    assert item_seed(0, "p-1", 0) == 5383092333529220931


def test_traces_come_back_in_problem_order(policy, problems):
    traces = _gen(policy, problems, samples=3, seed=0)
    assert [(t["problem_id"], t["sample"]) for t in traces] == [(p.id, s) for p in problems for s in range(3)]
    assert set(traces[0]) == {"problem_id", "sample", "text", "num_tokens", "truncated"}
    assert all(1 <= t["num_tokens"] <= 12 for t in traces)


def test_greedy_gives_identical_samples(policy, problems):
    traces = _gen(policy, problems, samples=2, do_sample=False)
    assert all(traces[2 * i]["text"] == traces[2 * i + 1]["text"] for i in range(len(problems)))


# ------------------------------------------------------------------------------------------ our own settings

@pytest.fixture(scope="module")
def opinionated_dir(tmp_path_factory, tiny_dir):
    """The tiny model with a generation_config.json that sets sampling defaults and a repetition penalty."""
    out = tmp_path_factory.mktemp("gen") / "opinionated"
    model, tok = load_policy(tiny_dir)
    model.generation_config = HFGenerationConfig(
        bos_token_id=1, eos_token_id=2, pad_token_id=0, do_sample=True, temperature=0.3, top_k=1, top_p=0.5,
        repetition_penalty=1.8)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("decoder", ["slots", "padded"])
def test_greedy_ignores_the_checkpoints_generation_config(policy, opinionated_dir, problems, decoder, monkeypatch):
    if decoder == "padded":
        monkeypatch.setattr(G, "_slots_supported", lambda *a: False)
    cfg = _cfg(max_new_tokens=30)
    plain = _gen(policy, problems, samples=1, do_sample=False, cfg=cfg)
    opinionated = load_policy(opinionated_dir)
    assert opinionated[0].generation_config.repetition_penalty == 1.8
    assert _texts(_gen(opinionated, problems, samples=1, do_sample=False, cfg=cfg)) == _texts(plain)
    # use_model_defaults: the checkpoint's repetition penalty applies, and changes what greedy writes
    with_defaults = _gen(opinionated, problems, samples=1, do_sample=False,
                         cfg=_cfg(max_new_tokens=30, use_model_defaults=True))
    assert _texts(with_defaults) != _texts(plain)


def test_sampling_uses_the_checkpoints_defaults_only_when_asked(policy, opinionated_dir, problems):
    """The checkpoint says top_k=1 (which makes sampling greedy): applied only with use_model_defaults."""
    opinionated = load_policy(opinionated_dir)
    cfg = _cfg(max_new_tokens=20)
    ours = _gen(opinionated, problems, samples=2, cfg=cfg, seed=4)
    assert _texts(ours) == _texts(_gen(policy, problems, samples=2, cfg=cfg, seed=4))
    model_cfg = _cfg(max_new_tokens=20, use_model_defaults=True)
    theirs = _gen(opinionated, problems, samples=2, cfg=model_cfg, seed=4)
    greedy = _gen(opinionated, problems, samples=2, cfg=model_cfg, do_sample=False)
    assert [t["text"] for t in theirs] == [t["text"] for t in greedy]
    assert [t["text"] for t in ours] != [t["text"] for t in theirs]


def test_decoding_config_is_ours(policy, opinionated_dir):
    model, _ = load_policy(opinionated_dir)
    gc = G.decoding_config(model, _cfg(temperature=0.7, top_p=0.9), do_sample=True, temperature=None,
                           stop_ids=[2, 7], pad_id=0)
    assert (gc.do_sample, gc.temperature, gc.top_p, gc.top_k, gc.repetition_penalty) == (True, 0.7, 0.9, 0, 1.0)
    assert gc.eos_token_id == [2, 7]
    gc = G.decoding_config(model, _cfg(use_model_defaults=True), do_sample=True, temperature=0.9, stop_ids=[2],
                           pad_id=0)
    assert (gc.temperature, gc.top_p, gc.top_k, gc.repetition_penalty) == (0.9, 0.5, 1, 1.8)


@pytest.mark.parametrize("key,value,message", [
    ("batch_size", 0, "generation.batch_size: must be at least 1, got 0"),
    ("max_new_tokens", -1, "generation.max_new_tokens: must be 0 or more, got -1"),
    ("temperature", 0.0, "generation.temperature: must be > 0 when sampling"),
    ("top_p", 0.0, "generation.top_p: must be in (0, 1], got 0.0"),
    ("top_p", 1.5, "generation.top_p: must be in (0, 1], got 1.5"),
])
def test_bad_settings_are_one_line_user_errors(policy, problems, key, value, message):
    with pytest.raises(UserError) as e:
        _gen(policy, problems, cfg=_cfg(**{key: value}))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_greedy_takes_temperature_zero_and_zero_new_tokens(policy, problems):
    traces = _gen(policy, problems, samples=1, do_sample=False, cfg=_cfg(temperature=0.0, max_new_tokens=0))
    assert all(t["text"] == "" and t["num_tokens"] == 0 and t["truncated"] for t in traces)


def test_cli_bad_batch_size_is_exit_2(tmp_path, tiny_dir, problems, capsys):
    write_problems(tmp_path / "p.jsonl", problems)
    rc = cli.main(["generate", "--model", str(tiny_dir), "--problems", str(tmp_path / "p.jsonl"),
                   "--set", "generation.batch_size=0", "-o", str(tmp_path / "t.jsonl")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "generation.batch_size" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "t.jsonl").exists()


# ------------------------------------------------------------------------------------------ stops, truncation

class ScriptedLM(LlamaForCausalLM):
    """Writes a fixed token script after a prompt of `prompt_len` tokens: at position p the next token is
    script[p - prompt_len + 1], whatever the input; counts forward calls."""

    script: list[int] = []
    prompt_len = 0
    calls = 0

    def forward(self, *args, position_ids=None, **kwargs):
        out = super().forward(*args, position_ids=position_ids, **kwargs)
        type(self).calls += 1
        last = position_ids[:, -1].tolist()
        logits = torch.full_like(out.logits[:, -1, :], -1e9)
        for r, p in enumerate(last):
            logits[r, self.script[min(max(p - self.prompt_len + 1, 0), len(self.script) - 1)]] = 0.0
        out.logits[:, -1, :] = logits
        return out


def _scripted(tiny_dir, problem, written, after):
    _, tok = load_policy(tiny_dir)
    from oakdpo.prompting import Framing

    framing = Framing(tok)
    model = ScriptedLM.from_pretrained(tiny_dir)
    model.eval()
    ScriptedLM.script = tok(written + after, add_special_tokens=False)["input_ids"]
    ScriptedLM.prompt_len = len(framing.encode(framing.prompt(problem).text))
    ScriptedLM.calls = 0
    return model, tok


FINAL = ('Thought: [0] So the query is true.\nAction: <Option type="CONCLUDE" args="[0]" />\n'
         "Final Answer: TRUE")


@pytest.mark.parametrize("decoder", ["slots", "padded"])
def test_generation_stops_after_the_final_answer_line(tiny_dir, problems, decoder, monkeypatch):
    if decoder == "padded":
        monkeypatch.setattr(G, "_slots_supported", lambda *a: False)
    model, tok = _scripted(tiny_dir, problems[0], FINAL, "\nThought: more words after the answer")
    cfg = GenerationConfig(batch_size=8, max_new_tokens=len(ScriptedLM.script))
    traces = generate_traces(model, tok, problems[:1], 3, cfg, do_sample=False, progress=False)
    n = len(tok(FINAL, add_special_tokens=False)["input_ids"])
    assert [t["text"] for t in traces] == [FINAL] * 3
    assert [(t["num_tokens"], t["truncated"]) for t in traces] == [(n, False)] * 3
    if decoder == "slots":  # one prefill, then one step per token until the label: stopped right there
        assert ScriptedLM.calls == 1 + (n - 1)


def test_a_final_answer_that_is_no_label_ends_at_its_line_break(tiny_dir, problems):
    written = "Thought: x\nFinal Answer: maybe so\n"
    model, tok = _scripted(tiny_dir, problems[0], written, "Thought: more\nThought: more")
    cfg = GenerationConfig(batch_size=8, max_new_tokens=len(ScriptedLM.script))
    [t] = generate_traces(model, tok, problems[:1], 1, cfg, do_sample=False, progress=False)
    assert t["text"] == "Thought: x\nFinal Answer: maybe so" and not t["truncated"]
    assert t["num_tokens"] == len(tok(written, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("decoder", ["slots", "padded"])
def test_a_trace_cut_at_max_new_tokens_is_marked_truncated(tiny_dir, problems, decoder, monkeypatch):
    if decoder == "padded":
        monkeypatch.setattr(G, "_slots_supported", lambda *a: False)
    model, tok = _scripted(tiny_dir, problems[0], "Thought: a b c d e f g h i j k l m n o p", "")
    cfg = GenerationConfig(batch_size=8, max_new_tokens=6)
    [t] = generate_traces(model, tok, problems[:1], 1, cfg, do_sample=False, progress=False)
    assert t["truncated"] is True and t["num_tokens"] == 6
    # the same trace with room to end at the Final Answer line is not truncated
    model, tok = _scripted(tiny_dir, problems[0], FINAL, "")
    cfg = GenerationConfig(batch_size=8, max_new_tokens=len(ScriptedLM.script))
    [t] = generate_traces(model, tok, problems[:1], 1, cfg, do_sample=False, progress=False)
    assert t["truncated"] is False and t["text"] == FINAL


def test_stops_at_every_eos_the_model_declares(tiny_dir, problems):
    """A second eos id in the model's generation_config (as Llama 3 / Qwen declare) ends the trace."""
    model, tok = _scripted(tiny_dir, problems[0], "Thought: a b c d e f", "")
    extra = ScriptedLM.script[3]
    model.generation_config.eos_token_id = [tok.eos_token_id, extra]
    cfg = GenerationConfig(batch_size=8, max_new_tokens=len(ScriptedLM.script))
    [t] = generate_traces(model, tok, problems[:1], 1, cfg, do_sample=False, progress=False)
    assert t["num_tokens"] == 4 and not t["truncated"]
    assert t["text"] == tok.decode(ScriptedLM.script[:3])


def test_cut_after_final_answer():
    assert cut_after_final_answer("a\nFinal Answer: FALSE\nThought: x") == "a\nFinal Answer: FALSE"
    assert cut_after_final_answer("a\nFinal Answer: perhaps  \nmore") == "a\nFinal Answer: perhaps"
    assert cut_after_final_answer("no answer line\nx") == "no answer line\nx"
    assert cut_after_final_answer("") == ""


def test_choose_tokens_top_p_keeps_the_head_of_the_distribution():
    gc = HFGenerationConfig(do_sample=True, temperature=1.0, top_p=0.5, top_k=0, min_p=0.0, repetition_penalty=1.0)
    logits = torch.log(torch.tensor([[0.1, 0.6, 0.3]] * 50))
    u = torch.linspace(0.01, 1.0, 50)
    assert set(G.choose_tokens(logits, u, gc).tolist()) == {1}
    gc.top_p = 0.8
    assert set(G.choose_tokens(logits, u, gc).tolist()) == {1, 2}
    gc.top_p = 1.0
    assert G.choose_tokens(logits, u, gc).tolist().count(0) == 5  # the CDF: 10% of the uniforms


# ------------------------------------------------------------------------------------------ resume

def test_partial_file_resume_equals_an_uninterrupted_run(policy, problems, tmp_path, capsys):
    cfg = _cfg(batch_size=2, max_new_tokens=15)
    full = _gen(policy, problems, samples=2, cfg=cfg, seed=9)
    part = tmp_path / "traces.partial.jsonl"
    first = _gen(policy, problems, samples=2, cfg=cfg, seed=9, partial_path=part)
    assert _texts(first) == _texts(full)
    lines = part.read_text().splitlines()
    assert len(lines) == 1 + len(full)  # a header, then every trace
    # a kill after 5 traces, in the middle of writing the 6th
    part.write_text("\n".join(lines[:6]) + "\n" + lines[6][:17])
    capsys.readouterr()
    again = _gen(policy, problems, samples=2, cfg=cfg, seed=9, partial_path=part)
    assert "resuming generation: 5 of 12 traces already in" in capsys.readouterr().err
    assert _texts(again) == _texts(full)
    assert len(part.read_text().splitlines()) == 1 + len(full)
    assert partial_files(part) == [part]


def test_a_partial_file_of_other_settings_is_not_reused(policy, problems, tmp_path, capsys):
    part = tmp_path / "p.jsonl"
    _gen(policy, problems, samples=1, cfg=_cfg(), seed=1, partial_path=part)
    capsys.readouterr()
    b = _gen(policy, problems, samples=1, cfg=_cfg(), seed=2, partial_path=part)
    assert "resuming" not in capsys.readouterr().err
    assert _texts(b) == _texts(_gen(policy, problems, samples=1, cfg=_cfg(), seed=2))


KILL_SCRIPT = r"""
import sys, time, torch
from oakdpo.config import GenerationConfig
from oakdpo.generation import generate_traces
from oakdpo.model import load_policy
from oakdpo.tasks.prontoqa.generator import generate_problems
torch.set_num_threads(1)
model, tok = load_policy(sys.argv[1])
slow = model.forward
def forward(*a, **k):
    time.sleep(float(sys.argv[3]))
    return slow(*a, **k)
model.forward = forward
problems = generate_problems(12, (1, 3), seed=2)
cfg = GenerationConfig(batch_size=3, max_new_tokens=16, temperature=1.0, seed=5)
generate_traces(model, tok, problems, 2, cfg, progress=False, partial_path=sys.argv[2] if sys.argv[2] != "-" else None)
"""


@pytest.mark.slow
def test_sigkill_during_generation_then_rerun_resumes(tiny_dir, tmp_path):
    part = tmp_path / "traces.partial.jsonl"
    script = tmp_path / "gen.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_dir), str(part), "0.02"], env=env,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if part.exists() and len(part.read_text().splitlines()) >= 1 + 6:  # two flushes of 3
            break
        time.sleep(0.01)
    assert proc.poll() is None, "generation ended before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = len(part.read_text().splitlines()) - 1
    assert 6 <= kept < 24
    rerun = subprocess.run([sys.executable, str(script), str(tiny_dir), str(part), "0"], env=env,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming generation: {kept} of 24 traces already in {part}" in rerun.stderr

    model, tok = load_policy(tiny_dir)
    cfg = GenerationConfig(batch_size=3, max_new_tokens=16, temperature=1.0, seed=5)
    full = generate_traces(model, tok, generate_problems(12, (1, 3), seed=2), 2, cfg, progress=False)
    resumed = [json.loads(x) for x in part.read_text().splitlines()[1:]]
    key = {(t["problem_id"], t["sample"]): t for t in resumed}
    assert len(key) == 24
    assert _texts([key[(t["problem_id"], t["sample"])] for t in full]) == _texts(full)


# ------------------------------------------------------------------------------------------ backends, CLI

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
    assert all(r["truncated"] == (r["num_tokens"] == 5 and "Final Answer:" not in r["text"]) for r in lines)


def test_verify_command_imports_no_model_library(tmp_path, problems):
    # Verifying PrOntoQA traces needs neither torch nor any training library, nor the FOLIO solver (z3).
    from oakdpo.tasks.prontoqa.gold import gold_trace

    write_problems(tmp_path / "p.jsonl", problems)
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"problem_id": p.id, "sample": 0, "text": gold_trace(p)}) + "\n"
                                              for p in problems))
    code = ("import sys; from oakdpo import cli; "
            f"rc = cli.main(['verify', '--problems', {str(tmp_path / 'p.jsonl')!r}, '--traces', "
            f"{str(tmp_path / 't.jsonl')!r}, '-o', {str(tmp_path / 'v.jsonl')!r}]); "
            "print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'z3', 'trl', 'peft', "
            "'datasets', 'sklearn'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 []"
    assert all(json.loads(line)["trace_valid"] for line in (tmp_path / "v.jsonl").read_text().splitlines())


def test_generate_command_imports_only_what_it_uses(tmp_path, tiny_dir, problems):
    write_problems(tmp_path / "p.jsonl", problems)
    # transformers 5.20 (the vllm extra's) imports sklearn with its own generation module: not ours to avoid
    own = subprocess.run([sys.executable, "-c", "import sys, transformers.generation.utils; "
                          "print('sklearn' in sys.modules)"], capture_output=True, text=True)
    unused = {"z3", "trl", "peft", "datasets"} | ({"sklearn"} if own.stdout.strip() == "False" else set())
    code = ("import sys; from oakdpo import cli; "
            f"rc = cli.main(['generate', '--model', {str(tiny_dir)!r}, '--problems', {str(tmp_path / 'p.jsonl')!r}, "
            f"'--set', 'generation.max_new_tokens=3', '-o', {str(tmp_path / 't.jsonl')!r}]); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(unused)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
