"""The install's three version lists agree: pyproject's ranges, constraints.txt (what `make install` puts in: each
range's newest) and the Makefile's COMPAT (what `make test-compat` puts in: the vllm extra's pins, each range's
oldest)."""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]


def _ranges() -> dict[str, tuple[str, str]]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        m = re.fullmatch(r"([\w-]+)>=([\w.]+),<=([\w.]+)", dep)
        if m:
            out[m[1].lower()] = (m[2], m[3])
    return out


def _pins(lines) -> dict[str, str]:
    return {name.lower(): version for name, version in (x.split("==") for x in lines)}


def test_constraints_pin_each_range_at_its_newest():
    lines = [x for x in (ROOT / "constraints.txt").read_text().splitlines() if x and not x.startswith("#")]
    ranges = _ranges()
    assert set(ranges) == {"transformers", "z3-solver", "numpy"}
    assert _pins(lines) == {name: newest for name, (_, newest) in ranges.items()}


def test_compat_pins_are_the_vllm_extras_and_each_range_at_its_oldest():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["vllm"]
    [compat] = re.findall(r"^COMPAT = (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert _pins(compat.split()) == {k: v for k, v in _pins(extra).items() if k != "vllm"}
    assert _pins(compat.split()) == {name: oldest for name, (oldest, _) in _ranges().items()}
