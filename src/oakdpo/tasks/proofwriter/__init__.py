"""ProofWriter (Logic-LM's format): facts and rules over entities, open-world labels TRUE / FALSE / UNKNOWN."""

from __future__ import annotations

from ..base import Task


class ProofWriterTask(Task):
    name = "proofwriter"
    import_formats = ("proofwriter-logiclm",)
