"""q-hat: metrics against hand-computed values, the head on synthetic features, step positions on a tiny
random Llama with a locally trained byte-level BPE tokenizer, save/load, scoring and reranking."""

import json

import pytest

from oakdpo.config import FormatConfig

LOOKUP = FormatConfig(style="lookup")  # the tiny model's style
import torch
from torch import nn

from oakdpo.config import KnowledgeConfig
from oakdpo.trace import OPTION_TYPES, Problem, render_trace
from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt as build_prompt
from oakdpo.knowledge import (
    QHead, action_line_spans, auroc, brier, ece, load_qhat, predict, reliability_diagram, rerank,
    cap_traces, run_knowledge_stage, save_qhat, score_traces, split_problems, step_features, train_qhat,
)

MP, MT = OPTION_TYPES.index("MODUS_PONENS"), OPTION_TYPES.index("MODUS_TOLLENS")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one intra-op thread is as fast, and far faster on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------- metrics

def test_brier_and_ece_hand_computed():
    probs, labels = [0.1, 0.4, 0.8, 0.9], [0, 1, 1, 1]
    # Brier: (0.1^2 + 0.6^2 + 0.2^2 + 0.1^2) / 4 = (0.01 + 0.36 + 0.04 + 0.01) / 4 = 0.105
    assert brier(probs, labels) == pytest.approx(0.105)
    # ECE, 10 bins: each prob alone in bins 1, 4, 8, 9 with gaps |0-0.1|, |1-0.4|, |1-0.8|, |1-0.9|
    # -> (0.1 + 0.6 + 0.2 + 0.1) / 4 = 0.25
    assert ece(probs, labels) == pytest.approx(0.25)
    # Shared bins: bin 1 {0.12, 0.18} conf 0.15 acc 0.5 -> 2/5 * 0.35 = 0.14; bin 5 {0.55} acc 1 -> 1/5 * 0.45 =
    # 0.09; bin 9 {0.95, 0.97} conf 0.96 acc 0.5 -> 2/5 * 0.46 = 0.184; total 0.414
    assert ece([0.12, 0.18, 0.55, 0.95, 0.97], [0, 1, 1, 1, 0]) == pytest.approx(0.414)
    # p = 1.0 falls in the last bin; a perfectly calibrated set has ECE 0
    assert ece([1.0, 1.0, 0.0], [1, 1, 0]) == pytest.approx(0.0)
    assert ece([0.25, 0.25, 0.25, 0.25], [1, 0, 0, 0]) == pytest.approx(0.0)
    # 5 bins: 0.1 and 0.3 in bins 0 and 1 -> (|0-0.1| + |1-0.3|) / 2 = 0.4
    assert ece([0.1, 0.3], [0, 1], n_bins=5) == pytest.approx(0.4)


def test_auroc_hand_computed_with_ties():
    # positives 0.5, 0.9, 0.1; negatives 0.2, 0.5. Pairs won: (0.5>0.2)=1, (0.5=0.5)=1/2, (0.9>0.2)=1,
    # (0.9>0.5)=1, (0.1<0.2)=0, (0.1<0.5)=0 -> 3.5 / 6
    assert auroc([0.2, 0.5, 0.5, 0.9, 0.1], [0, 1, 0, 1, 1]) == pytest.approx(3.5 / 6)
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == pytest.approx(1.0)
    assert auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == pytest.approx(0.0)
    assert auroc([0.5, 0.5, 0.5], [0, 1, 1]) == pytest.approx(0.5)
    assert auroc([0.3, 0.7], [1, 1]) is None
    assert auroc([0.3, 0.7], [0, 0]) is None


