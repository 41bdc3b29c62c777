"""The option-success predictor q-hat: learned knowledge of which steps the verifier will accept.

In the OaK picture the verifier's verdicts are knowledge the agent should internalise. q-hat is a small MLP
over the policy's last-layer hidden state at a step's `Action:` line plus an embedding of the option type, and
(knowledge.confidence_features) the policy's own log-probs of the trace so far; it predicts P(step valid).
Each OaK iteration trains it on that iteration's verified steps, with whole problems held out so calibration
(Brier, ECE, AUROC, reliability diagram) is measured on problems it never saw.
`rerank` uses it to pick, among N sampled traces of a problem, the one with the highest predicted validity.

Alignment with the verifier: a trace's steps are its lines that start with "Action:" (the i-th such line is
step i; CONCLUDE steps count), which is how formats.parse_trace splits a trace, so verdict step `index` i
is the i-th Action line. The policy sees the framed prompt (oakdpo.prompting) + trace text, encoded as in
SFT and generation.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import QHAT_CALIBRATIONS, KnowledgeConfig
from .config import FormatConfig
from .prompting import Framing
from .trace import OPTION_TYPES, Problem, parse_action
from .io import UserError, atomic_path, write_json

OPTION_ID = {name: i for i, name in enumerate(OPTION_TYPES)}

# ---------------------------------------------------------------------------------------------------------
# Features: hidden states at the Action lines


def _as_problem(p) -> Problem:
    return p if isinstance(p, Problem) else Problem.from_dict(p)


def action_line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) char offsets in `text` of each line that starts with "Action:" (end excludes the newline)."""
    spans, pos = [], 0
    for line in text.split("\n"):
        if line.startswith("Action:"):
            spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def _token_at(offsets: list[tuple[int, int]], char: int) -> int | None:
    """Index of the token whose char span contains `char` (special tokens, with empty spans, never match)."""
    for i, (s, e) in enumerate(offsets):
        if s <= char < e:
            return i
    return None


