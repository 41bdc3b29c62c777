"""oakdpo: train language models to reason with solver-verified proofs (the OaK-DPO loop)."""

__version__ = "0.1.0"