def test_reliability_diagram_writes_png(tmp_path):
    path = tmp_path / "rel.png"
    reliability_diagram([0.1, 0.4, 0.8, 0.9], [0, 1, 1, 1], path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rel.png"]  # no temp file left


def test_split_problems_deterministic_and_order_free():
    ids = [f"p{i}" for i in range(20)]
    a = split_problems(ids, 0.25, seed=3)
    assert len(a) == 5 and a <= set(ids)
    assert split_problems(list(reversed(ids)) + ids, 0.25, seed=3) == a
    assert split_problems(ids, 0.25, seed=4) != a
    assert split_problems(["only"], 0.5) == set()
    assert split_problems(["a", "b"], 0.9) in ({"a"}, {"b"})  # never all problems
    assert split_problems(ids, 0.0) == set()


# --------------------------------------------------------------------------------------------- the head

def _synthetic(n_problems=400, steps=5, dim=16, seed=0):
    """Valid iff (h[0] > 0) for MODUS_PONENS steps, (h[0] < 0) for MODUS_TOLLENS: needs the option embedding."""
    g = torch.Generator().manual_seed(seed)
    n = n_problems * steps
    h = torch.randn(n, dim, generator=g) * 2
    h[:, 0] = torch.sign(h[:, 0]) * (0.3 + h[:, 0].abs())  # margin around the boundary
    opt = torch.where(torch.rand(n, generator=g) < 0.5, MP, MT)
    label = ((h[:, 0] > 0) == (opt == MP)).float()
    return {"hidden": h, "option": opt, "label": label, "problem_id": [f"p{i // steps}" for i in range(n)]}


def test_head_learns_separable_rule():
    feats = _synthetic()
    cfg = KnowledgeConfig(epochs=30)
    before = torch.random.get_rng_state()
    head, m = train_qhat(feats, cfg, seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
    assert m["n_train"] + m["n_heldout"] == 2000
    assert m["n_heldout"] == 500 and m["n_heldout_problems"] == 100 and m["n_train_problems"] == 300
    assert m["heldout_accuracy"] >= 0.98
    assert m["auroc"] > 0.99
    assert m["brier"] < 0.03 and m["ece"] < 0.05
    assert 0.45 < m["positive_rate"] < 0.55
    # deterministic per seed
    head2, m2 = train_qhat(feats, cfg, seed=0)
    assert m2 == m
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), head2.state_dict().values()))


def test_metrics_none_without_heldout():
    feats = _synthetic(n_problems=1, steps=20)
    head, m = train_qhat(feats, KnowledgeConfig(epochs=2), seed=0)
    assert m["n_heldout"] == 0 and m["brier"] is None and m["ece"] is None and m["auroc"] is None
    assert m["n_train"] == 20


def test_save_load_roundtrip(tmp_path):
    feats = _synthetic(n_problems=40)
    head, _ = train_qhat(feats, KnowledgeConfig(epochs=3), seed=1)
    head.position = "action_end"
    save_qhat(head, tmp_path / "end")
    assert load_qhat(tmp_path / "end").position == "action_end"
    head.position = "action"
    save_qhat(head, tmp_path / "qhat")
    assert sorted(p.name for p in (tmp_path / "qhat").iterdir()) == ["qhat.json", "qhat.safetensors"]
    meta = json.loads((tmp_path / "qhat" / "qhat.json").read_text())
    assert head.n_isotonic >= 2  # the default calibration installs an isotonic map
    assert meta == {"hidden_dim": 16, "hidden_size": 64, "option_dim": 16, "option_types": list(OPTION_TYPES),
                    "position": "action", "n_confidence": 0, "n_isotonic": head.n_isotonic}
    loaded = load_qhat(tmp_path / "qhat")
    assert float(loaded.temperature) == float(head.temperature)
    h, o = feats["hidden"], feats["option"]
    assert torch.equal(predict(loaded, h, o), predict(head, h, o))


def test_interp_matches_numpy():
    import numpy as np

    from oakdpo.knowledge import _interp

    xs, ys = torch.tensor([0.1, 0.3, 0.3, 0.7, 0.9]), torch.tensor([0.0, 0.2, 0.25, 0.25, 1.0])
    p = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 0.95, 1.0])
    want = np.interp(p.numpy(), xs.numpy(), ys.numpy())
    assert torch.allclose(_interp(p, xs, ys), torch.tensor(want, dtype=torch.float32), atol=1e-6)
    assert torch.equal(_interp(p, torch.tensor([0.4]), torch.tensor([0.6])), torch.full_like(p, 0.6))


