"""How long the command line takes to answer when it has no model work to do: `oakdpo --help`, a subcommand's
`--help`, and an argument error, each as a whole process (interpreter start included), warm (the first run is
discarded: it fills the OS file cache). Target: under 1 s each.

The heavy libraries (torch, transformers, TRL, PEFT, datasets, z3) are imported only by the commands that use
them, so none of these should load them; the script also prints which of them `oakdpo --help` imported, and what
the imports of a command that runs a model cost (a floor under `oakdpo generate`'s whole-process time).

    python benchmarks/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "z3", "sklearn", "matplotlib")
CASES = {
    "oakdpo --help": ["--help"],
    "oakdpo oak --help": ["oak", "--help"],
    "oakdpo sft (argument error)": ["sft", "--no-such-flag"],
}


def oakdpo_cmd(argv: list[str]) -> list[str]:
    """The installed `oakdpo` entry point (as a user types it), else python -m oakdpo.cli."""
    exe = shutil.which("oakdpo")
    return ([exe] if exe else [sys.executable, "-m", "oakdpo.cli"]) + argv


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall time and exit code of one whole process."""
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    return time.perf_counter() - t0, rc


def measure(name: str, cmd: list[str], repeat: int, note: str = "") -> dict:
    """Median and max wall time of `repeat` runs after a warm-up; prints one line."""
    timed(cmd)  # warm-up
    runs = [timed(cmd) for _ in range(repeat)]
    wall = sorted(t for t, _ in runs)
    stats = {"median_s": round(wall[len(wall) // 2], 3), "max_s": round(wall[-1], 3), "rc": runs[0][1]}
    print(f"{name:32s} median {stats['median_s']:.3f} s, max {stats['max_s']:.3f} s (rc {stats['rc']}){note}")
    return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    out = {name: measure(name, oakdpo_cmd(argv), args.repeat) for name, argv in CASES.items()}
    probe = ("import sys, runpy; sys.argv = ['oakdpo', '--help']\n"
             "try:\n    runpy.run_module('oakdpo.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    loaded = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "?"
    print(f"heavy libraries imported by `oakdpo --help`: {loaded}")
    # The floor of any command that runs a model: the imports it cannot skip (oakdpo's generation path, torch and
    # transformers' Llama modeling, which loads a tiny-model checkpoint), as one whole process.
    needed = "import oakdpo.generation, oakdpo.model, transformers.models.llama.modeling_llama"
    floor = measure("imports of a model command", [sys.executable, "-c", needed], args.repeat,
                    " (torch + transformers Llama; every `oakdpo generate` pays them)")
    print(json.dumps({"cases": out, "heavy_imported_by_help": loaded, "model_command_imports": floor}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
