"""What the model sees: a problem's prompt framed for one tokenizer, and how its completion ends.

The task writes the words (`Task.prompt(problem, style)` -> system, user); this module frames them, the same
way for SFT, generation, DPO pairs, q-hat features and evaluation (format.chat_template):
- chat: a tokenizer with a chat template gets [system, user] messages rendered by
  `apply_chat_template(..., add_generation_prompt=True)`. SFT and DPO hand TRL the conversational form (the
  messages and an assistant message), so the template's own tokens frame the completion and its end-of-turn
  token ends it; the rendered text already holds any BOS, so it is encoded without special tokens.
- plain: the system text, a blank line, the user text; encoded with the tokenizer's special tokens (BOS), the
  completion ends with EOS.
A template that rejects a system message (some do) gets the instruction at the top of the user message.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import FormatConfig
from .io import UserError
from .tasks import get_task
from .trace import Problem

_PROBE = "\u2063oakdpo\u2063"  # text no template writes itself, to find where the assistant's content ends


@dataclass
class Prompt:
    text: str  # exactly what precedes the completion
    messages: list[dict] | None  # the chat messages, when a chat template frames the prompt
    system: str | None
    user: str


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


class Framing:
    """Prompt framing and completion ends for one tokenizer under one `format` config section."""

    def __init__(self, tokenizer, fmt: FormatConfig | None = None):
        fmt = fmt or FormatConfig()
        self.tokenizer, self.style = tokenizer, fmt.style
        if fmt.chat_template == "always" and not has_chat_template(tokenizer):
            raise UserError("format.chat_template=always: this tokenizer has no chat template "
                            "(set format.chat_template=auto or never)")
        self.chat = fmt.chat_template != "never" and has_chat_template(tokenizer)
        self._system_ok: bool | None = None
        self.end_of_turn = self._end_of_turn() if self.chat else None

    # ------------------------------------------------------------------------------------------ prompts

    def messages(self, system: str | None, user: str) -> list[dict]:
        if system and self._accepts_system():
            return [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return [{"role": "user", "content": f"{system}\n\n{user}" if system else user}]

    def prompt(self, problem: Problem) -> Prompt:
        system, user = get_task(problem.task).prompt(problem, self.style)
        if not self.chat:
            return Prompt(f"{system}\n\n{user}" if system else user, None, system, user)
        msgs = self.messages(system, user)
        text = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return Prompt(text, msgs, system, user)

    def encode(self, text: str) -> list[int]:
        """Token ids of rendered text: a chat rendering already holds its special tokens, plain text gets them."""
        return self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"]

    def completion_end(self) -> str:
        """Text that ends a complete trace in plain form (EOS); chat completions are ended by the template."""
        return "" if self.chat else (self.tokenizer.eos_token or "")

    def completion_suffix_ids(self) -> list[int]:
        """The token ids TRL writes after a completion's content: EOS (plain), or the template's end of turn and
        what follows it (chat, e.g. "<|im_end|>" "\n"). A completion that did not end is trained without them."""
        if not self.chat:
            return [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        msgs = self.messages(None, "u") + [{"role": "assistant", "content": _PROBE}]
        text = self.tokenizer.apply_chat_template(msgs, tokenize=False)
        tail = text.split(_PROBE, 1)[1] if _PROBE in text else ""
        return self.tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []

    def stop_token_ids(self, model=None) -> list[int]:
        """Every token that ends generation: the model's declared eos ids, the tokenizer's eos and the chat
        template's end of turn."""
        ids: list[int] = []
        gen = getattr(model, "generation_config", None)
        declared = getattr(gen, "eos_token_id", None) if gen is not None else None
        for i in ([declared] if isinstance(declared, int) else list(declared or [])):
            ids.append(int(i))
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        if self.end_of_turn is not None:
            eot = self.tokenizer.convert_tokens_to_ids(self.end_of_turn)
            if isinstance(eot, int) and eot != getattr(self.tokenizer, "unk_token_id", None):
                ids.append(eot)
        return list(dict.fromkeys(ids))

    # ------------------------------------------------------------------------------------------ internals

    def _accepts_system(self) -> bool:
        if self._system_ok is None:
            try:
                self.tokenizer.apply_chat_template([{"role": "system", "content": "s"},
                                                    {"role": "user", "content": "u"}], tokenize=False)
                self._system_ok = True
            except Exception:  # jinja2 TemplateError or a template's raise_exception: no system role
                self._system_ok = False
        return self._system_ok

    def _end_of_turn(self) -> str | None:
        """The special token the template writes right after an assistant message's content (ChatML's
        <|im_end|>, Llama 3's <|eot_id|>), or None when it writes none."""
        msgs = self.messages(None, "u") + [{"role": "assistant", "content": _PROBE}]
        text = self.tokenizer.apply_chat_template(msgs, tokenize=False)
        if _PROBE not in text:
            return None
        tail = text.split(_PROBE, 1)[1].lstrip()
        if not tail:
            return None
        first = self.tokenizer(tail, add_special_tokens=False)["input_ids"][:1]
        if not first:
            return None
        token = self.tokenizer.convert_ids_to_tokens(first[0])
        return token if token in self.tokenizer.all_special_tokens or tail.startswith(token) else None


def inspect_prompt(problems_path: str, model: str | None = None, config: str | None = None, index: int = 0,
                   overrides: list[str] | None = None) -> str:
    """What the model sees for one problem: the rendered prompt exactly, its token count, and how the completion
    ends (`oakdpo inspect prompt`). Without --model, the plain-text framing (no tokenizer: no token count)."""
    from .config import load_config
    from .data import read_problem_file

    cfg = load_config(config, overrides)
    problems = read_problem_file(problems_path, cfg.data.dataset)
    if not 0 <= index < len(problems):
        raise UserError(f"--index: {problems_path} has {len(problems)} problems, got index {index}")
    problem = problems[index]
    if model is None:
        system, user = get_task(problem.task).prompt(problem, cfg.format.style)
        text = f"{system}\n\n{user}" if system else user
        head = (f"problem {problem.id} (task {problem.task}), style {cfg.format.style}, plain text "
                "(pass --model to frame it with that checkpoint's tokenizer and count its tokens)")
        return f"{head}\n{'-' * 100}\n{text}{'-' * 100}"
    from .model import load_tokenizer

    tokenizer = load_tokenizer(model, cfg.model)
    framing = Framing(tokenizer, cfg.format)
    prompt = framing.prompt(problem)
    ids = framing.encode(prompt.text)
    ending = (f"chat template; the completion ends with {framing.end_of_turn!r}" if framing.chat else
              f"plain text; the completion ends with {tokenizer.eos_token!r}")
    head = (f"problem {problem.id} (task {problem.task}), style {framing.style}, {ending}; "
            f"{len(ids)} prompt tokens")
    return f"{head}\n{'-' * 100}\n{prompt.text}{'-' * 100}"
