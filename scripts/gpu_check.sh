#!/usr/bin/env bash
# The one prepared GPU check (see scripts/gpu_check.py): a random-init ~0.5B Qwen2 stand-in in bf16, SFT with
# LoRA, one OaK iteration with the HF backend (and vLLM when it imports), printing traces/s, tokens/s, peak GPU
# memory per stage and whether NCCL initialised. Under 8 minutes on one H200. Nothing is downloaded.
#   scripts/gpu_check.sh            # on a GPU machine (OUT=runs/gpu_check)
#   scripts/gpu_check.sh --smoke    # on a CPU, to check the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1  # no outside access: no usage reports
exec python3 scripts/gpu_check.py --out "${OUT:-runs/gpu_check}" "$@"
