#!/usr/bin/env bash
# The project's check on a CUDA GPU, in one short call (issues 17 and 18): the tests that
# need a GPU, the whole suite with --device auto picking the GPU, the tiny-LM profile `lm`
# on the GPU, and the throughput of both agents there. Each stage has its own time limit
# inside SECONDS in all, and a stage that fails or runs out does not stop the next.
#
#     bash benchmarks/gpu_check.sh OUT [SECONDS]     # SECONDS defaults to 480
#
# OUT receives at most 8 files (what a remote device call can bring back): log.txt (this
# script's log), gpu-tests.txt, suite.txt, lm-bench.txt, lm-results.jsonl (the profile's
# results file, resumable: copy it to results/lm-gpu/results.jsonl and run again to go on)
# and throughput.md. Runs after the README's install, or with the project's dependencies on
# PYTHONPATH and `earlyexp` on PATH.
set -uo pipefail
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUT [SECONDS]}
END=$((SECONDS + ${2:-480}))
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
log() { echo "[$(date -u +%T) +${SECONDS}s] $*"; }
left() { echo $((END - SECONDS - $1)); } # seconds left, keeping $1 for what follows

log "commit $(git rev-parse --short HEAD 2>/dev/null || echo "${EARLYEXP_SENT:-unknown}")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch, transformers; print(sys.version.split()[0], 'torch', \
torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'" || exit 1

log "the tests that need a GPU"
timeout 120 python3 -m pytest -q -p no:cacheprovider -n 2 --maxprocesses 2 -k "gpu or device" \
    tests/learners/test_imitation.py tests/learners/test_lm_bc.py tests/agents/test_agent.py \
    >"$OUT/gpu-tests.txt" 2>&1
log "exit $? ($(tail -n 1 "$OUT/gpu-tests.txt"))"

# The profile and the suite share the machine (the suite on 5 workers); throughput runs alone
# at the end, with 100 s kept for it.
log "lm profile on the GPU, and the whole suite beside it"
budget=$(left 110)
# -v: with workers, each result is printed as it comes, so a stopped suite still names them.
timeout "$budget" python3 -m pytest -v -p no:cacheprovider -n 5 --maxprocesses 5 --tb=short >"$OUT/suite.txt" 2>&1 &
suite=$!
timeout "$budget" earlyexp bench --profile lm --out results/lm-gpu --jobs 10 --device cuda \
    >"$OUT/lm-bench.txt" 2>&1
log "lm bench exit $? ($(grep -c . results/lm-gpu/results.jsonl 2>/dev/null || echo 0) runs)"
cp results/lm-gpu/results.jsonl "$OUT/lm-results.jsonl" 2>/dev/null
wait "$suite"
log "suite exit $? ($(tail -n 1 "$OUT/suite.txt"))"

log "throughput on the GPU"
timeout "$(left 5)" python3 -m benchmarks.throughput --no-envs --envs earlyexp/Household-v0 \
    --bc --rl --lm tiny --device cuda >"$OUT/throughput.md" 2>&1
log "exit $?"
cat "$OUT/throughput.md"
