#!/bin/bash
# Before/after training throughput on Household, interleaved: the same measurement code
# (benchmarks/throughput.py of the newer tree, copied into the older one) runs on both trees
# in turn, so that load drifting on a shared machine affects both alike. One line of JSON
# per measurement.
#
#   git worktree add /tmp/before OLD_COMMIT && cp benchmarks/throughput.py /tmp/before/benchmarks/
#   bash docs/benchmark/throughput/before-after.sh /tmp/before "$PWD" > results.jsonl
set -euo pipefail
BEFORE=$1 AFTER=$2
export OMP_NUM_THREADS=1
measure() {  # tree, python expression of the measurement, what
  (cd "$1" && python -c "
import json, benchmarks.throughput as t
r = $2
print(json.dumps({'tree': '$1', 'commit': t.commit(), 'what': '$3', 'value': r['$4'], 'n_envs': r.get('n_envs')}))
" 2>/dev/null)
}
for _ in 0 1 2; do
  for tree in "$BEFORE" "$AFTER"; do
    measure "$tree" "t.measure_bc_samples('earlyexp/Household-v0', updates=100, repeats=1)" bc samples_per_second
  done
done
for _ in 0 1 2; do
  for tree in "$BEFORE" "$AFTER"; do
    measure "$tree" "t.measure_rl_steps('earlyexp/Household-v0', steps=2048, repeats=1)" rl env_steps_per_second
  done
done
