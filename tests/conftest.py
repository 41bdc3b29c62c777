"""Shared fixtures: a tiny policy built locally (no hub), generated problems, the shared reference data."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED


@pytest.fixture(scope="session")
def small_problems():
    from oakdpo.tasks.prontoqa.generator import generate_problems

    return generate_problems(40, hops=(1, 3), seed=123)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, small_problems) -> Path:
    """A randomly initialised ~50k-parameter Llama + BPE tokenizer trained on a small generated corpus."""
    from oakdpo.config import ModelConfig
    from oakdpo.tiny import build_corpus, init_tiny_model

    out = tmp_path_factory.mktemp("tiny") / "model"
    cfg = ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=400,
                      max_position_embeddings=1024)
    init_tiny_model(cfg, build_corpus(small_problems), out, seed=0)
    return out


@pytest.fixture(scope="session")
def qwen2_standin(tmp_path_factory) -> Path:
    """A random-init Qwen2 (a few M parameters) with a locally trained tokenizer, a ChatML chat template and eos
    <|im_end|>: a user's instruct checkpoint, in small."""
    from oakdpo.standin import build_standin

    return build_standin("qwen2", tmp_path_factory.mktemp("standin") / "qwen2", size="small")


@pytest.fixture(scope="session")
def llama_standin(tmp_path_factory) -> Path:
    """A random-init Llama (a few M parameters) whose tokenizer has a BOS, no pad token and no chat template."""
    from oakdpo.standin import build_standin

    return build_standin("llama", tmp_path_factory.mktemp("standin") / "llama", size="small")
