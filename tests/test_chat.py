"""What a user's checkpoint sees (format.style natural, format.chat_template auto), checked on the token ids of
two stand-in checkpoints: a Qwen2 whose tokenizer has a ChatML template and eos <|im_end|>, and a Llama with a
BOS, no pad token and no chat template. SFT rows, generation prompts and DPO pairs carry the framing exactly
once, completions end in the template's end of turn (or EOS), and the prompt's ids are a prefix of prompt+chosen."""

from __future__ import annotations

import pytest

from oakdpo.config import Config, FormatConfig
from oakdpo.io import UserError
from oakdpo.model import load_policy
from oakdpo.prompting import Framing
from oakdpo.tasks import get_task

NATURAL = FormatConfig(style="natural", chat_template="auto")


@pytest.fixture(scope="module")
def problems():
    return get_task("prontoqa").generate(4, seed=11, hops=(1, 3))


def _gold(p):
    return get_task(p.task).gold_trace(p, "natural")


def _sft_rows(model_dir, problems, tmp_path):
    from trl import SFTTrainer

    from oakdpo.training import sft_args, sft_dataset

    model, tok = load_policy(model_dir, for_training=True)
    cfg = Config()
    cfg.sft.max_length = 4096
    trainer = SFTTrainer(model=model, args=sft_args(cfg, tmp_path / "sft"), processing_class=tok,
                         train_dataset=sft_dataset(problems, Framing(tok, NATURAL)))
    return tok, [trainer.train_dataset[i] for i in range(len(problems))]


def _dpo_rows(model_dir, problems, tmp_path):
    from oakdpo.dpo import _pairs_dataset, _trainer_class, base_dpo_args, iteration_args
    from oakdpo.pairs import build_pairs

    model, tok = load_policy(model_dir, for_training=True)
    framing = Framing(tok, NATURAL)
    traces, verdicts = [], []
    for p in problems:  # sample 0 valid (the gold trace), sample 1 invalid after its first step
        gold = _gold(p)
        bad = gold.replace('args="[', 'args="[9', 1)
        traces += [{"problem_id": p.id, "sample": 0, "text": gold}, {"problem_id": p.id, "sample": 1, "text": bad}]
        verdicts += [get_task(p.task).verify(p, gold) | {"problem_id": p.id, "sample": 0},
                     get_task(p.task).verify(p, bad) | {"problem_id": p.id, "sample": 1}]
    cfg = Config()
    cfg.pairs.truncate_rejected = True
    cfg.dpo.max_length = 4096
    pairs = build_pairs(problems, traces, verdicts, cfg.pairs, framing)
    assert len(pairs) == len(problems) and all(x["rejected_partial"] for x in pairs)
    pairs.append(dict(pairs[0], rejected=pairs[0]["rejected"] + "Final Answer: TRUE", rejected_partial=False))
    args = iteration_args(base_dpo_args(cfg, tmp_path), tmp_path, 0)
    trainer = _trainer_class(framing.completion_suffix_ids())(
        model=model, ref_model=None, args=args, train_dataset=_pairs_dataset(pairs, tmp_path / "ds"),
        processing_class=tok)
    return tok, framing, pairs, [trainer.train_dataset[i] for i in range(len(pairs))]


# ------------------------------------------------------------------------------------------- Qwen2, ChatML

def test_chat_framing_of_the_prompt(qwen2_standin, problems):
    _, tok = load_policy(qwen2_standin)
    framing = Framing(tok, NATURAL)
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert framing.chat and framing.end_of_turn == "<|im_end|>"
    assert end in framing.stop_token_ids() and framing.completion_suffix_ids()[0] == end
    for p in problems:
        prompt = framing.prompt(p)
        ids = framing.encode(prompt.text)
        assert [m["role"] for m in prompt.messages] == ["system", "user"]
        assert ids.count(start) == 3 and ids.count(end) == 2  # system, user, and the open assistant turn
        assert tok.decode(ids) == prompt.text and prompt.text.endswith("<|im_start|>assistant\n")
        assert prompt.text.count(prompt.user.strip()) == 1 and "[0] " in prompt.user


def test_chat_sft_rows_frame_once_and_end_the_turn(qwen2_standin, problems, tmp_path):
    tok, rows = _sft_rows(qwen2_standin, problems, tmp_path)
    framing = Framing(tok, NATURAL)
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    for p, row in zip(problems, rows):
        ids, mask = row["input_ids"], [label != -100 for label in row["labels"]]  # TRL's completion mask
        prompt_ids = framing.encode(framing.prompt(p).text)
        assert ids[:len(prompt_ids)] == prompt_ids and not any(mask[:len(prompt_ids)])
        assert ids.count(start) == 3 and ids.count(end) == 3
        completion = [t for t, m in zip(ids, mask) if m]
        assert tok.decode(completion) == _gold(p) + "<|im_end|>\n"  # the template's end of turn ends it
        assert completion.count(end) == 1 and tok.decode(completion[completion.index(end) + 1:]).strip() == ""


