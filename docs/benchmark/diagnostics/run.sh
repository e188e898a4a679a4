#!/usr/bin/env bash
# The diagnostics of issue 16 (item 7), as they were run (50 demos, CLI defaults, seed 0,
# 100 greedy test episodes). Usage: bash docs/benchmark/diagnostics/run.sh WORKDIR
set -euo pipefail
D=${1:?a working directory for demos, rollouts and checkpoints}
OUT=$(dirname "$0")
mkdir -p "$D"
export OMP_NUM_THREADS=1
earlyexp collect earlyexp/Household-v0 --episodes 50 --out "$D/hh.jsonl"
earlyexp rollouts earlyexp/Household-v0 --demos "$D/hh.jsonl" --out "$D/hh-rollouts.jsonl"
earlyexp train earlyexp/Household-v0 --learner bc --demos "$D/hh.jsonl" --out "$D/hh-bc" --no-progress
earlyexp train earlyexp/Household-v0 --learner iwm-matched --demos "$D/hh.jsonl" \
  --rollout-file "$D/hh-rollouts.jsonl" --out "$D/hh-iwm" --no-progress
for run in bc iwm; do
  python -m learners.diagnostics failures --agent "$D/hh-$run/agent.pt" --env earlyexp/Household-v0 \
    --episodes 100 --json "$OUT/hh-$run-failures.json" > "$OUT/hh-$run-failures.md"
done
# The saved IWM agent holds the network after stage 2; stage1 rebuilds its world model.
python -m learners.diagnostics wm --agent "$D/hh-iwm/agent.pt" --demos "$D/hh.jsonl" \
  --rollouts "$D/hh-rollouts.jsonl" --json "$OUT/hh-iwm-wm.json" > "$OUT/hh-iwm-wm.md"
python -m learners.diagnostics stage1 --demos "$D/hh.jsonl" --rollouts "$D/hh-rollouts.jsonl" \
  --out "$D/hh-iwm-stage1" --like "$D/hh-iwm/agent.pt" --set log_dir="$D/tb"
python -m learners.diagnostics wm --agent "$D/hh-iwm-stage1/agent.pt" --demos "$D/hh.jsonl" \
  --rollouts "$D/hh-rollouts.jsonl" --json "$OUT/hh-iwm-stage1-wm.json" > "$OUT/hh-iwm-stage1-wm.md"
for E in Lab WebNav; do
  e=$(echo $E | tr A-Z a-z)
  earlyexp collect earlyexp/$E-v0 --episodes 50 --out "$D/$e.jsonl"
  earlyexp train earlyexp/$E-v0 --learner bc --demos "$D/$e.jsonl" --out "$D/$e-bc" --no-progress
  python -m learners.diagnostics failures --agent "$D/$e-bc/agent.pt" --env earlyexp/$E-v0 \
    --episodes 100 --json "$OUT/$e-bc-failures.json" > "$OUT/$e-bc-failures.md"
done
