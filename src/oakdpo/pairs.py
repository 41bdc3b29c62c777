"""Preference pairs from verified traces (stage 3 of an OaK iteration).

chosen = a fully valid trace, rejected = an invalid one. Where a problem has no valid sample but a sound one (the
right answer and every reasoning step valid, though its answer could not be checked: a FOLIO problem without
conclusion FOL; is_sound), the sound sample is chosen against the others ("sound_vs_invalid"). Else: rank its samples by
step validity and pair the best with each one at least `min_step_validity_gap` worse; where that gives no pair
(one sample, or samples about equally wrong), pair its gold trace (chosen) with an invalid sample when the
problem carries a gold proof (`use_gold`; so even `--samples 1` trains). On-policy pairs come first because
they train the policy on its own mistakes: on the tiny model, gold-chosen pairs lowered validity. At most
`max_pairs_per_problem` pairs per problem.

With `truncate_rejected` the rejected trace ends right after its first invalid step (as in Step-DPO): the steps
chosen and rejected share cancel in the DPO loss, so the loss is about the first error, and the rejected side no
longer pushes down the well-formed steps that an invalid trace goes on to write. Such a pair is marked
`rejected_partial`, and DPO gives that completion no end-of-sequence token (dpo.py).
"""

from __future__ import annotations

from .config import PairsConfig
from .prompting import Framing
from .tasks import get_task
from .trace import Problem, parse_trace


def strip_prompt(prompt: str, text: str) -> str:
    """Remove the prompt from the front of a trace exactly once (prefix check + slice).

    Never `text.replace(prompt, "")`: prompt-like text later in a trace is the model's output and stays.
    """
    return text[len(prompt):] if text.startswith(prompt) else text


def truncate_after_first_error(completion: str, verdict: dict) -> str:
    """The completion up to and including the Action line of its first invalid step (verdict["steps"]).

    The shared prefix of chosen and rejected cancels in the DPO loss, so what the rejected side then pushes down
    is the first wrong step. Unchanged when every step is valid or the verdict has no steps."""
    bad = next((s["index"] for s in verdict.get("steps") or [] if not s.get("valid")), None)
    if bad is None:
        return completion
    steps = parse_trace(completion).steps
    if bad >= len(steps) or bad == len(steps) - 1:
        return completion
    end = steps[bad].span[1]
    return completion[:end + 1] if completion[end:end + 1] == "\n" else completion[:end]


def is_sound(verdict: dict) -> bool:
    """A trace whose only failure is that the task cannot check its answer (a FOLIO problem without conclusion FOL:
    verdict "answer_unchecked": every reasoning step valid, one well-formed CONCLUDE last), with the right answer and
    at least one reasoning step. An UNKNOWN answer needs no reasoning step, as a certified UNKNOWN needs none.
    Where the answer can be checked, trace_valid decides: a right answer whose CONCLUDE is unsupported is a guess."""
    if not verdict.get("answer_unchecked") or not verdict.get("correct"):
        return False
    steps = [s for s in verdict.get("steps") or [] if s.get("option") != "CONCLUDE"]
    return all(s.get("valid") for s in steps) and (bool(steps) or verdict.get("answer") == "UNKNOWN")