def test_isotonic_map_applies_after_the_temperature():
    head = QHead(4, 8)
    h, o = torch.randn(50, 4), torch.full((50,), MP)
    raw = predict(head, h, o)
    head.set_isotonic([0.0, 1.0], [0.2, 0.6])  # P' = 0.2 + 0.4 P
    assert torch.allclose(predict(head, h, o), 0.2 + 0.4 * raw, atol=1e-5)
    head.set_isotonic([0.0, 0.5, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0])  # a step: clamped off 0 and 1
    got = predict(head, h, o)
    assert torch.allclose(got, torch.where(raw < 0.5, 1e-4, 1 - 1e-4), atol=1e-6)


def test_isotonic_calibration_fixes_a_miscalibrated_middle():
    # Scores that rank perfectly well but whose middle range is far too confident: the isotonic map learns
    # the empirical rates; the temperature alone cannot.
    g = torch.Generator().manual_seed(0)
    n = 6000
    z = torch.rand(n, generator=g) * 6 - 3
    rate = torch.where(z.abs() < 1.5, 0.15, torch.where(z > 0, 0.97, 0.03))  # mid: 15% valid whatever z says
    label = (torch.rand(n, generator=g) < rate).float()
    feats = {"hidden": torch.stack([z, torch.randn(n, generator=g)], 1), "option": torch.full((n,), MP),
             "label": label, "problem_id": [f"p{i // 5}" for i in range(n)]}
    _, temp = train_qhat(feats, KnowledgeConfig(epochs=20, calibration="temperature"), seed=0)
    iso_head, iso = train_qhat(feats, KnowledgeConfig(epochs=20, calibration="isotonic"), seed=0)
    assert temp["isotonic_knots"] == 0 and iso["isotonic_knots"] == iso_head.n_isotonic >= 2
    assert iso["ece"] < 0.03 < temp["ece"]
    assert iso["brier"] < temp["brier"]


def test_unknown_calibration_is_one_clear_error():
    from oakdpo.io import UserError
    with pytest.raises(UserError, match="knowledge.calibration: expected 'temperature' or 'isotonic'"):
        train_qhat(_synthetic(n_problems=4), KnowledgeConfig(epochs=1, calibration="platt"), seed=0)


def test_load_qhat_missing_folder(tmp_path):
    from oakdpo.io import UserError
    with pytest.raises(UserError, match="expected a q-hat folder"):
        load_qhat(tmp_path / "nope")


# --------------------------------------------------------------------------------------------- tiny policy

PROBLEMS = [
    Problem(id="a", premises=["Max is a wumpus.", "Every wumpus is a yumpus.", "Each yumpus is not red."],
            query="True or false: Max is not red.", label="TRUE"),
    Problem(id="b", premises=["Sam is a jompus.", "Jompuses are dumpuses.", "Every dumpus is bright."],
            query="True or false: Sam is bright.", label="TRUE"),
]


def _trace(steps, answer="TRUE"):
    return render_trace(steps, answer)


TRACES = [
    {"problem_id": "a", "sample": 0, "text": _trace([
        ("Max is a wumpus. So Max is a yumpus.", "MODUS_PONENS", [0, 1]),
        ("Max is a yumpus. So Max is not red.", "MODUS_PONENS", [3, 2]),
        ("Max is not red.", "CONCLUDE", [0])])},
    {"problem_id": "a", "sample": 1, "text": _trace([
        ("So Max is red.", "MODUS_TOLLENS", [0, 2]),
        ("Max is red.", "CONCLUDE", [1])], "FALSE")},
    {"problem_id": "b", "sample": 0, "text": _trace([
        ("Sam is a dumpus.", "MODUS_PONENS", [0, 1]),
        ("Sam is bright.", "MODUS_PONENS", [3, 2]),
        ("Sam is bright.", "CONCLUDE", [0])])},
    {"problem_id": "b", "sample": 1, "text": 'Thought: hmm\nAction: <Option type="RULE" args="[0]" />\n'
                                             'Thought: Sam is bright.\nAction: <Option type="CONCLUDE" args="[0]" />'},
]


