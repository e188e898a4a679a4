"""Quick-profile design experiments: BC per setting with a given config; one JSON line per run."""

import argparse
import json
import os
import time
from pathlib import Path

import torch

from agents import ModelConfig
from learners.data import collect_demos
from learners.registry import get_learner

torch.set_num_threads(1)

if os.environ.get("NO_LAYERS"):
    import agents.model as _m

    _orig = _m.PolicyModel.__init__

    def _init(self, *a, **k):
        _orig(self, *a, **k)
        self.state_layers = torch.nn.ModuleList()

    _m.PolicyModel.__init__ = _init

p = argparse.ArgumentParser()
p.add_argument("--env")
p.add_argument("--demos", type=int, default=64)
p.add_argument("--episodes", type=int, default=None)
p.add_argument("--learner", default="bc")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--set", nargs="*", default=[])
p.add_argument("--model", nargs="*", default=[])
p.add_argument("--eval", type=int, default=50)
p.add_argument("--tag", default="")
p.add_argument("--env-kwargs", default="{}")
a = p.parse_args()
slug = a.env.replace("/", "_")
data = Path("/tmp/qp/data") / slug
data.mkdir(parents=True, exist_ok=True)
kw = json.loads(a.env_kwargs)
demos = data / f"demos{a.demos}{'_' + str(abs(hash(a.env_kwargs)) % 1000) if kw else ''}.jsonl"
if not demos.exists():
    collect_demos(a.env, a.demos, demos, env_kwargs=kw, progress=False)


def val(s):
    try:
        return json.loads(s)
    except Exception:
        return s


sets = dict(x.split("=", 1) for x in a.set)
sets = {k: val(v) for k, v in sets.items()}
model = dict(x.split("=", 1) for x in a.model)
model = {k: val(v) for k, v in model.items()}
learner = get_learner(a.learner)
out = Path("/tmp/qp/runs") / f"{slug}_{a.learner}_{a.seed}_{a.tag}_{time.time_ns()}"
cfg = learner.make_config(
    env_id=a.env,
    demos=str(demos),
    episodes=a.episodes or a.demos,
    seed=a.seed,
    out=str(out),
    log_dir=str(out / "tb"),
    progress=False,
    eval_episodes=a.eval,
    device="cpu",
    model=ModelConfig(**model),
    **(
        {"env_kwargs": kw}
        if kw and "env_kwargs" in {f for f in learner.config.__dataclass_fields__}
        else {}
    ),
    **sets,
)
t = time.perf_counter()
m = learner.train(cfg)
row = {
    "env": a.env.split("/")[-1],
    "learner": a.learner,
    "seed": a.seed,
    "episodes": a.episodes or a.demos,
    "tag": a.tag,
    "set": sets,
    "model": model,
    "secs": round(time.perf_counter() - t, 1),
    "updates": m.get("updates"),
    "best_update": m.get("best_update"),
    "val_acc": m.get("val_accuracy", m.get("best", {})),
    "greedy": m["eval"]["greedy"]["success_rate"],
    "sampled": m["eval"]["sampled"]["success_rate"],
    "random": m["eval"]["random"]["success_rate"],
}
print(json.dumps(row), flush=True)
with open("/tmp/qp/results.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
