#!/usr/bin/env bash
# The project's check on a CUDA GPU, in one short call (issues 17 and 18), in stages that
# each get their own time limit inside SECONDS in all (a stage that fails or runs out does
# not stop the next):
#
#   tests       the tests that need a GPU (they ask for cuda by name);
#   lm          the tiny-LM profile `lm` on the GPU, alone (LM_SEEDS: its seeds to run);
#   suite       the whole suite with EARLYEXP_DEVICE=cuda (--device auto is the GPU; the
#               tests exact only on the CPU skip);
#   throughput  BC, RL and tiny-LM throughput on the GPU, alone.
#
#     [STAGES="tests lm suite throughput"] [LM_SEEDS="0 1 2 3 4"] \
#         bash benchmarks/gpu_check.sh OUT [SECONDS]       # SECONDS defaults to 480
#
# OUT receives at most 8 files (what a remote device call can bring back): log.txt (this
# script's log), gpu-tests.txt, lm-bench.txt, lm-results.jsonl (the profile's results file:
# copy it to results/lm-gpu/results.jsonl and run again to go on), suite.txt,
# throughput.md, and gpu-memory.txt (every process above 8 GiB of GPU memory, polled every
# 2 s). Runs after the README's install, or with the project's dependencies importable and
# `earlyexp` on PATH.
set -uo pipefail
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUT [SECONDS]}
END=$((SECONDS + ${2:-480}))
STAGES=" ${STAGES:-tests lm suite throughput} "
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
log() { echo "[$(date -u +%T) +${SECONDS}s] $*"; }
left() { echo $((END - SECONDS - $1)); } # seconds left, keeping $1 for what follows
stage() { [[ $STAGES == *" $1 "* ]]; }

log "commit $(git rev-parse --short HEAD 2>/dev/null || echo "${EARLYEXP_SENT:-unknown}")"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch, transformers; print(sys.version.split()[0], 'torch', \
torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'" || exit 1

while sleep 2; do
    nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits |
        while IFS=', ' read -r pid mib; do
            if [ "${mib:-0}" -gt 8192 ] 2>/dev/null; then
                echo "$(date -u +%T) pid $pid $mib MiB: $(tr '\0' ' ' </proc/"$pid"/cmdline | cut -c1-200)"
            fi
        done
done >>"$OUT/gpu-memory.txt" 2>&1 &
poller=$!

if stage tests; then
    log "the tests that need a GPU"
    timeout 150 python3 -m pytest -p no:cacheprovider -n 3 --maxprocesses 3 -k "gpu or device" \
        tests/learners/test_imitation.py tests/learners/test_lm_bc.py tests/agents/test_agent.py \
        tests/benchmarks/test_sweep_lm.py >"$OUT/gpu-tests.txt" 2>&1
    log "exit $? ($(grep -E "passed|failed" "$OUT/gpu-tests.txt" | tail -n 1))"
fi

if stage lm; then
    reserve=0
    stage suite && reserve=$((reserve + 150))
    stage throughput && reserve=$((reserve + 90))
    log "lm profile on the GPU, seeds ${LM_SEEDS:-0 1 2 3 4}"
    # shellcheck disable=SC2086 # LM_SEEDS is a list of seeds
    timeout "$(left "$reserve")" earlyexp bench --profile lm --seeds ${LM_SEEDS:-0 1 2 3 4} \
        --out results/lm-gpu --jobs 16 --device cuda >"$OUT/lm-bench.txt" 2>&1
    log "exit $? ($(grep -c . results/lm-gpu/results.jsonl 2>/dev/null || echo 0) runs done)"
    cp results/lm-gpu/results.jsonl "$OUT/lm-results.jsonl" 2>/dev/null
fi

if stage suite; then
    log "the whole suite on the GPU"
    reserve=5
    stage throughput && reserve=90
    # -vv over the -q of pyproject.toml: with workers, each result is printed as it comes, so a
    # stopped suite still names them.
    EARLYEXP_DEVICE=cuda timeout "$(left "$reserve")" python3 -m pytest -vv -p no:cacheprovider \
        -n 12 --maxprocesses 12 --tb=short >"$OUT/suite.txt" 2>&1
    log "exit $? ($(tail -n 1 "$OUT/suite.txt"))"
fi

if stage throughput; then
    log "throughput on the GPU"
    timeout "$(left 5)" python3 -m benchmarks.throughput --no-envs \
        --envs earlyexp/Household-v0 --bc --rl --lm tiny --device cuda >"$OUT/throughput.md" 2>&1
    log "exit $?"
    cat "$OUT/throughput.md"
fi
kill "$poller" 2>/dev/null