def _verdict(tr, valid):
    """A hand-written verdict in verify.verify_traces's format (only the fields q-hat reads)."""
    steps = []
    for i, (s, e) in enumerate(action_line_spans(tr["text"])):
        opt = tr["text"][s:e].split('type="')[1].split('"')[0]
        steps.append({"index": i, "option": opt, "args": [], "claim": "", "valid": valid[i], "reason": "ok"})
    return {"problem_id": tr["problem_id"], "sample": tr["sample"], "steps": steps}


VERDICTS = [_verdict(TRACES[0], [True, True, True]), _verdict(TRACES[1], [False, False]),
            _verdict(TRACES[2], [True, False, False]), _verdict(TRACES[3], [False, True])]


@pytest.fixture(scope="module")
def policy():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [build_prompt(p) + t["text"] for p in PROBLEMS for t in TRACES] * 3
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         max_position_embeddings=512, pad_token_id=0))
    model.train()  # step_features must restore this
    return model, tokenizer


def _full_hidden(model, tokenizer, text):
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]


def test_step_features_positions_and_states(policy):
    model, tokenizer = policy
    by_id = {p.id: p for p in PROBLEMS}
    f = step_features(model, tokenizer, by_id, TRACES, VERDICTS, batch_size=3, fmt=LOOKUP)
    assert model.training  # train mode restored
    # reasoning steps only (CONCLUDE and the unknown RULE step dropped), in trace order
    assert f["problem_id"] == ["a", "a", "a", "b", "b"]
    assert f["trace_index"].tolist() == [0, 0, 1, 2, 2]
    assert f["step_index"].tolist() == [0, 1, 0, 0, 1]
    assert f["option"].tolist() == [MP, MP, MT, MP, MP]
    assert f["label"].tolist() == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert f["hidden"].shape == (5, 32) and f["hidden"].dtype == torch.float32
    for row, (t, pos) in enumerate(zip(f["trace_index"].tolist(), f["position"].tolist())):
        tr = TRACES[t]
        full = build_prompt(by_id[tr["problem_id"]]) + tr["text"]
        enc = tokenizer(full, return_offsets_mapping=True)
        piece = tokenizer.decode([enc["input_ids"][pos]])
        # the chosen token is where the Action line begins: it holds the 'A' of "Action"
        start, end = enc["offset_mapping"][pos]
        k = f["step_index"][row].item()
        line_start = len(build_prompt(by_id[tr["problem_id"]])) + action_line_spans(tr["text"])[k][0]
        assert start <= line_start < end and full[line_start:line_start + 7] == "Action:"
        assert piece.lstrip("\n").startswith("Action") or "Action".startswith(piece.lstrip("\n")), piece
        assert "Action" in tokenizer.decode(enc["input_ids"][pos:pos + 4])
        # right-padded batches give the same state as the sequence alone
        torch.testing.assert_close(f["hidden"][row], _full_hidden(model, tokenizer, full)[pos], atol=1e-5, rtol=1e-4)


def test_step_features_action_end(policy):
    model, tokenizer = policy
    by_id = {p.id: p for p in PROBLEMS}
    f = step_features(model, tokenizer, by_id, TRACES[:1], VERDICTS[:1], position="action_end", fmt=LOOKUP)
    tr = TRACES[0]
    full = build_prompt(by_id["a"]) + tr["text"]
    enc = tokenizer(full, return_offsets_mapping=True)
    for pos in f["position"].tolist():
        s, e = enc["offset_mapping"][pos]
        assert full[s:e].rstrip("\n").endswith("/>") or full[e - 1] == ">"


class StubHead(nn.Module):
    """logit +2 for MODUS_PONENS, -2 for anything else; ignores the hidden state."""

    def forward(self, hidden, option):
        return torch.where(option == MP, 2.0, -2.0).float() + 0 * hidden.sum(-1)


