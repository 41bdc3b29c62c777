"""format.lookup_decoding (configs/tiny.yaml): a tag (or "?") the trace writes after a word is chosen among the
premises that end in that word, and the premise's sentence follows as written. format.citation_decoding: an
Action's argument is one its Thought cited. format.numbering_decoding: a derived formula's number and a restated
tag are the ones the trace's bookkeeping fixes. format.dead_end_decoding: a lookup by a word no premise ends in is
the dead end's "?", and a retry does not look up the premise it tried. Shown on the gold traces (the decoder
changes no gold token), on a model whose next token is a fixed function of its last one (what the decoder
writes), and by the settings it refuses."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from oakdpo import generation as G
from oakdpo.config import FormatConfig, GenerationConfig
from oakdpo.generation import LookupDecoding, generate_traces
from oakdpo.io import UserError
from oakdpo.prompting import Framing
from oakdpo.tasks.prontoqa.generator import generate_problems
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.tasks.prontoqa.prompt import build_lookup_prompt, lookup_key, lookups
from oakdpo.tiny import build_corpus, train_tokenizer
from oakdpo.trace import Problem

LOOKUP = FormatConfig(style="lookup", chat_template="never", lookup_decoding=True)


@pytest.fixture(scope="module")
def problems():
    shapes = [("8-12", "random", 1), ("26-30", "random", 5), ("20-25", "proof", 3), ("13-19", "random", 4)]
    return [p for c, (n, order, hops) in enumerate(shapes)
            for p in generate_problems(25, hops=hops, seed=700 + c, premises=n, context_order=order)]


@pytest.fixture(scope="module")
def tok(problems):
    """The tiny model's tokenizer at its default size: every tag is one token."""
    return train_tokenizer(build_corpus(generate_problems(300, (1, 5), seed=9)), 2048)


def test_lookups_are_the_prompts_premises_by_their_last_word():
    p = generate_problems(1, hops=5, seed=3, premises=26)[0]
    table = lookups(p)
    prompt = build_lookup_prompt(p)
    assert sum(len(v) for v in table.values()) == len(p.premises) == 26
    for word, entries in table.items():
        for tag, text in entries:
            assert text.rstrip(".").split()[-1].startswith(word)  # "wumpuses." is looked up by "wumpus"
            head, last = text.rstrip(".").rsplit(" ", 1)
            assert f"{head}{tag} {last}." in prompt  # the tag the prompt writes before the last word
    assert any(len(v) > 1 and v[1][0].startswith("{") for v in table.values())  # the second rule: "{i}"


def test_the_gold_traces_are_what_lookup_decoding_writes(tok, problems):
    lookup = LookupDecoding(tok, problems, "lookup", citations=True, numbering=True, dead_ends=True)
    cites = numbers = kept = dead_ends = retries = 0
    for i, p in enumerate(problems):
        ids = tok(gold_trace(p, "lookup"), add_special_tokens=False)["input_ids"]
        for j in range(1, len(ids)):
            assert lookup.allowed(i, ids[:j], ids[j]) is None  # no gold tag or argument is replaced
            numbers += lookup._number(ids[j]) is not None
            kept += bool(lookup._bookkept(i, ids[:j]))
            dead_ends += lookup._dead_end(i, ids[j - 1]) is not None and tok.decode([ids[j]]) == "?"
            entries = lookup._entries(i, ids[j - 1])
            retries += bool(entries) and len(lookup._untried(ids[:j], entries)) < len(entries)
            forced = lookup.after(i, ids[:j + 1])
            if forced:
                cites += 1
                assert ids[j + 1:j + 1 + len(forced)] == forced
    assert cites > 300  # every premise a backward proof cites, 100 problems
    assert numbers > 300  # the Actions' arguments, each one its Thought cited
    assert kept > 500  # derived numbers, [Q] and restated tags, each the one the bookkeeping fixes
    assert dead_ends > 30 and retries > 30  # every dead end's "?" and the retry after it, by the other premise