def test_chat_dpo_pairs_frame_once_prompt_is_a_prefix(qwen2_standin, problems, tmp_path):
    tok, framing, pairs, rows = _dpo_rows(qwen2_standin, problems, tmp_path)
    start, end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    suffix = framing.completion_suffix_ids()
    for pair, row in zip(pairs, rows):
        assert "prompt_messages" in pair
        assert row["prompt_ids"] == framing.encode(pair["prompt"])  # the prompt's ids are a prefix of the whole
        full = row["prompt_ids"] + row["chosen_ids"]
        assert full.count(start) == 3 and full.count(end) == 3
        assert row["chosen_ids"][-len(suffix):] == suffix
        assert tok.decode(row["chosen_ids"][:-len(suffix)]) == pair["chosen"]
        if pair["rejected_partial"]:  # cut after its first error: the turn does not end
            assert end not in row["rejected_ids"] and tok.decode(row["rejected_ids"]) == pair["rejected"]
        else:
            assert row["rejected_ids"][-len(suffix):] == suffix


# ---------------------------------------------------------------------- Llama, no chat template, no pad

def test_plain_framing_without_template_or_pad(llama_standin, problems, tmp_path):
    _, tok = load_policy(llama_standin)
    assert tok.chat_template is None and tok.pad_token == tok.eos_token  # pad falls back to eos
    framing = Framing(tok, NATURAL)
    assert not framing.chat and framing.end_of_turn is None and framing.completion_suffix_ids() == [tok.eos_token_id]
    with pytest.raises(UserError, match="format.chat_template=always: this tokenizer has no chat template"):
        Framing(tok, FormatConfig(chat_template="always"))
    tok, rows = _sft_rows(llama_standin, problems, tmp_path)
    for p, row in zip(problems, rows):
        prompt = framing.prompt(p)
        prompt_ids = framing.encode(prompt.text)
        assert prompt_ids.count(tok.bos_token_id) == 1 and prompt_ids[0] == tok.bos_token_id  # one BOS
        ids, mask = row["input_ids"], [label != -100 for label in row["labels"]]
        assert ids[:len(prompt_ids)] == prompt_ids and ids.count(tok.bos_token_id) == 1
        completion = [t for t, m in zip(ids, mask) if m]
        assert completion[-1] == tok.eos_token_id and completion.count(tok.eos_token_id) == 1
        assert tok.decode(completion[:-1]) == _gold(p)


def test_plain_dpo_pairs(llama_standin, problems, tmp_path):
    tok, framing, pairs, rows = _dpo_rows(llama_standin, problems, tmp_path)
    for pair, row in zip(pairs, rows):
        assert "prompt_messages" not in pair
        assert row["prompt_ids"] == framing.encode(pair["prompt"])
        bos = tok.bos_token_id  # one BOS, at the start of the prompt; none inside a completion
        assert row["prompt_ids"][0] == bos and (row["prompt_ids"] + row["chosen_ids"]).count(bos) == 1
        assert bos not in row["rejected_ids"]
        assert row["chosen_ids"][-1] == tok.eos_token_id and tok.eos_token_id not in row["chosen_ids"][:-1]
        assert (row["rejected_ids"][-1] == tok.eos_token_id) == (not pair["rejected_partial"])


def test_never_ignores_the_template(qwen2_standin, problems):
    _, tok = load_policy(qwen2_standin)
    framing = Framing(tok, FormatConfig(chat_template="never"))
    text = framing.prompt(problems[0]).text
    assert not framing.chat and "<|im_start|>" not in text and text.startswith("Decide whether")


def test_inspect_prompt_prints_what_the_model_sees(qwen2_standin, problems, tmp_path, capsys):
    # `oakdpo inspect prompt`: the framed prompt exactly as generation encodes it, and its token count.
    from oakdpo import cli
    from oakdpo.data import write_problems

    write_problems(tmp_path / "p.jsonl", problems)
    assert cli.main(["inspect", "prompt", "--problems", str(tmp_path / "p.jsonl"), "--model", str(qwen2_standin),
                     "--index", "1"]) == 0
    out = capsys.readouterr().out
    _, tok = load_policy(qwen2_standin)
    capsys.readouterr()
    framing = Framing(tok, NATURAL)
    text = framing.prompt(problems[1]).text
    head, body = out.split("\n", 1)
    assert body == f"{'-' * 100}\n{text}{'-' * 100}\n"
    assert head == (f"problem {problems[1].id} (task prontoqa), style natural, chat template; the completion ends "
                    f"with '<|im_end|>'; {len(framing.encode(text))} prompt tokens")
    assert cli.main(["inspect", "prompt", "--problems", str(tmp_path / "p.jsonl"), "--index", "9"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --index: {tmp_path / 'p.jsonl'} has 4 problems, got index 9"