def test_score_traces_and_rerank(policy):
    model, tokenizer = policy
    by_id = {p.id: p for p in PROBLEMS}
    s = score_traces(model, tokenizer, StubHead(), by_id, TRACES, fmt=LOOKUP)
    sig = torch.sigmoid(torch.tensor(2.0, dtype=torch.float32)).double().item()
    assert s[0] == pytest.approx(sig * sig)  # two MODUS_PONENS steps
    assert s[1] == pytest.approx(1 - sig, rel=1e-5)  # one MODUS_TOLLENS step
    assert s[2] == pytest.approx(sig * sig)
    assert s[3] == 0.0  # unknown option type RULE: the verifier rejects it
    no_steps = {"problem_id": "a", "sample": 7, "text": "Thought: Max is not red.\n"
                "Action: <Option type=\"CONCLUDE\" args=\"[0]\" />\nFinal Answer: TRUE"}
    assert score_traces(model, tokenizer, StubHead(), by_id, [no_steps], fmt=LOOKUP) == [0.0]

    tie = dict(TRACES[2], sample=5)  # same text as sample 0 of b: tie -> lowest sample
    picked = rerank(model, tokenizer, StubHead(), PROBLEMS, [TRACES[1], tie, TRACES[3], TRACES[2], TRACES[0], no_steps], fmt=LOOKUP)
    assert [(t["problem_id"], t["sample"]) for t in picked] == [("a", 0), ("b", 0)]
    assert picked[0]["text"] == TRACES[0]["text"] and picked[0]["qhat_score"] == pytest.approx(sig * sig)
    # problems given as dicts work too; a problem without traces is left out
    assert [t["sample"] for t in rerank(model, tokenizer, StubHead(), [p.to_dict() for p in PROBLEMS],
                                        [TRACES[1]], fmt=LOOKUP)] == [1]


def test_run_knowledge_stage(policy, tmp_path):
    model, tokenizer = policy
    # 12 problems x 2 traces with the hand-written verdicts, so both splits have problems
    problems, traces, verdicts = [], [], []
    for i in range(12):
        for p in PROBLEMS:
            q = Problem(**{**p.to_dict(), "id": f"{p.id}{i}"})
            problems.append(q)
            for tr, v in zip(TRACES, VERDICTS):
                if tr["problem_id"] == p.id:
                    traces.append({**tr, "problem_id": q.id})
                    verdicts.append({**v, "problem_id": q.id})
    cfg = KnowledgeConfig(epochs=3)
    m = run_knowledge_stage(model, tokenizer, problems, traces, verdicts, cfg, tmp_path, seed=0, fmt=LOOKUP)
    by_id = {q.id: q for q in problems}  # the loop passes {id: Problem}: same result
    assert run_knowledge_stage(model, tokenizer, by_id, traces, verdicts, cfg, tmp_path / "d", seed=0, fmt=LOOKUP) == m
    assert m["n_steps"] == 12 * 5 and m["n_train"] + m["n_heldout"] == 60
    assert m["n_heldout_problems"] == 6 and m["n_heldout"] > 0  # 24 problems * 0.25
    assert m["positive_rate"] == pytest.approx(3 / 5)
    assert set(m) >= {"brier", "ece", "auroc", "n_train", "n_heldout", "positive_rate"}
    assert 0 <= m["ece"] <= 1 and 0 <= m["brier"] <= 1
    assert m["n_traces"] == m["n_traces_available"] == 48
    json.dumps(m)  # goes into metrics.json as is
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "qhat", "qhat_reliability.png"]
    head = load_qhat(tmp_path / "qhat")
    assert head.hidden_dim == 32 and head.position == "action"
    # the saved head scores traces of this policy; a head of another hidden size is refused in one line
    assert len(score_traces(model, tokenizer, head, by_id, traces[:3], fmt=LOOKUP)) == 3
    from oakdpo.io import UserError
    with pytest.raises(UserError, match="hidden states of size 16, but this policy's are 32"):
        score_traces(model, tokenizer, QHead(16), by_id, traces[:3], fmt=LOOKUP)
    # nothing to learn from: no files, metrics say why
    m0 = run_knowledge_stage(model, tokenizer, problems[:1], traces[:0], verdicts[:0], cfg, tmp_path / "empty", fmt=LOOKUP)
    assert m0["n_steps"] == 0 and m0["skipped"] == "no reasoning steps" and not (tmp_path / "empty").exists()