def _bigram_model(tok, edges: dict[int, int]):
    """A Llama whose next token is edges[last token] (any other token: eos): one-hot embeddings, layers that add
    nothing, and an LM head that maps each token to its successor."""
    V = len(tok)
    cfg = LlamaConfig(vocab_size=V, hidden_size=V, intermediate_size=4, num_hidden_layers=1, num_attention_heads=1,
                      num_key_value_heads=1, head_dim=4, max_position_embeddings=1024, tie_word_embeddings=False,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(V))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.eos_token_id] = 0.5
        for a, b in edges.items():
            model.lm_head.weight[b, a] = 1.0
    return model


def _one(tok, text: str) -> int:
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, (text, ids)
    return ids[0]


@pytest.mark.parametrize("on", [True, False])
@pytest.mark.parametrize("choice", ["wrong tag", "no premise"])
def test_a_wrong_lookup_after_a_word_is_replaced_and_the_premise_follows(tok, problems, on, choice):
    p = problems[0]
    table = lookups(p)
    word = next(w for w, entries in table.items() if len(entries) == 1)  # one premise ends in this word
    (right, sentence), = table[word]
    wrong = next(tag for w, entries in table.items() if w != word for tag, _ in entries)
    last = Framing(tok, LOOKUP).encode(Framing(tok, LOOKUP).prompt(p).text)[-1]
    w, t_right = _one(tok, " " + word), _one(tok, right)
    t_wrong = _one(tok, wrong) if choice == "wrong tag" else _one(tok, "?")  # "?": the dead end's "no premise"
    model = _bigram_model(tok, {last: w, w: t_wrong})
    fmt = FormatConfig(style="lookup", chat_template="never", lookup_decoding=on)
    trace, = generate_traces(model, tok, [p], 1, GenerationConfig(batch_size=2, max_new_tokens=40), fmt=fmt,
                             do_sample=False, progress=False)
    if on:
        assert trace["text"] == tok.decode([w, t_right]) + " " + sentence  # "wumpus[28] Tumpuses are wumpuses."
    else:
        assert trace["text"] == tok.decode([w, t_wrong])
    assert not trace["truncated"]


def test_a_dead_end_and_a_tag_after_an_unknown_word_are_the_models(tok, problems):
    """Lookup decoding alone: a word no premise ends in ("numpus?" in the gold dead end) has no lookup to do, so
    its "?" and any tag after it are kept as the model wrote them (format.dead_end_decoding mends the tag)."""
    lookup = LookupDecoding(tok, problems, "lookup")
    table = lookups(problems[0])
    unknown = next(w for w in ("numpus", "wumpus", "yumpus", "rompus", "impus", "tumpus") if w not in table)
    u = _one(tok, " " + unknown)
    for new in (_one(tok, "?"), _one(tok, "[3]")):
        assert lookup.allowed(0, [u], new) is None
    assert lookup.after(0, [u, _one(tok, "[3]")]) == []


def test_a_lookup_that_finds_nothing_is_a_dead_end_and_a_retry_tries_another_premise(tok, problems):
    """format.dead_end_decoding: a tag after a whole word no premise ends in is the dead end's "?"; after a dead end
    the retry by the same word is chosen among the premises this Thought has not looked up yet."""
    lookup = LookupDecoding(tok, problems, "lookup", dead_ends=True)
    table = lookups(problems[0])
    unknown = next(w for w in ("numpus", "wumpus", "yumpus", "rompus", "impus", "tumpus") if w not in table)
    u, q = _one(tok, " " + unknown), _one(tok, "?")
    for tag in ("[3]", "{5}", "[0]"):
        assert lookup.allowed(0, [u], _one(tok, tag)) == [q]  # "numpus[3]" -> "numpus?"
    assert lookup.allowed(0, [u], q) is None
    part = tok(" impuses", add_special_tokens=False)["input_ids"]  # a word's last piece is no whole word
    assert len(part) == 2 and lookup.allowed(0, part, _one(tok, "[3]")) is None
    # a retry: the word two premises end in, its first premise looked up, a dead end, the same word again
    word, entries = next((w, e) for w, e in table.items() if len(e) == 2)
    (first, text), (second, _) = entries
    tried = f"Thought: {word}{first} {text} {first} {lookup_key(text.split()[0])}? {word}"
    prefix = tok(tried, add_special_tokens=False)["input_ids"]
    assert lookup.allowed(0, prefix, _one(tok, first)) == [_one(tok, second)]
    assert lookup.allowed(0, prefix, _one(tok, second)) is None
    # a new Thought line has tried nothing: either premise stands
    fresh = tok(tried.rsplit(" ", 1)[0] + f"\nAction: x\nThought: {word}", add_special_tokens=False)["input_ids"]
    assert lookup.allowed(0, fresh, _one(tok, first)) is None and lookup.allowed(0, fresh, _one(tok, second)) is None
    # lookup decoding alone leaves both be (the model's own retry and dead end: tests above)
    alone = LookupDecoding(tok, problems, "lookup")
    assert alone.allowed(0, prefix, _one(tok, first)) is None and alone.allowed(0, [u], _one(tok, "[3]")) is None