def _backbone(model):
    """The decoder stack without the LM head (no vocab-sized logits); PEFT wrappers unwrapped, LoRA kept."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        dec = base.get_decoder()
    except Exception:  # exotic model: fall back to output_hidden_states on the full model
        return None
    return None if dec is base else dec


N_CONFIDENCE = 4  # step min, step mean, running min, running sum of the policy's token log-probs


def _confidence(logp: torch.Tensor, first: int, positions: list[int | None]) -> torch.Tensor:
    """[len(positions), N_CONFIDENCE] features from `logp[t]` = log-prob the policy gave token t (completion
    tokens start at `first`): over the step's tokens (after the previous wanted position, up to and including
    this one) their minimum and mean, and over all completion tokens so far their minimum and sum. A position
    of None gives a NaN row."""
    rows, prev, run_min, run_sum = [], first - 1, 0.0, 0.0
    for t in positions:
        if t is None:
            rows.append([float("nan")] * N_CONFIDENCE)
            continue
        seg = logp[max(prev + 1, first):t + 1]
        if len(seg):
            run_min = min(run_min, float(seg.min()))
            run_sum += float(seg.sum())
        rows.append([float(seg.min()) if len(seg) else 0.0, float(seg.mean()) if len(seg) else 0.0,
                     run_min, run_sum])
        prev = max(prev, t)
    return torch.tensor(rows, dtype=torch.float32).reshape(len(positions), N_CONFIDENCE)


@torch.no_grad()
def _hidden_states(model, tokenizer, items: list[tuple[str, list[int], int]], batch_size: int,
                   confidence: bool = False, special_tokens: bool = True):
    """For each (text, char positions, completion start char) item: a [len(positions), H] float32 CPU tensor
    of last-layer hidden states at the tokens containing those chars, and those token positions. Batches are
    right-padded (positions stay 0..L-1, so pads never change earlier states). A char with no token (past the
    model's context, or -1) gives a NaN row and position None.

    With `confidence`, each item's rows also get the N_CONFIDENCE policy log-prob features (`_confidence`,
    completion tokens = those starting at or after the item's completion start char), appended after H."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    backbone = _backbone(model)
    lm_head = model.get_output_embeddings() if confidence else None
    max_len = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    encoded = []  # (input_ids, token positions or None, first completion token)
    for text, chars, start_char in items:
        enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=special_tokens)
        ids, offsets = enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
        if max_len is not None:
            ids, offsets = ids[:max_len], offsets[:max_len]
        pos = [_token_at(offsets, c) for c in chars]
        first = next((i for i, (s, e) in enumerate(offsets) if s >= start_char and e > s), len(ids))
        # Causal model: tokens after the last wanted position cannot change it, so they are never run.
        last = max((t for t in pos if t is not None), default=-1)
        encoded.append((ids[:last + 1], pos, max(first, 1)))

    hidden_size = None
    out: list[torch.Tensor | None] = [None] * len(items)
    # Similar lengths together (less padding); items with nothing to read are not run.
    order = sorted((i for i in range(len(items)) if encoded[i][0]), key=lambda i: len(encoded[i][0]))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    show = int(os.environ.get("RANK", "0")) == 0 and len(batches) > 1
    try:
        for batch in tqdm(batches, desc="q-hat features", disable=not show):
            width = max(len(encoded[i][0]) for i in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, i in enumerate(batch):
                n = len(encoded[i][0])
                ids[r, :n] = torch.tensor(encoded[i][0], dtype=torch.long)
                mask[r, :n] = 1
            ids, mask = ids.to(device), mask.to(device)
            if backbone is not None:
                h = backbone(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            else:
                h = model(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                          use_cache=False).hidden_states[-1]
            hidden_size = h.shape[-1]
            for r, i in enumerate(batch):
                seq_ids, pos, first = encoded[i]
                hr = h[r].float().cpu()
                rows = [hr[t] if t is not None else torch.full((hidden_size,), float("nan")) for t in pos]
                rows = torch.stack(rows) if rows else torch.zeros((0, hidden_size))
                if confidence:
                    n = len(seq_ids)
                    # One sequence at a time: a large vocabulary times a whole batch would not fit. Only the
                    # completion's log-probs are read (_confidence), so the prompt's positions are not projected.
                    logits = lm_head(h[r, first - 1:n - 1]).float()
                    logp = torch.zeros(n)
                    logp[first:] = torch.log_softmax(logits, -1).gather(1, ids[r, first:n, None])[:, 0].cpu()
                    rows = torch.cat([rows, _confidence(logp, first, pos)], dim=-1)
                out[i] = rows
    finally:
        model.train(was_training)
    hidden_size = hidden_size or getattr(getattr(model, "config", None), "hidden_size", 0)
    width = hidden_size + (N_CONFIDENCE if confidence else 0)
    rows = [o if o is not None else torch.full((len(items[i][1]), width), float("nan"))
            for i, o in enumerate(out)]
    return rows, [enc[1] for enc in encoded]


def _step_chars(prompt: str, text: str, line_indices: list[int], position: str) -> list[int | None]:
    """Char offsets in prompt+text of the chosen Action lines: their first char ("action") or last ("action_end")."""
    spans = action_line_spans(text)
    chars = []
    for k in line_indices:
        if k >= len(spans):
            chars.append(None)
            continue
        s, e = spans[k]
        chars.append(len(prompt) + (s if position == "action" else e - 1))
    return chars


def _collect(model, tokenizer, problems_by_id: dict, jobs: list[tuple[str, str, list[int]]],
             batch_size: int, position: str, confidence: bool = False, fmt: FormatConfig | None = None
             ) -> tuple[list[torch.Tensor], list[list[int | None]]]:
    """jobs: (problem_id, trace text, Action-line indices). Returns hidden rows per job (NaN rows where the
    line is missing; with `confidence`, N_CONFIDENCE log-prob features appended) and the token position of each
    row (None where missing)."""
    if position not in ("action", "action_end"):
        raise UserError(f"knowledge.position: expected 'action' or 'action_end', got {position!r}")
    framing = Framing(tokenizer, fmt)
    items = []
    for pid, text, lines in jobs:
        prompt = framing.prompt(_as_problem(problems_by_id[pid])).text
        chars = _step_chars(prompt, text, lines, position)
        # A missing line asks for char -1, which no token contains.
        items.append((prompt + text, [c if c is not None else -1 for c in chars], len(prompt)))
    return _hidden_states(model, tokenizer, items, batch_size, confidence, special_tokens=not framing.chat)


def step_features(model, tokenizer, problems_by_id: dict, traces: list[dict], verdicts: list[dict],
                  batch_size: int = 16, position: str = "action", confidence: bool = False,
                  fmt: FormatConfig | None = None) -> dict:
    """Hidden-state features of every reasoning step (option known and not CONCLUDE) of every trace.

    Verdicts are matched to traces by (problem_id, sample); a trace without a verdict is skipped, and so is a
    step whose Action line cannot be found. `position` "action" takes the token where the step's Action line
    begins (the state from which the policy writes the option); "action_end" the last token of that line.
    With `confidence`, also the policy's own log-probs of the trace's tokens up to that point (`_confidence`).
    Returns {"hidden": [N, H] float32, "confidence": [N, N_CONFIDENCE or 0] float32, "option": [N] long
    (index in OPTION_TYPES), "label": [N] float (1.0 =
    verifier-valid), "problem_id": list[str], "trace_index": [N] long (index into `traces`), "step_index":
    [N] long (verdict step index), "position": [N] long (token position in the tokenized prompt+trace)}.
    """
    by_key = {(v["problem_id"], v["sample"]): v for v in verdicts}
    jobs, meta = [], []
    for t_idx, tr in enumerate(traces):
        v = by_key.get((tr["problem_id"], tr["sample"]))
        if v is None or tr["problem_id"] not in problems_by_id:
            continue
        steps = [s for s in v.get("steps", []) if s.get("option") in OPTION_ID and s["option"] != "CONCLUDE"]
        if not steps:
            continue
        jobs.append((tr["problem_id"], tr["text"], [int(s["index"]) for s in steps]))
        meta.append((t_idx, steps))
    hidden, positions = _collect(model, tokenizer, problems_by_id, jobs, batch_size, position, confidence, fmt)

    rows, opts, labels, pids, t_ids, s_ids, pos = [], [], [], [], [], [], []
    for (pid, _, _), (t_idx, steps), h, ps in zip(jobs, meta, hidden, positions):
        for j, s in enumerate(steps):
            if ps[j] is None:
                continue
            rows.append(h[j])
            opts.append(OPTION_ID[s["option"]])
            labels.append(1.0 if s.get("valid") else 0.0)
            pids.append(pid)
            t_ids.append(t_idx)
            s_ids.append(int(s["index"]))
            pos.append(ps[j])
    dim = hidden[0].shape[-1] if hidden else 0
    all_rows = torch.stack(rows) if rows else torch.zeros((0, dim))
    n_conf = N_CONFIDENCE if confidence else 0
    return {
        "hidden": all_rows[:, :all_rows.shape[1] - n_conf],
        "confidence": all_rows[:, all_rows.shape[1] - n_conf:],
        "option": torch.tensor(opts, dtype=torch.long),
        "label": torch.tensor(labels, dtype=torch.float32),
        "problem_id": pids,
        "trace_index": torch.tensor(t_ids, dtype=torch.long),
        "step_index": torch.tensor(s_ids, dtype=torch.long),
        "position": torch.tensor(pos, dtype=torch.long),
    }


# ---------------------------------------------------------------------------------------------------------
# The head


class QHead(nn.Module):
    """logit P(step valid) = MLP([standardised features ; option-type embedding]) / temperature.

    The features are the hidden state, followed (n_confidence > 0) by the policy's log-prob features of the
    trace so far (`_confidence`). `mean`/`std` (feature standardisation, from the training split) and
    `temperature` (fit on a calibration split) are buffers, so they are saved with the weights. `position`
    records where the hidden states were read ("action" or "action_end"); scoring reads them at the same place.
    """

    def __init__(self, hidden_dim: int, hidden_size: int = 64, option_dim: int = 16,
                 n_options: int = len(OPTION_TYPES), position: str = "action", n_confidence: int = 0,
                 n_isotonic: int = 0):
        super().__init__()
        self.position = position
        self.hidden_dim, self.hidden_size, self.n_confidence = hidden_dim, hidden_size, n_confidence
        self.option_dim, self.n_options = option_dim, n_options
        dim = hidden_dim + n_confidence
        self.option_emb = nn.Embedding(n_options, option_dim)
        self.mlp = nn.Sequential(nn.Linear(dim + option_dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, 1))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("temperature", torch.ones(()))
        # Isotonic calibration map (set_isotonic): P -> P' by linear interpolation between these knots.
        self.register_buffer("iso_x", torch.zeros(n_isotonic))
        self.register_buffer("iso_y", torch.zeros(n_isotonic))

    @property
    def n_isotonic(self) -> int:
        return int(self.iso_x.numel())

    def set_isotonic(self, x, y) -> None:
        """Install an isotonic map given by its knots (increasing x, non-decreasing y, both in [0, 1])."""
        self.iso_x = torch.as_tensor(x, dtype=torch.float32).clone()
        self.iso_y = torch.as_tensor(y, dtype=torch.float32).clone()

    def forward(self, features: torch.Tensor, option: torch.Tensor) -> torch.Tensor:
        """features: [N, hidden_dim + n_confidence] (the hidden state, then the confidence features)."""
        x = (features - self.mean) / self.std
        x = torch.cat([x, self.option_emb(option)], dim=-1)
        logit = self.mlp(x).squeeze(-1) / self.temperature
        if self.n_isotonic == 0:
            return logit
        p = _interp(torch.sigmoid(logit), self.iso_x, self.iso_y).clamp(ISO_EPS, 1 - ISO_EPS)
        return torch.logit(p)


ISO_EPS = 1e-4  # isotonic probabilities are kept off 0 and 1 so the head still returns finite logits


def _interp(p: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """np.interp in torch: piecewise-linear through (xs, ys), constant beyond the ends (sklearn's 'clip')."""
    if xs.numel() == 1:
        return ys.expand_as(p).clone()
    p = p.clamp(xs[0], xs[-1])
    i = torch.searchsorted(xs, p.contiguous(), right=True).clamp(1, xs.numel() - 1)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    w = torch.where(x1 > x0, (p - x0) / (x1 - x0).clamp_min(1e-12), torch.ones_like(p))
    return y0 + w * (y1 - y0)


@torch.no_grad()
def predict(head: nn.Module, hidden: torch.Tensor, option: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """P(step valid) for each row (float32 CPU); restores the head's train mode."""
    was_training = head.training
    head.eval()
    try:
        dev = next(head.parameters(), torch.zeros(0)).device
        out = [torch.sigmoid(head(hidden[i:i + batch_size].to(dev), option[i:i + batch_size].to(dev))).float().cpu()
               for i in range(0, len(hidden), batch_size)]
    finally:
        head.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


# ---------------------------------------------------------------------------------------------------------
# Metrics


def brier(probs, labels) -> float:
    """Mean squared error between predicted probabilities and 0/1 labels."""
    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    return float(np.mean((p - y) ** 2))


def _bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    # Equal-width bins [0, 1/n), [1/n, 2/n), ..., [(n-1)/n, 1]; p = 1 goes into the last bin.
    return np.clip(np.floor(p * n_bins).astype(int), 0, n_bins - 1)


def ece(probs, labels, n_bins: int = 10) -> float:
    """Expected calibration error: sum over equal-width bins of (bin count / N) * |mean label - mean prob|."""
    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    if len(p) == 0:
        return float("nan")
    b = _bins(p, n_bins)
    total = 0.0
    for k in range(n_bins):
        m = b == k
        if m.any():
            total += m.sum() / len(p) * abs(y[m].mean() - p[m].mean())
    return float(total)


def auroc(probs, labels) -> float | None:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) statistic, tied scores getting their average
    rank (a tied positive/negative pair counts 1/2). None when only one class is present."""
    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float) > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sp = p[order]
    i = 0
    while i < len(sp):  # average ranks (1-based) over runs of equal scores
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability_diagram(probs, labels, path, n_bins: int = 10,
                        title: str = "q-hat reliability (held-out problems)") -> None:
    """PNG: fraction valid vs mean predicted probability per equal-width bin, with the diagonal and counts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    p, y = np.asarray(probs, dtype=float), np.asarray(labels, dtype=float)
    b = _bins(p, n_bins) if len(p) else np.zeros(0, dtype=int)
    fig = Figure(figsize=(5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    width = 1.0 / n_bins
    for k in range(n_bins):
        m = b == k
        if m.any():
            ax.bar(k * width, y[m].mean(), width=width, align="edge", edgecolor="black", color="tab:blue", alpha=0.7)
            ax.plot(p[m].mean(), y[m].mean(), "o", color="tab:red", markersize=4)
            ax.text((k + 0.5) * width, 0.02, str(int(m.sum())), ha="center", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(step valid)")
    ax.set_ylabel("fraction of steps valid")
    e = ece(p, y, n_bins) if len(p) else float("nan")
    ax.set_title(f"{title}\nN={len(p)}  ECE={e:.3f}", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


# ---------------------------------------------------------------------------------------------------------
# Training


def split_problems(problem_ids, fraction: float, seed: int = 0) -> set:
    """The held-out problem ids: round(fraction * #problems) of them (at least 1 when fraction > 0 and there
    are >= 2 problems, never all), chosen by a seeded shuffle of the sorted ids (independent of input order)."""
    ids = sorted(set(problem_ids))
    if fraction <= 0 or len(ids) < 2:
        return set()
    n = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    random.Random(seed).shuffle(ids)
    return set(ids[:n])


def _bce(head, h, o, y) -> float:
    with torch.no_grad():
        return float(nn.functional.binary_cross_entropy_with_logits(head(h, o), y))


def _fit(features: dict, cfg: KnowledgeConfig, seed: int):
    """Train, calibrate and evaluate; returns (head, metrics, held-out probs, held-out labels)."""
    if cfg.calibration not in QHAT_CALIBRATIONS:
        raise UserError(f"knowledge.calibration: expected 'temperature' or 'isotonic', got {cfg.calibration!r}")
    h_all, o_all, y_all = features["hidden"].float(), features["option"].long(), features["label"].float()
    conf = features.get("confidence")
    n_conf = 0 if conf is None else int(conf.shape[1])
    if n_conf:
        h_all = torch.cat([h_all, conf.float()], dim=1)
    pids = list(features["problem_id"])
    heldout = split_problems(pids, cfg.heldout_fraction, seed)
    train_ids = sorted(set(pids) - heldout)
    calib = split_problems(train_ids, cfg.calibration_fraction, seed + 1)
    is_held = torch.tensor([p in heldout for p in pids], dtype=torch.bool)
    is_cal = torch.tensor([p in calib for p in pids], dtype=torch.bool)
    is_fit = ~is_held & ~is_cal

    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG stream untouched
        torch.manual_seed(seed)
        head = QHead(h_all.shape[1] - n_conf, cfg.hidden_size, position=cfg.position, n_confidence=n_conf)
        hf, of, yf = h_all[is_fit], o_all[is_fit], y_all[is_fit]
        hc, oc, yc = h_all[is_cal], o_all[is_cal], y_all[is_cal]
        best_epoch = 0
        if len(hf):
            head.mean.copy_(hf.mean(0))
            head.std.copy_(hf.std(0, unbiased=False).clamp_min(1e-6))
            opt = torch.optim.AdamW(head.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            gen = torch.Generator().manual_seed(seed)
            best = (math.inf, None)
            head.train()
            for epoch in range(1, cfg.epochs + 1):
                perm = torch.randperm(len(hf), generator=gen)
                for i in range(0, len(hf), cfg.batch_size):
                    idx = perm[i:i + cfg.batch_size]
                    loss = nn.functional.binary_cross_entropy_with_logits(head(hf[idx], of[idx]), yf[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                if len(hc):  # keep the epoch with the lowest calibration-split loss (early stopping)
                    head.eval()
                    loss_c = _bce(head, hc, oc, yc)
                    head.train()
                    if loss_c < best[0]:
                        best = (loss_c, {k: v.clone() for k, v in head.state_dict().items()})
                        best_epoch = epoch
            if best[1] is not None:
                head.load_state_dict(best[1])
            else:
                best_epoch = cfg.epochs
        head.eval()
        if len(hc):  # temperature scaling (Guo et al. 2017): one scalar, grid search on calibration NLL
            with torch.no_grad():
                logits = head(hc, oc)
            grid = torch.exp(torch.linspace(-3, 3, 241))
            nll = torch.stack([nn.functional.binary_cross_entropy_with_logits(logits / t, yc) for t in grid])
            head.temperature.fill_(float(grid[int(torch.argmin(nll))]))
        if len(hc) and cfg.calibration == "isotonic" and 0 < float(yc.mean()) < 1:
            # A monotone map fit on the calibration split (Zadrozny & Elkan 2002). Temperature scaling only
            # sharpens or flattens; on the tiny model's traces the middle range (0.3-0.7) was 0.2-0.4 too
            # confident while both ends were right, which only a non-parametric map corrects.
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(predict(head, hc, oc).numpy(), yc.numpy())
            head.set_isotonic(iso.X_thresholds_, iso.y_thresholds_)

    p_held = predict(head, h_all[is_held], o_all[is_held]).numpy()
    y_held = y_all[is_held].numpy()
    n = len(y_all)
    metrics = {
        "brier": brier(p_held, y_held) if len(p_held) else None,
        # With one class only (every held-out step valid, or none) a calibration error says nothing.
        "ece": ece(p_held, y_held) if len(p_held) and 0 < float(np.mean(y_held)) < 1 else None,
        "auroc": auroc(p_held, y_held) if len(p_held) else None,
        "heldout_accuracy": float(np.mean((p_held >= 0.5) == (y_held > 0.5))) if len(p_held) else None,
        "n_train": int((~is_held).sum()),
        "n_heldout": int(is_held.sum()),
        "n_train_problems": len(train_ids),
        "n_heldout_problems": len(heldout),
        "positive_rate": float(y_all.mean()) if n else None,
        "heldout_positive_rate": float(y_held.mean()) if len(y_held) else None,
        "temperature": float(head.temperature),
        "isotonic_knots": head.n_isotonic,
        "best_epoch": best_epoch,
    }
    return head, metrics, p_held, y_held


def train_qhat(features: dict, cfg: KnowledgeConfig, seed: int = 0) -> tuple[QHead, dict]:
    """Train q-hat on step features (see step_features), problems split into train / held-out by problem_id.

    The held-out problems (cfg.heldout_fraction) are never trained on. Of the training problems,
    cfg.calibration_fraction is kept aside to pick the epoch (lowest BCE), fit a temperature and, with
    cfg.calibration "isotonic", an isotonic map on top; the rest is fit with BCE + AdamW, minibatches of
    cfg.batch_size, features standardised with the fit split's mean/std.
    Deterministic per seed; the global torch RNG is left as it was. Metrics (held-out; None when there is no
    held-out step, auroc None with one class): brier, ece, auroc, heldout_accuracy, n_train / n_heldout (steps),
    n_train_problems, n_heldout_problems, positive_rate (all steps), heldout_positive_rate, temperature,
    isotonic_knots (0: no isotonic map), best_epoch.
    """
    head, metrics, _, _ = _fit(features, cfg, seed)
    return head, metrics


# ---------------------------------------------------------------------------------------------------------
# Saving


def save_qhat(head: QHead, out_dir) -> None:
    """out_dir/qhat.safetensors (weights + buffers) and out_dir/qhat.json (shapes and the option vocabulary)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    with atomic_path(out_dir / "qhat.safetensors") as tmp:
        save_file(state, str(tmp))
    write_json(out_dir / "qhat.json", {
        "hidden_dim": head.hidden_dim, "hidden_size": head.hidden_size, "option_dim": head.option_dim,
        "option_types": list(OPTION_TYPES)[:head.n_options], "position": head.position,
        "n_confidence": head.n_confidence, "n_isotonic": head.n_isotonic,
    })


def load_qhat(path) -> QHead:
    """Load a head saved by save_qhat (safetensors only, never pickle). Errors name the folder."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_path, weights = path / "qhat.json", path / "qhat.safetensors"
    if not meta_path.is_file() or not weights.is_file():
        raise UserError(f"{path}: expected a q-hat folder with qhat.json and qhat.safetensors")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta["option_types"] != list(OPTION_TYPES):
            raise UserError(f"{meta_path}: field 'option_types' differs from this version's option vocabulary")
        head = QHead(int(meta["hidden_dim"]), int(meta["hidden_size"]), int(meta["option_dim"]), len(OPTION_TYPES),
                     position=str(meta.get("position", "action")), n_confidence=int(meta.get("n_confidence", 0)),
                     n_isotonic=int(meta.get("n_isotonic", 0)))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{meta_path}: invalid q-hat metadata ({e})") from None
    head.load_state_dict(load_file(str(weights)), strict=True)
    head.eval()
    return head


# ---------------------------------------------------------------------------------------------------------
# The loop stage, scoring and reranking


def cap_traces(traces: list[dict], max_traces: int, seed: int = 0) -> list[dict]:
    """At most `max_traces` traces (0: all), whole problems at a time, problems in a seeded order of their
    sorted ids; the kept traces stay in their input order."""
    if max_traces <= 0 or len(traces) <= max_traces:
        return traces
    counts: dict[str, int] = {}
    for t in traces:
        counts[t["problem_id"]] = counts.get(t["problem_id"], 0) + 1
    ids = sorted(counts)
    random.Random(seed).shuffle(ids)
    keep, total = set(), 0
    for pid in ids:
        if total + counts[pid] > max_traces:
            continue
        keep.add(pid)
        total += counts[pid]
    return [t for t in traces if t["problem_id"] in keep]


def run_knowledge_stage(model, tokenizer, problems, traces: list[dict], verdicts: list[dict],
                        cfg: KnowledgeConfig, out_dir, seed: int = 0, fmt: FormatConfig | None = None) -> dict:
    """One OaK iteration's q-hat: features -> train -> out_dir/qhat/ -> out_dir/qhat_reliability.png.

    `problems`: a list of Problem (or problem dicts), or a dict {problem_id: Problem}.

    At most cfg.max_traces traces are read (see cap_traces). Returns the metrics (see train_qhat) plus n_steps,
    n_traces (read) and n_traces_available. With no reasoning step at all, nothing is trained or
    written and the metrics are None / 0 with "skipped": "no reasoning steps".
    """
    if isinstance(problems, dict):  # {problem_id: problem} works too
        problems = list(problems.values())
    problems_by_id = {p.id: p for p in map(_as_problem, problems)}
    n_traces = len(traces)
    traces = cap_traces(traces, cfg.max_traces, seed)
    from .model import attention

    with attention(model, cfg.attn_implementation, "knowledge.attn_implementation"):
        feats = step_features(model, tokenizer, problems_by_id, traces, verdicts, cfg.batch_size_features,
                              cfg.position, confidence=cfg.confidence_features, fmt=fmt)
    if len(feats["label"]) == 0:
        return {"brier": None, "ece": None, "auroc": None, "heldout_accuracy": None, "n_train": 0, "n_heldout": 0,
                "positive_rate": None, "n_steps": 0, "skipped": "no reasoning steps"}
    head, metrics, p_held, y_held = _fit(feats, cfg, seed)
    out_dir = Path(out_dir)
    save_qhat(head, out_dir / "qhat")
    reliability_diagram(p_held, y_held, out_dir / "qhat_reliability.png")
    metrics["n_steps"] = int(len(feats["label"]))
    metrics["n_traces"] = len(traces)
    metrics["n_traces_available"] = n_traces
    return metrics


def score_traces(model, tokenizer, head: nn.Module, problems_by_id: dict, traces: list[dict],
                 batch_size: int = 16, position: str | None = None, fmt: FormatConfig | None = None) -> list[float]:
    """Predicted validity of each trace: the product of q-hat's P(valid) over its reasoning steps.

    Steps are the trace's Action lines; a reasoning step is one whose option type is known and not CONCLUDE.
    An Action line with an unknown or missing option type is a step the verifier rejects, so it makes the
    score 0; so does having no reasoning step at all (a valid trace needs one, except in the rare case that the
    query is itself a premise). `position` (None: the head's own, else "action") must match training.
    """
    position = position or getattr(head, "position", "action")
    want = getattr(head, "hidden_dim", None)
    have = getattr(getattr(model, "config", None), "hidden_size", None)
    if isinstance(want, int) and isinstance(have, int) and want != have:
        raise UserError(f"q-hat was trained on hidden states of size {want}, but this policy's are {have}")
    jobs, opts, zero = [], [], []
    for tr in traces:
        lines = [tr["text"][s:e] for s, e in action_line_spans(tr["text"])]
        # as the verifier reads them: a line it rejects (unparsable, unknown option, bad args) names no option
        names = [option if error is None else None for option, _, error in map(parse_action, lines)]
        bad = any(n not in OPTION_ID for n in names)
        reasoning = [k for k, n in enumerate(names) if n in OPTION_ID and n != "CONCLUDE"]
        zero.append(bad or not reasoning)
        jobs.append((tr["problem_id"], tr["text"], [] if zero[-1] else reasoning))
        opts.append([OPTION_ID[names[k]] for k in jobs[-1][2]])
    todo = [i for i, z in enumerate(zero) if not z]
    hidden, _ = _collect(model, tokenizer, problems_by_id, [jobs[i] for i in todo], batch_size, position,
                         confidence=getattr(head, "n_confidence", 0) > 0, fmt=fmt)
    scores = [0.0] * len(traces)
    for i, h in zip(todo, hidden):
        p = predict(head, h, torch.tensor(opts[i], dtype=torch.long))
        p = torch.nan_to_num(p, nan=0.0)  # an Action line beyond the model's context: no evidence it is valid
        scores[i] = float(torch.prod(p.double()))
    return scores


def rerank(model, tokenizer, head: nn.Module, problems, traces: list[dict], batch_size: int = 16,
           position: str | None = None, fmt: FormatConfig | None = None) -> list[dict]:
    """For each problem (in `problems` order) the sampled trace with the highest score_traces value; ties go
    to the lowest sample index. Returns copies of the chosen trace records with "qhat_score" added; a problem
    with no trace is left out."""
    problems = [_as_problem(p) for p in problems]
    by_id = {p.id: p for p in problems}
    traces = [t for t in traces if t["problem_id"] in by_id]
    scores = score_traces(model, tokenizer, head, by_id, traces, batch_size, position, fmt)
    best: dict[str, tuple[float, int, dict]] = {}
    for tr, s in zip(traces, scores):
        cur = best.get(tr["problem_id"])
        if cur is None or s > cur[0] or (s == cur[0] and tr["sample"] < cur[1]):
            best[tr["problem_id"]] = (s, tr["sample"], tr)
    return [{**best[p.id][2], "qhat_score": best[p.id][0]} for p in problems if p.id in best]