def test_step_features_peft_and_bos_tokenizer(policy):
    """A LoRA-wrapped policy (PEFT) and a tokenizer that prepends a BOS token (offsets (0, 0)) give the states
    of the full model at the Action tokens."""
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast
    import copy

    model, tokenizer = policy
    tok = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    bos_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>")
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                 init_lora_weights=False))
    by_id = {p.id: p for p in PROBLEMS}
    f = step_features(peft_model, bos_tok, by_id, TRACES[:1], VERDICTS[:1], fmt=LOOKUP)
    full = build_prompt(by_id["a"]) + TRACES[0]["text"]
    enc = bos_tok(full)
    assert enc["input_ids"][0] == bos
    plain = tokenizer(full)["input_ids"]
    action = [i for i, t in enumerate(plain) if t == tokenizer.convert_tokens_to_ids("Action")]
    assert len(action) == 3  # two MODUS_PONENS steps, then CONCLUDE (not a reasoning step)
    assert f["position"].tolist() == [action[0] + 1, action[1] + 1]  # shifted by the BOS token
    ids = torch.tensor([enc["input_ids"]])
    with torch.no_grad():
        ref = peft_model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
        base = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0]
    pos = f["position"].tolist()
    torch.testing.assert_close(f["hidden"], ref[pos], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(f["hidden"], base[pos], atol=1e-3)  # the LoRA weights were applied
    # confidence features through the PEFT wrapper: the running sum is the LoRA policy's log-prob of the trace
    fc = step_features(peft_model, bos_tok, by_id, TRACES[:1], VERDICTS[:1], confidence=True, fmt=LOOKUP)
    with torch.no_grad():
        logp = torch.log_softmax(peft_model(input_ids=ids).logits[0], -1)[:-1].gather(1, ids[0, 1:, None])[:, 0]
    first = len(bos_tok(build_prompt(by_id["a"]))["input_ids"])  # the prompt ends on a token boundary here
    assert fc["confidence"][1, 3].item() == pytest.approx(logp[first - 1:pos[1]].sum().item(), abs=1e-3)


def test_cap_traces():
    traces = [{"problem_id": f"p{i}", "sample": s} for i in range(10) for s in range(3)]
    assert cap_traces(traces, 0) is traces and cap_traces(traces, 30) is traces
    kept = cap_traces(traces, 10, seed=1)
    assert len(kept) == 9  # whole problems: 3 of them
    assert kept == [t for t in traces if t in kept]  # input order
    assert {t["sample"] for t in kept} == {0, 1, 2} and len({t["problem_id"] for t in kept}) == 3
    assert cap_traces(traces, 10, seed=1) == kept and cap_traces(list(reversed(traces)), 10, seed=1) == kept[::-1]


def test_knowledge_attn_implementation_runs_the_features_pass_and_is_restored(policy, monkeypatch, tmp_path):
    import oakdpo.knowledge as knowledge
    from oakdpo.io import UserError
    from oakdpo.model import attention

    model, tokenizer = policy
    by_id = {p.id: p for p in PROBLEMS}
    own = model.config._attn_implementation
    other = "eager" if own != "eager" else "sdpa"
    seen = []
    real = knowledge._hidden_states
    monkeypatch.setattr(knowledge, "_hidden_states", lambda m, *a, **k: (
        seen.append(m.config._attn_implementation), real(m, *a, **k))[1])
    base = step_features(model, tokenizer, by_id, TRACES[:1], VERDICTS[:1], confidence=True, fmt=LOOKUP)
    with attention(model, other, "knowledge.attn_implementation"):
        f = step_features(model, tokenizer, by_id, TRACES[:1], VERDICTS[:1], confidence=True, fmt=LOOKUP)
    assert seen == [own, other] and model.config._attn_implementation == own
    torch.testing.assert_close(f["hidden"], base["hidden"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(f["confidence"], base["confidence"], atol=1e-5, rtol=1e-4)
    # the stage reads the config key; the kernel is back afterwards
    run_knowledge_stage(model, tokenizer, PROBLEMS, TRACES, VERDICTS,
                        KnowledgeConfig(epochs=1, attn_implementation=other), tmp_path, fmt=LOOKUP)
    assert seen[2:] == [other] and model.config._attn_implementation == own
    with pytest.raises(UserError, match="^knowledge.attn_implementation: 'no_such_kernel' cannot run this model"):
        with attention(model, "no_such_kernel", "knowledge.attn_implementation"):
            pass
    assert model.config._attn_implementation == own


def test_steps_past_the_context_are_dropped(policy, monkeypatch):
    model, tokenizer = policy
    by_id = {p.id: p for p in PROBLEMS}
    f = step_features(model, tokenizer, by_id, TRACES[:1], VERDICTS[:1], fmt=LOOKUP)
    second = f["position"].tolist()[1]
    monkeypatch.setattr(model.config, "max_position_embeddings", second)  # the 2nd Action token no longer fits
    g = step_features(model, tokenizer, by_id, TRACES[:1], VERDICTS[:1], fmt=LOOKUP)
    assert g["step_index"].tolist() == [0]
    torch.testing.assert_close(g["hidden"], f["hidden"][:1], atol=1e-5, rtol=1e-4)
    # scoring: a step the model cannot read counts as 0 (no evidence it is valid)
    assert score_traces(model, tokenizer, StubHead(), by_id, TRACES[:1], fmt=LOOKUP) == [0.0]


def test_confidence_features_hand_computed():
    from oakdpo.knowledge import _confidence

    logp = torch.tensor([0.0, 0.0, -1.0, -0.5, -3.0, -0.1, -0.2])  # completion tokens start at 2
    rows = _confidence(logp, 2, [3, None, 6])
    assert rows[0].tolist() == pytest.approx([-1.0, -0.75, -1.0, -1.5])
    assert torch.isnan(rows[1]).all()
    assert rows[2].tolist() == pytest.approx([-3.0, -3.3 / 3, -3.0, -4.8])


def test_step_features_confidence_matches_the_policy_log_probs(policy):
    model, tokenizer = policy
    by_id = {p.id: p for p in PROBLEMS}
    f = step_features(model, tokenizer, by_id, TRACES[:1], VERDICTS[:1], confidence=True, fmt=LOOKUP)
    assert f["hidden"].shape == (2, 32) and f["confidence"].shape == (2, 4)
    plain = step_features(model, tokenizer, by_id, TRACES[:1], VERDICTS[:1], fmt=LOOKUP)
    torch.testing.assert_close(f["hidden"], plain["hidden"])
    assert plain["confidence"].shape == (2, 0)
    prompt = build_prompt(by_id["a"])
    full = prompt + TRACES[0]["text"]
    enc = tokenizer(full, return_offsets_mapping=True)
    ids = torch.tensor([enc["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)[:-1].gather(1, ids[0, 1:, None])[:, 0]
    first = next(i for i, (s, e) in enumerate(enc["offset_mapping"]) if s >= len(prompt))
    for row, pos in enumerate(f["position"].tolist()):
        upto = logp[first - 1:pos]  # log-probs of tokens first..pos
        assert f["confidence"][row, 2].item() == pytest.approx(upto.min().item(), abs=1e-4)  # running min
        assert f["confidence"][row, 3].item() == pytest.approx(upto.sum().item(), abs=1e-3)  # running sum
    step0 = logp[first - 1:f["position"][0]]
    assert f["confidence"][0, :2].tolist() == pytest.approx([step0.min().item(), step0.mean().item()], abs=1e-4)


def test_qhat_with_confidence_features_roundtrip(tmp_path):
    feats = _synthetic(n_problems=40)
    feats["confidence"] = torch.randn(len(feats["label"]), 4)
    head, _ = train_qhat(feats, KnowledgeConfig(epochs=2), seed=0)
    assert head.n_confidence == 4 and head.hidden_dim == 16
    save_qhat(head, tmp_path / "q")
    loaded = load_qhat(tmp_path / "q")
    x = torch.cat([feats["hidden"], feats["confidence"]], dim=1)
    assert loaded.n_confidence == 4
    assert torch.equal(predict(loaded, x, feats["option"]), predict(head, x, feats["option"]))
