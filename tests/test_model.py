"""The built-in tiny model: HF folder layout, tokenizer round trip, loading rules (local only, LoRA adapters)."""

import json
import random
import re
import zlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from oakdpo import cli
from oakdpo.config import ModelConfig, load_config, save_config
from oakdpo.tasks.prontoqa.generator import generate_problems
from oakdpo.trace import Problem
from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.io import UserError
from oakdpo.tiny import _POLARITY_TOKEN, _random_direction, build_corpus, build_tiny_model, init_tiny_model, subject_group, train_tokenizer
from oakdpo.model import load_policy

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=600,
                   max_position_embeddings=1024)


@pytest.fixture(scope="module")
def problems():
    return generate_problems(30, (1, 3), seed=1)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, problems):
    out = tmp_path_factory.mktemp("tiny") / "model"
    init_tiny_model(TINY, build_corpus(problems), out)
    return out


def test_init_writes_a_standard_hf_folder(tiny_dir):
    names = sorted(p.name for p in tiny_dir.iterdir())
    assert names == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json"]
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    assert isinstance(model, LlamaForCausalLM)
    c = model.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size) == (32, 2, 2, 64)
    assert c.vocab_size == len(tok) <= 600
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert (c.pad_token_id, c.bos_token_id, c.eos_token_id) == (0, 1, 2)
    n = sum(p.numel() for p in model.parameters())
    assert n == len(tok) * 32 + 2 * (4 * 32 * 32 + 3 * 32 * 64 + 2 * 32) + 32  # tied embeddings, RMSNorms