def build_pairs(problems: list[Problem], traces: list[dict], verdicts: list[dict], cfg: PairsConfig,
                framing: Framing) -> list[dict]:
    """One record per pair: {problem_id, prompt, chosen, rejected, kind, rejected_partial, rejected_truncated,
    chosen_sample, rejected_sample, chosen_step_validity, rejected_step_validity}, plus prompt_messages when a
    chat template frames the prompt. Deterministic for the same inputs (all ranks agree)."""
    by_problem: dict[str, list[tuple[dict, dict]]] = {}
    for trace, verdict in zip(traces, verdicts):
        by_problem.setdefault(trace["problem_id"], []).append((trace, verdict))

    pairs: list[dict] = []
    for problem in problems:
        samples = sorted(by_problem.get(problem.id, []), key=lambda tv: tv[0]["sample"])
        if not samples:
            continue
        framed = framing.prompt(problem)
        prompt = framed.text

        def completion(trace: dict) -> str:
            return strip_prompt(prompt, trace["text"])

        def rejected_text(trace: dict, verdict: dict) -> tuple[str, str]:
            """(the rejected completion as trained on, the whole completion)."""
            text = completion(trace)
            return (truncate_after_first_error(text, verdict) if cfg.truncate_rejected else text), text

        def meta(trace: dict, verdict: dict) -> dict:
            return verdict | {"sample": trace["sample"], "truncated": bool(trace.get("truncated"))}

        valid = [tv for tv in samples if tv[1]["trace_valid"]]
        kind = "valid_vs_invalid"
        if not valid and any(is_sound(v) for _, v in samples):
            valid, kind = [tv for tv in samples if is_sound(tv[1])], "sound_vs_invalid"
        # Hardest negatives first: invalid traces that got most steps right.
        invalid = sorted((tv for tv in samples if tv not in valid),
                         key=lambda tv: (-tv[1]["step_validity"], tv[0]["sample"]))
        # chosen, (rejected, whole rejected), chosen verdict, rejected verdict, kind
        candidates: list[tuple[str, tuple[str, str], dict | None, dict, str]] = []
        if valid and invalid:
            for i, (rt, rv) in enumerate(invalid):
                ct, cv = valid[i % len(valid)]
                candidates.append((completion(ct), rejected_text(rt, rv), meta(ct, cv), meta(rt, rv), kind))
        elif invalid:
            # On-policy first: the best invalid sample against clearly worse ones; the gold trace only when the
            # samples cannot make a pair (one sample, or all about equally wrong), so even --samples 1 trains.
            best_t, best_v = invalid[0]
            for rt, rv in reversed(invalid[1:]):
                if best_v["step_validity"] - rv["step_validity"] >= cfg.min_step_validity_gap:
                    candidates.append((completion(best_t), rejected_text(rt, rv),
                                       meta(best_t, best_v), meta(rt, rv),
                                       "step_validity"))
            gold = get_task(problem.task).gold_trace(problem, framing.style) if cfg.use_gold and not candidates \
                else None
            if gold is not None:
                for rt, rv in invalid:
                    candidates.append((gold, rejected_text(rt, rv), None, meta(rt, rv),
                                       "gold_vs_invalid"))
        seen = set()
        for chosen, (rejected, full_rejected), cv, rv, kind in candidates:
            if chosen == rejected or (chosen, rejected) in seen:
                continue
            seen.add((chosen, rejected))
            pairs.append({
                "problem_id": problem.id, "prompt": prompt, "chosen": chosen, "rejected": rejected, "kind": kind,
                # A rejected trace cut after its first error, or cut by max_new_tokens, did not end: no EOS in DPO.
                "rejected_partial": rejected != full_rejected or rv["truncated"],
                "rejected_truncated": rv["truncated"],
                "chosen_sample": cv["sample"] if cv else None, "rejected_sample": rv["sample"],
                "chosen_step_validity": cv["step_validity"] if cv else 1.0,
                "rejected_step_validity": rv["step_validity"],
                **({"prompt_messages": framed.messages} if framed.messages else {}),
            })
            if len(seen) >= cfg.max_pairs_per_problem:
                break
    return pairs


def explain_no_pairs(problems: list[Problem], traces: list[dict], verdicts: list[dict], cfg: PairsConfig,
                     framing: Framing) -> str:
    """Why an iteration formed no pair, in one line (the loop prints it)."""
    if not traces:
        return "no traces were generated"
    n = len(verdicts)
    valid = sum(bool(v["trace_valid"]) for v in verdicts)
    if valid == n:
        return f"all {n} traces are valid, so there is nothing to reject"
    per_problem: dict[str, int] = {}
    for t in traces:
        per_problem[t["problem_id"]] = per_problem.get(t["problem_id"], 0) + 1
    one_sample = max(per_problem.values()) < 2
    if not cfg.use_gold:
        return (f"{valid} of {n} traces are valid and no problem has a valid or sound sample beside an invalid one"
                + ("; with one sample per problem only gold pairs can form: set pairs.use_gold=true or sample "
                   "more (--samples 2)" if one_sample else
                   f", nor samples {cfg.min_step_validity_gap:g} apart in step validity (pairs.min_step_validity_gap)"))
    by_id = {p.id: p for p in problems}
    no_gold = sum(get_task(by_id[pid].task).gold_trace(by_id[pid], framing.style) is None
                  for pid in per_problem if pid in by_id)
    return (f"{valid} of {n} traces are valid, no problem has a valid or sound sample beside an invalid one, and "
            f"{no_gold} of {len(per_problem)} problems have no gold trace for pairs.use_gold (their task cannot "
            "write one: e.g. FOLIO without conclusion FOL)" + ("; sample more than once (--samples 4) for on-policy "
                                                              "pairs" if one_sample else ""))
