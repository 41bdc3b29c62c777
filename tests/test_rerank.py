"""`oakdpo eval --rerank N`: q-hat picks, per problem, the sample it scores highest."""

from __future__ import annotations

import json

from oakdpo.config import Config, EvalConfig, FormatConfig, KnowledgeConfig
from oakdpo.evaluation import evaluate_rerank
from oakdpo.tasks.prontoqa.gold import gold_trace
from oakdpo.knowledge import load_qhat, run_knowledge_stage, score_traces
from oakdpo.model import load_policy
from oakdpo.verify import verify_traces

LOOKUP = FormatConfig(style="lookup")  # the tiny model's style


def test_rerank_picks_the_highest_scoring_sample(tmp_path, tiny_model_dir, small_problems):
    model, tok = load_policy(tiny_model_dir)
    problems = small_problems[:12]
    # q-hat trained on gold traces and copies with a broken citation (valid vs invalid steps).
    traces = []
    for p in problems:
        gold = gold_trace(p)
        traces.append({"problem_id": p.id, "sample": 0, "text": gold})
        traces.append({"problem_id": p.id, "sample": 1, "text": gold.replace('args="[', 'args="[9', 1)})
    verdicts = verify_traces(problems, traces, progress=False)
    m = run_knowledge_stage(model, tok, {p.id: p for p in problems}, traces, verdicts,
                            KnowledgeConfig(epochs=5, heldout_fraction=0.25), tmp_path / "it", seed=0, fmt=LOOKUP)
    assert m["n_steps"] > 0
    head = load_qhat(tmp_path / "it" / "qhat")

    cfg = EvalConfig(rerank=3, max_new_tokens=40, batch_size=16)
    rr = evaluate_rerank(model, tok, problems[:4], Config(eval=cfg, format=LOOKUP), tmp_path / "it" / "qhat",
                         tmp_path / "eval")
    assert rr["n"] == 3 and rr["reranked"]["traces"] == 4 and rr["first_sample"]["traces"] == 4
    chosen = [json.loads(line) for line in (tmp_path / "eval" / "rerank" / "traces.jsonl").read_text().splitlines()]
    assert [c["problem_id"] for c in chosen] == [p.id for p in problems[:4]]
    # Each chosen trace scores at least as high as the problem's other samples would (same seed regenerates them).
    from oakdpo.config import GenerationConfig
    from oakdpo.generation import generate_traces

    samples = generate_traces(model, tok, problems[:4], 3, GenerationConfig(batch_size=16, max_new_tokens=40,
                                                                            temperature=cfg.temperature,
                                                                            seed=cfg.seed), progress=False, fmt=LOOKUP)
    scores = score_traces(model, tok, head, {p.id: p for p in problems}, samples, fmt=LOOKUP)
    for c in chosen:
        best = max(s for t, s in zip(samples, scores) if t["problem_id"] == c["problem_id"])
        mine = next(s for t, s in zip(samples, scores)
                    if t["problem_id"] == c["problem_id"] and t["sample"] == c["sample"])
        assert mine == best
    # A step the verifier rejects (lower-case option, an Action line it cannot parse) scores 0, as the verifier reads it.
    gold = gold_trace(problems[0])
    odd = [gold, gold.replace('type="MODUS_PONENS"', 'type="modus_ponens"'),
           gold.replace('<Option type="MODUS_PONENS" args="[', 'I apply type="MODUS_PONENS" to [')]
    assert len({*odd}) == 3
    scores = score_traces(model, tok, head, {problems[0].id: problems[0]},
                          [{"problem_id": problems[0].id, "sample": i, "text": t} for i, t in enumerate(odd)], fmt=LOOKUP)
    assert scores[0] > 0 and scores[1:] == [0.0, 0.0]