def test_init_is_deterministic(tmp_path, problems, tiny_dir):
    init_tiny_model(TINY, build_corpus(problems), tmp_path / "again")
    assert (tmp_path / "again" / "tokenizer.json").read_text() == (tiny_dir / "tokenizer.json").read_text()
    a, b = load_file(tiny_dir / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tokenizer_round_trips_exactly(tiny_dir, problems):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    rng = random.Random(0)
    texts = [build_prompt(p) + gold_trace(p) for p in problems[:5]]
    texts += ["héllo  wörld\t\n\n  🙂 ", "", " ", "Final Answer: maybe\r\n", "[999] Zzz is a qqq."]
    texts += ["".join(chr(rng.randint(1, 0x2FFF)) for _ in range(200)) for _ in range(20)]
    for t in texts:
        ids = tok(t)["input_ids"]
        assert ids[0] == tok.bos_token_id
        assert tok.decode(ids, skip_special_tokens=True) == t
    assert tok("x</s>")["input_ids"][-1] == tok.eos_token_id  # the special token's text is the token itself


def test_tokenizer_pieces_make_each_lookup_one_token(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    premises = ["Numpuses are not wooden.", "Max is a numpus.", "Every yumpus is numpuses."]
    prompt = build_prompt(Problem(id="t", premises=premises, query="True or false: Max is not wooden.", label="TRUE"))
    pieces = [w.replace("Ġ", " ").replace("Ċ", "\n")
              for w, _ in tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(prompt)]
    assert pieces == ["Query", ":", " Max is not", "[Q]", " wooden.", "\n", "Premises", ":",
                      "\n", "[0]", " Numpuses are not", "[0]", " wooden", ".", "\n", "[1]", " Max is a", "[1]",
                      " numpus", ".", "\n", "[2]", " Every yumpus is", "{2}", " numpus", "es", ".", "\n", "Next", ":",
                      " ", "[3]", "\n", "Proof", ":", "\n"]
    # the query is its statement whatever the phrasing: Logic-LM's phrasing gives the same prompt
    assert build_prompt(Problem(id="t", premises=premises, label="TRUE",
                                query="Is the following statement true or false? Max is not wooden.")) == prompt
    assert tok.decode(tok(prompt)["input_ids"], skip_special_tokens=True) == prompt
    assert tok.tokenize(' <Option type="MODUS_PONENS" args="[') == ['Ġ<OptionĠtype="', "MODUS_PONENS", '"Ġargs="[']
    assert tok.tokenize(']" />') == [']"Ġ/>']
    # the last step restates the query by its tag: "[Q]" is one token, the same as in the prompt
    pieces = [w.replace("Ġ", " ") for w, _ in tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str(
        " So [Q] Max is not wooden: true.")]
    assert pieces == [" So", " ", "[Q]", " Max is not", " wooden", ":", " true", "."]
    assert tok.tokenize("[Q]") == ["[Q]"]


def test_polarity_direction_separates_the_fused_tokens_by_polarity(problems):
    tok = train_tokenizer(build_corpus(problems), 2048)  # room for the fused sentence tokens
    cfg = ModelConfig(**{**TINY.__dict__, "freeze_embeddings": True, "induction_init": True})
    plain = build_tiny_model(cfg, tok, seed=0).get_input_embeddings().weight
    signed = build_tiny_model(ModelConfig(**{**cfg.__dict__, "polarity_direction": 1.0}), tok,
                              seed=0).get_input_embeddings().weight
    text = {i: tok.convert_tokens_to_string([t]) for t, i in tok.get_vocab().items()}
    neg = [i for i, t in text.items() if _POLARITY_TOKEN.match(t) and t.endswith(" not")]
    pos = [i for i, t in text.items() if _POLARITY_TOKEN.match(t) and not t.endswith(" not")]
    other = [i for i in text if i not in neg + pos]
    assert {text[i] for i in neg} >= {" Max is not", " Numpuses are not"} and " Max is" in {text[i] for i in pos}
    assert " Max is a" not in {text[i] for i in neg + pos}  # concept links carry no polarity
    assert torch.equal(signed[other], plain[other])  # every other token keeps its embedding
    # the added direction is what separates them: one linear read-out gives every token's polarity
    v = (signed[neg] - plain[neg]).mean(0) - (signed[pos] - plain[pos]).mean(0)
    assert ((signed[neg] @ v) > 0).all() and ((signed[pos] @ v) < 0).all()
    assert not (((plain[neg] @ v) > 0).all() and ((plain[pos] @ v) < 0).all())
    rms = signed[:, 1:].pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-4)  # rows stay unit-RMS for the prewired heads


def test_second_form_and_subject_directions(problems):
    tok = train_tokenizer(build_corpus(problems), 2048)
    cfg = ModelConfig(**{**TINY.__dict__, "hidden_size": 128, "num_heads": 4, "freeze_embeddings": True,
                          "induction_init": True})  # width of the tiny default: random directions are ~orthogonal
    plain = build_tiny_model(cfg, tok, seed=0).get_input_embeddings().weight
    text = {i: tok.convert_tokens_to_string([t]) for t, i in tok.get_vocab().items()}

    # second-form tags ("{12}") get one shared direction, every other token keeps its embedding
    formed = build_tiny_model(ModelConfig(**{**cfg.__dict__, "tag_form_direction": 1.0}), tok,
                              seed=0).get_input_embeddings().weight
    second = [i for i, t in text.items() if re.fullmatch(r"\{\d+\}", t)]
    first = [i for i, t in text.items() if re.fullmatch(r"\[\d+\]", t)]
    assert len(second) >= 10 and len(first) >= 10  # "{12}" is one token like "[12]"
    other = [i for i in text if i not in second]
    assert torch.equal(formed[other], plain[other])
    w = (formed[second] - plain[second]).mean(0)
    assert (formed[second] @ w).min() > (formed[first] @ w).max()  # one linear read-out tells the forms apart

    # fused subject-verb tokens share a direction per subject, whatever the form
    subj = build_tiny_model(ModelConfig(**{**cfg.__dict__, "subject_direction": 1.0}), tok,
                            seed=0).get_input_embeddings().weight
    ids = {t: i for i, t in text.items()}
    same = [ids[t] for t in (" Numpuses are", " Every numpus is", " Each numpus is not") if t in ids]
    assert len(same) >= 2
    c = _random_direction(plain.shape[1], 2468 + zlib.crc32(b"numpus"))  # seed 2468 + crc32(subject)
    assert torch.equal(subj[ids[" numpus"]], plain[ids[" numpus"]])  # the bare concept (a lookup key) is untouched
    others = [i for i, t in text.items() if re.match(r"^ ?(Each|Every) [a-z]+ is", t) and "numpus" not in t]
    assert (subj[same] @ c).min() > 2 * (subj[others] @ c).abs().max()
    assert (plain[same] @ c).abs().mean() < (subj[same] @ c).mean() / 3  # random overlaps are ~N(0, 127)

    assert (subject_group(" Each sterpus is an"), subject_group(" Max is not"), subject_group(" sterpus")) == (
        "sterpus", "max", None)


def test_load_policy_for_generation_and_training(tiny_dir):
    model, tok = load_policy(tiny_dir)
    assert tok.padding_side == "left" and not model.training
    model, tok = load_policy(tiny_dir, for_training=True)
    assert tok.padding_side == "right"


def test_attn_implementation_reaches_the_loaded_model(tiny_dir):
    assert load_policy(tiny_dir)[0].config._attn_implementation == "sdpa"  # 'auto': transformers' default
    model, _ = load_policy(tiny_dir, ModelConfig(attn_implementation="eager"), for_training=True)
    assert model.config._attn_implementation == "eager"
    with pytest.raises(UserError, match=r"^model.attn_implementation: .*: could not load the model \(ValueError: "
                                        r"Specified `attn_implementation="):
        load_policy(tiny_dir, ModelConfig(attn_implementation="bogus"))


@pytest.mark.parametrize("kind", ["missing", "no_config", "hub_id"])
def test_bad_model_paths_are_user_errors(tmp_path, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if kind == "missing":
        path, expected = "nope/model", "nope/model: not a local model folder; expected a local Hugging Face"
    elif kind == "no_config":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "weights.bin").write_bytes(b"x")
        path, expected = "empty", "empty: no config.json or adapter_config.json; expected a local Hugging Face"
    else:
        path, expected = "meta-llama/Llama-3-8B", "meta-llama/Llama-3-8B: not a local model folder; expected"
    with pytest.raises(UserError) as e:
        load_policy(path)
    assert str(e.value).startswith(expected)
    assert "\n" not in str(e.value)


def test_bad_model_path_cli_exit_code_2(tmp_path, capsys, problems):
    from oakdpo.data import write_problems

    write_problems(tmp_path / "p.jsonl", problems[:2])
    rc = cli.main(["generate", "--model", "meta-llama/Llama-3-8B", "--problems", str(tmp_path / "p.jsonl"),
                   "--samples", "1", "-o", str(tmp_path / "t.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == ["error: meta-llama/Llama-3-8B: not a local model folder; expected a local Hugging Face "
                   "checkpoint folder (config.json) or LoRA adapter folder (adapter_config.json) — hub ids are "
                   "not downloaded"]
    assert not (tmp_path / "t.jsonl").exists()


def _adapter(tiny_dir, out):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    torch.manual_seed(0)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False, task_type="CAUSAL_LM"))
    peft.save_pretrained(out)
    return peft


def test_lora_adapter_folder_loads_via_peft(tiny_dir, tmp_path):
    peft = _adapter(tiny_dir, tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        str(tiny_dir)
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    peft.eval()
    with torch.no_grad():
        want = peft(ids).logits
        base_logits = AutoModelForCausalLM.from_pretrained(tiny_dir)(ids).logits
    model, tok = load_policy(tmp_path / "adapter")
    with torch.no_grad():
        got = model(ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, base_logits, atol=1e-3)
    assert tok.eos_token_id == 2  # adapter folder has no tokenizer: the base's is used
    trainable, _ = load_policy(tmp_path / "adapter", for_training=True)
    names = [n for n, p in trainable.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)


def test_adapters_train_in_their_bf16_base_dtype_under_zero3_only(tiny_dir, tmp_path, monkeypatch):
    """ZeRO-3 gathers parameters in one dtype: a float32 adapter on a bf16 base fails at its first step."""
    _adapter(tiny_dir, tmp_path / "adapter")
    cfg = ModelConfig(dtype="bfloat16")

    def adapter_dtypes(model=None):
        model = model or load_policy(tmp_path / "adapter", cfg, for_training=True)[0]
        return {p.dtype for n, p in model.named_parameters() if "lora_" in n}

    assert adapter_dtypes() == {torch.float32}  # PEFT's default elsewhere
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2")
    assert adapter_dtypes() == {torch.float32}
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    assert adapter_dtypes() == {torch.bfloat16}
    # DPO's reference: TRL adds a float32 copy "ref" of the adapter, which run_dpo casts back
    from oakdpo.dpo import adapters_to_base_dtype

    model, _ = load_policy(tmp_path / "adapter", cfg, for_training=True)
    model.add_adapter("ref", model.peft_config["default"])
    assert adapter_dtypes(model) == {torch.bfloat16, torch.float32}
    adapters_to_base_dtype(model)
    assert adapter_dtypes(model) == {torch.bfloat16} and any(".ref." in n for n, _ in model.named_parameters())


def test_adapter_with_missing_base_is_a_user_error(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    with pytest.raises(UserError, match=r"base model 'org/base' is not a local model folder"):
        load_policy(tmp_path / "adapter")


def test_cli_model_init(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  hidden_size: 16\n  num_layers: 1\n  num_heads: 2\n  intermediate_size: 32\n"
                   "  vocab_size: 400\n  corpus_problems: 20\n")
    assert cli.main(["model", "init", "--config", str(cfg), "-o", str(tmp_path / "m")]) == 0
    model, tok = load_policy(tmp_path / "m")
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 1
    assert model.config.vocab_size == len(tok)


def test_tiny_config_loads():
    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    assert cfg.model.name_or_path is None
    assert cfg.model.lora is False


def test_float_override_accepts_exponent_without_dot():
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["dpo.learning_rate=3e-5", "sft.learning_rate=2"])
    assert (cfg.dpo.learning_rate, cfg.sft.learning_rate) == (3e-5, 2.0)
    with pytest.raises(UserError, match="dpo.learning_rate: expected a finite number, got 'fast'"):
        load_config(ROOT / "configs" / "tiny.yaml", ["dpo.learning_rate=fast"])


@pytest.mark.parametrize("override, error", [
    ("sft.epochs=null", "sft.epochs: expected a finite number, got None"),
    ("sft.batch_size=", "sft.batch_size: expected int, got None"),
    ("sft.batch_size=true", "sft.batch_size: expected int, got True"),
    ("sft.learning_rate=nan", "sft.learning_rate: expected a finite number, got nan"),
    ("model.dtype=null", "model.dtype: expected str, got None"),
    ("model.name_or_path=5", "model.name_or_path: expected str or null, got 5"),
    ("data.heldout=[1, 2]", "data.heldout: expected str or null, got [1, 2]"),
    ("model.lora_target_modules=[q_proj, 1]", "model.lora_target_modules[1]: expected str, got 1"),
    ("data.loop_premises=[20, 30]", "data.loop_premises: expected str or int or null, got [20, 30]"),
])
def test_each_key_takes_the_type_its_annotation_names(override, error):
    with pytest.raises(UserError, match=re.escape(f"override: {error}")):
        load_config(ROOT / "configs" / "tiny.yaml", [override])


def test_optional_and_range_keys_take_what_their_annotation_allows():
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["data.hops=3", "data.loop_premises=25", "data.heldout=null",
                                                       "model.lora_target_modules=[q_proj]"])
    assert (cfg.data.hops, cfg.data.loop_premises, cfg.data.heldout, cfg.model.lora_target_modules) == \
        (3, 25, None, ["q_proj"])



def test_choice_keys_are_checked_when_the_config_loads(tmp_path):
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["knowledge.calibration=temperature"])
    assert (cfg.knowledge.calibration, cfg.sft.curriculum_distractor) == ("temperature", "first")
    with pytest.raises(UserError, match=r"^override: knowledge.calibration: expected one of temperature, isotonic, "
                                        r"got 'platt'$"):
        load_config(ROOT / "configs" / "tiny.yaml", ["knowledge.calibration=platt"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft:\n  curriculum_distractor: last\n")
    with pytest.raises(UserError, match=r"bad.yaml: sft.curriculum_distractor: expected one of random, keep, first"):
        load_config(bad)


def test_every_formula_tag_of_the_default_mixture_is_one_token():
    # premises [0]..[29], the "Next:" number and the derived formulas up to [34] (30 premises, 5 hops), and the
    # second-form tags: one token each, or the lookups cannot copy them (configs/tiny.yaml's corpus size)
    from oakdpo.tiny import corpus_problems

    cfg = load_config(ROOT / "configs" / "tiny.yaml")
    tok = train_tokenizer(build_corpus(corpus_problems(cfg)), cfg.model.vocab_size)
    assert [k for k in range(35) if tok.tokenize(f"[{k}]") != [f"[{k}]"]] == []
    assert [k for k in range(1, 30) if len(tok.tokenize(f"{{{k}}}")) != 1] == []


def _copy_head_scores(model, distance: int) -> tuple[float, float]:
    """Layer 1's heads as initialised: mean attention score of a token's query on the same token's key
    `distance` positions back, and on other tokens' keys (200 tokens of the vocabulary)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    attn, c = model.model.layers[1].self_attn, model.config
    hd = c.hidden_size // c.num_attention_heads
    x = model.model.layers[1].input_layernorm(model.get_input_embeddings().weight[3:203])
    q = attn.q_proj(x).view(len(x), -1, hd).transpose(0, 1)
    k = attn.k_proj(x).view(len(x), -1, hd).transpose(0, 1)
    cos, sin = model.model.rotary_emb(x, torch.tensor([[distance], [0]]))
    q, _ = apply_rotary_pos_emb(q, q, cos[None, :1], sin[None, :1])
    _, k = apply_rotary_pos_emb(k, k, cos[None, 1:], sin[None, 1:])
    s = (q @ k.transpose(-1, -2)).detach() / hd ** 0.5
    same = s.diagonal(dim1=-2, dim2=-1)
    return same.mean().item(), ((s.sum((-1, -2)) - same.sum(-1)) / (len(x) * (len(x) - 1))).mean().item()


def test_tiny_default_matches_a_token_across_its_whole_context(problems):
    """The copying heads' match must hold across a whole row (30 premises at 5 hops with the proof: at most 385
    tokens): with RoPE base 10,000 the slower half of a head (any width) still turns by up to 4 radians 400 tokens
    back."""
    cfg = load_config(ROOT / "configs" / "tiny.yaml").model
    tok = train_tokenizer(build_corpus(problems), cfg.vocab_size)
    model = build_tiny_model(cfg, tok, seed=0)
    assert model.config.rope_parameters["rope_theta"] == cfg.rope_theta
    near, other = _copy_head_scores(model, 0)
    far, _ = _copy_head_scores(model, 400)
    assert far > 0.95 * near and far > 10 * abs(other) + 5
    llama_base = build_tiny_model(ModelConfig(**{**cfg.__dict__, "rope_theta": 10000.0}), tok, seed=0)
    near, _ = _copy_head_scores(llama_base, 0)
    far, _ = _copy_head_scores(llama_base, 400)
    assert far < 0.6 * near


def test_tiny_default_is_the_same_model_on_one_thread_and_on_two(problems):
    """MKL's QR (mimetic_init) rounds otherwise on one thread: the same seed must still give the same model."""
    cfg = load_config(ROOT / "configs" / "tiny.yaml").model
    tok = train_tokenizer(build_corpus(problems), cfg.vocab_size)
    threads = torch.get_num_threads()
    try:
        states = []
        for n in (1, 2):
            torch.set_num_threads(n)
            states.append(build_tiny_model(cfg, tok, seed=0).state_dict())
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_yes_no_on_off_stay_words_and_only_true_false_are_booleans(tmp_path):
    # YAML 1.1 reads an unquoted no as false, and `mixed_precision: no` failed with "expected str, got False"
    cfg = load_config(ROOT / "configs" / "training.yaml", ["model.mixed_precision=no", "model.lora=false"])
    assert (cfg.model.mixed_precision, cfg.model.lora) == ("no", False)
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  mixed_precision: no\n  lora: True\n  name_or_path: off\n")
    cfg = load_config(path)
    assert (cfg.model.mixed_precision, cfg.model.lora, cfg.model.name_or_path) == ("no", True, "off")
    with pytest.raises(UserError, match=re.escape("override: model.lora: expected true/false, got 'yes'")):
        load_config(None, ["model.lora=yes"])
    save_config(cfg, tmp_path / "saved.yaml")  # the record of a run reads back the same
    assert load_config(tmp_path / "saved.yaml").to_dict() == cfg.to_dict()