def _action(tok, lookup, thought: str, option: str, args: str):
    """What the decoder allows and writes at the end of `args`, in an Action under `thought`: (allowed(new) for
    each number 0-40 written after `args`, as {number: allowed texts}; after() for each first token of a number)."""
    prefix = tok(f"Thought: {thought}\nAction: <Option type=\"{option}\" args=\"[{args}",
                 add_special_tokens=False)["input_ids"]
    space = " " if args else ""
    replaced, finished = {}, {}
    for n in range(41):
        first = tok(space + str(n), add_special_tokens=False)["input_ids"][0]
        allowed = lookup.allowed(0, prefix, first)
        if allowed is not None:
            replaced[n] = sorted(tok.decode([t]) for t in allowed)
        rest = lookup.after(0, prefix + [first])
        if rest:
            finished[tok.decode([first])] = tok.decode(rest)
    return replaced, finished


def test_an_action_argument_is_one_its_thought_cited(tok, problems):
    """A reasoning step's Action passes formulas its Thought cited, each once: an argument the Thought did not
    cite is chosen again, by the model's scores, among the cited ones not yet passed; CONCLUDE's argument (the
    answer's code) and a Thought's new formula (after "So") are not citations."""
    lookup = LookupDecoding(tok, problems, "lookup", lookups=False, citations=True)
    thought = "kind[2] Sterpuses are not kind. [2] sterpus? kind{28} Wumpuses are not kind. {28} wumpus[29] Sam is " \
              "a wumpus. So [30] Sam is not kind."
    replaced, _ = _action(tok, lookup, thought, "MODUS_PONENS", "")
    assert set(replaced) == set(range(41)) - {2, 28, 29}  # 30 is the new formula, not a citation
    assert replaced[10] == replaced[30] == ["2", "28", "29"]
    replaced, _ = _action(tok, lookup, thought, "MODUS_PONENS", "29,")
    assert set(replaced) == set(range(41)) - {2, 28} and replaced[29] == [" 2", " 28"]
    assert _action(tok, lookup, thought, "CONCLUDE", "") == ({}, {})
    assert _action(tok, lookup, thought, "MODUS_PONENS", "2") == ({}, {})  # inside a number
    # a number of several tokens ("31" is "3" "1" at the start of the args) is finished as the Thought cited it
    thought = "[31] wumpus[12] Lempuses are wumpuses. So [33] Every lempus is cold."
    replaced, finished = _action(tok, lookup, thought, "HYPOTHETICAL_SYLLOGISM", "")
    assert len(tok("31", add_special_tokens=False)["input_ids"]) == 2
    assert finished == {"3": "1"} and replaced[5] == ["12", "3"]
    # each option alone: format.lookup_decoding leaves arguments be, format.citation_decoding leaves lookups be
    assert _action(tok, LookupDecoding(tok, problems, "lookup"), thought, "HYPOTHETICAL_SYLLOGISM", "") == ({}, {})
    word, entries = next((w, e) for w, e in lookups(problems[0]).items() if len(e) == 1)
    w, right, wrong = _one(tok, " " + word), _one(tok, entries[0][0]), _one(tok, "?")
    assert lookup.allowed(0, [w], wrong) is None and lookup.after(0, [w, right]) == []
    assert LookupDecoding(tok, problems, "lookup").allowed(0, [w], wrong) == [right]


