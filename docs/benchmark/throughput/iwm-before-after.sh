#!/bin/bash
# Before/after seconds per update of BC, iwm-joint and a world-model stage on Household
# (`python -m benchmarks.throughput --iwm`'s function), interleaved as before-after.sh does:
# the newer tree's benchmarks/throughput.py runs on both trees in turn. One line of JSON per
# measurement.
#
#   git worktree add /tmp/before OLD_COMMIT && cp benchmarks/throughput.py /tmp/before/benchmarks/
#   bash docs/benchmark/throughput/iwm-before-after.sh /tmp/before "$PWD" > results.jsonl
set -euo pipefail
BEFORE=$1 AFTER=$2
export OMP_NUM_THREADS=1
for _ in 0 1 2; do
  for tree in "$BEFORE" "$AFTER"; do
    (cd "$tree" && python -c "
import json, benchmarks.throughput as t
r = t.measure_update_cost('earlyexp/Household-v0', repeats=1)
print(json.dumps({'commit': t.commit(), 'seconds_per_update': r['seconds_per_update'], 'ratio_to_bc': r['ratio_to_bc']}))
" 2>/dev/null)
  done
done
