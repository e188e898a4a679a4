#!/bin/bash
# usage: chain.sh TAG DEMOS "SETS" "MODEL"
cd /work/main && . .venv/bin/activate && export OMP_NUM_THREADS=1
for env in Household Tools Shop WebNav Lab BabyAI DoorKey TreasureHunter Cooking; do
  kw='{}'
  [ $env = Cooking ] && kw='{"games": 40, "recipe": 1, "take": 1}'
  python /tmp/qp/exp.py --env earlyexp/$env-v0 --demos $2 --set $3 --model $4 --tag $1 --env-kwargs "$kw" >> /tmp/qp/chain_$1.log 2>&1
done