def _tags_allowed(tok, lookup, text: str) -> dict[str, list[str] | None]:
    """allowed() after `text` for every tag the tokenizer has whole ("[0]".."[40]", "{0}".."{40}", "[Q]")."""
    prefix = tok(text, add_special_tokens=False)["input_ids"]
    tags = [f"[{n}]" for n in range(41)] + [f"{{{n}}}" for n in range(41)] + ["[Q]"]
    tags = [t for t in tags if len(tok(t, add_special_tokens=False)["input_ids"]) == 1]
    out = {}
    for t in tags:
        allowed = lookup.allowed(0, prefix, _one(tok, t))
        out[t] = None if allowed is None else sorted(tok.decode([a]) for a in allowed)
    return out


def test_a_tag_the_bookkeeping_fixes_is_that_one(tok, problems):
    """format.numbering_decoding: a derived formula's number is the next one (the prompt's Next: number, then one
    more each time) or [Q], by the model's scores; a restated tag is the premise's just looked up, or at the start
    of a later Thought the formula derived last. Any other tag there is chosen again among those."""
    lookup = LookupDecoding(tok, problems, "lookup", lookups=False, numbering=True)
    n = len(problems[0].premises)  # Next: [n]
    first = "Thought: kind[2] Sterpuses are not kind. [2] sterpus? kind{5} Wumpuses are not kind. {5} wumpus[7] Sam " \
            "is a wumpus. So "

    def fixed(text, *tags):
        allowed = _tags_allowed(tok, lookup, text)
        assert {t for t, a in allowed.items() if a is None} == set(tags)  # these stand, any other is replaced
        assert {tuple(a) for a in allowed.values() if a is not None} == {tuple(sorted(tags))}

    fixed(first, f"[{n}]", "[Q]")
    fixed("Thought: kind[2] Sterpuses are not kind. ", "[2]")
    fixed("Thought: kind[2] Sterpuses are not kind. [2] sterpus? kind{5} Wumpuses are not kind. ", "{5}")
    step = f"{first}[{n}] Sam is not kind.\nAction: <Option type=\"MODUS_PONENS\" args=\"[7, 5]\" />\nThought: "
    fixed(step, f"[{n}]")
    fixed(step + f"[{n}] Sam is not kind. So ", f"[{n + 1}]", "[Q]")
    # where the bookkeeping fixes nothing, the model's tag stands: the first Thought's start, a lookup's tag
    for text in ("Thought: ", "Thought: kind", first + f"[{n}] Sam is not kind."):
        assert set(_tags_allowed(tok, lookup, text).values()) == {None}
    # the option alone: lookup and citation decoding leave these tags be
    other = LookupDecoding(tok, problems, "lookup", citations=True)
    assert set(_tags_allowed(tok, other, first).values()) == {None}


def test_a_derived_number_of_several_tokens_is_finished():
    """With a smaller vocabulary "[35]" is two tokens or more: the first is chosen among the fixed tags' first
    tokens and the rest follows."""
    small = train_tokenizer(build_corpus(generate_problems(100, (1, 5), seed=9)), 600)
    p = generate_problems(1, hops=5, seed=4, premises=30)[0]
    lookup = LookupDecoding(small, [p], "lookup", lookups=False, numbering=True)
    text = "Thought: kind[2] Sterpuses are not kind. So [32] Every wumpus is kind.\nAction: <Option " \
           "type=\"HYPOTHETICAL_SYLLOGISM\" args=\"[2, 5]\" />\nThought: [32] Sam is kind. So "
    prefix = small(text, add_special_tokens=False)["input_ids"]
    want = small("[33]", add_special_tokens=False)["input_ids"]
    assert len(want) > 1
    allowed = lookup.allowed(0, prefix, small("[1]", add_special_tokens=False)["input_ids"][0])
    assert want[0] in allowed
    assert lookup.after(0, prefix + [want[0]]) == want[1:]


