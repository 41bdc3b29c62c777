#!/usr/bin/env python3
"""Thin entry for the OaK-DPO loop (same flags as `oakdpo oak`); works under torchrun / accelerate launch.

    torchrun --nproc_per_node=2 scripts/run_oak_dpo.py --samples 4 --iterations 2 \
        --config configs/training.yaml --train-data problems.jsonl --sft-model sft/ --dataset-type prontoqa
"""

import sys

from oakdpo.cli import main

if __name__ == "__main__":
    sys.exit(main(["oak", *sys.argv[1:]]))