@pytest.mark.parametrize("case", ["proofwriter, lookup style", "prontoqa, natural style"])
def test_a_task_or_style_without_lookups_generates_as_without_the_option(tok, problems, case):
    """configs/tiny.yaml on ProofWriter, FOLIO or a plugin task, or with `--set format.style=natural`: nothing to
    look up, the same traces."""
    if case.startswith("proofwriter"):
        p = Problem(id="pw", premises=["Bob is big.", "If someone is big then they are red."], query="Bob is red.",
                    label="TRUE", task="proofwriter")
        style, word = "lookup", "big"
    else:
        p = problems[0]
        style, word = "natural", next(iter(lookups(p)))  # a word that premises end in
    # a tag after a word, a "?" after a word, a derived formula's number
    ids = tok(f" {word}[0] red? So [7]", add_special_tokens=False)["input_ids"]
    fmt = FormatConfig(style=style, chat_template="never")
    last = Framing(tok, fmt).encode(Framing(tok, fmt).prompt(p).text)[-1]
    assert len({last, *ids}) == len(ids) + 1  # each token has one successor
    model = _bigram_model(tok, {a: b for a, b in zip([last] + ids, ids)})
    texts = [generate_traces(model, tok, [p], 1, GenerationConfig(batch_size=2, max_new_tokens=20),
                             fmt=FormatConfig(style=style, chat_template="never", lookup_decoding=on,
                                              citation_decoding=on, numbering_decoding=on, dead_end_decoding=on),
                             do_sample=False, progress=False)[0]["text"] for on in (True, False)]
    assert texts[0] == texts[1] == tok.decode(ids)


@pytest.mark.parametrize("option", ["lookup_decoding", "citation_decoding", "numbering_decoding",
                                    "dead_end_decoding"])
def test_settings_without_lookups_are_one_line_errors(tok, problems, monkeypatch, option):
    model = _bigram_model(tok, {})
    fmt = FormatConfig(style="lookup", chat_template="never", **{option: True})
    with pytest.raises(UserError, match=rf"^format.{option}: only generation.backend hf"):
        generate_traces(model, tok, problems[:1], 1, GenerationConfig(backend="vllm"), fmt=fmt, progress=False)
    monkeypatch.setattr(G, "_slots_supported", lambda *a: False)
    with pytest.raises(UserError, match=rf"^format.{option}: needs the slot decoder"):
        generate_traces(model, tok, problems[:1], 1, GenerationConfig(max_new_tokens=4), fmt=fmt, progress=False)


def test_a_task_without_lookups_needs_no_slot_decoder_or_hf_backend(tok, monkeypatch):
    """The refusals above are for problems that have lookups: a ProofWriter batch in the lookup style has none, so
    the padded decoder generates it as without the option, where it would otherwise refuse."""
    p = Problem(id="pw", premises=["Bob is big.", "If someone is big then they are red."], query="Bob is red.",
                label="TRUE", task="proofwriter")
    assert not LookupDecoding(tok, [p], "lookup").has_lookups()
    ids = tok(" big[0] red", add_special_tokens=False)["input_ids"]
    last = Framing(tok, LOOKUP).encode(Framing(tok, LOOKUP).prompt(p).text)[-1]
    model = _bigram_model(tok, {a: b for a, b in zip([last] + ids, ids)})
    monkeypatch.setattr(G, "_slots_supported", lambda *a: False)
    texts = [generate_traces(model, tok, [p], 1, GenerationConfig(batch_size=2, max_new_tokens=len(ids)),
                             fmt=FormatConfig(style="lookup", chat_template="never", lookup_decoding=on,
                                              citation_decoding=on, numbering_decoding=on, dead_end_decoding=on),
                             do_sample=False, progress=False)[0]["text"] for on in (True, False)]
    assert texts[0] == texts[1] == tok.decode(ids)
