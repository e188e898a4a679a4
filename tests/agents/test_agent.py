import io
import os
import pickle
import zipfile
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from agents import Agent, AgentConfig, ModelConfig
from agents.files import SEAL_MARKER, seal, unseal
from agents.tokenizer import ACT, NOW, PREV

SMALL = AgentConfig(ModelConfig(vocab_size=512, d_model=32, n_heads=4, ff_dim=64))
OBS = {"goal": "put a clean apple in the fridge", "text": "You are in the kitchen."}
INFO = {"admissible_actions": ["go to fridge 1", "take apple 1", "clean apple 1", "look"]}


@pytest.fixture
def agent():
    return Agent(SMALL, seed=3)


def play(agent, steps=5, **kwargs):
    agent.reset()
    return [agent.act({**OBS, "text": f"step {i}"}, INFO, **kwargs) for i in range(steps)]


# -- construction ----------------------------------------------------------------------------
def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = Agent(SMALL, seed=1), Agent(SMALL, seed=1), Agent(SMALL, seed=2)
    assert torch.equal(torch.rand(3), expected_next)  # building agents drew nothing globally
    for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    pairs = zip(a.model.parameters(), c.model.parameters(), strict=True)
    differs = [not torch.equal(pa, pc) for pa, pc in pairs]
    assert any(differs)


def test_default_config():
    agent = Agent()
    assert agent.config == AgentConfig()
    assert agent.tokenizer.vocab_size == agent.config.model.vocab_size == 8192


# -- acting ----------------------------------------------------------------------------------
def test_greedy_is_deterministic_and_picks_the_most_probable(agent):
    probs = agent.action_probs(OBS, INFO)
    assert probs.shape == (4,) and probs.dtype == np.float64
    assert probs.sum() == pytest.approx(1.0) and (probs > 0).all()
    assert agent.act(OBS, INFO) == INFO["admissible_actions"][int(np.argmax(probs))]
    assert play(agent) == play(agent) == play(Agent(SMALL, seed=3))


def test_sampling_is_reproducible_with_a_seeded_rng(agent):
    runs = [play(agent, steps=30, greedy=False, rng=np.random.default_rng(7)) for _ in range(2)]
    assert runs[0] == runs[1]
    assert len(set(runs[0])) > 1  # a near-uniform untrained policy does sample
    other = play(agent, steps=30, greedy=False, rng=np.random.default_rng(8))
    assert other != runs[0]
    # Without an rng the agent's own, seeded from its seed, makes runs repeatable.
    own = [play(Agent(SMALL, seed=3), steps=30, greedy=False) for _ in range(2)]
    assert own[0] == own[1]


@pytest.mark.parametrize("history_len", [0, 2])
def test_history_grows_is_used_and_reset_clears_it(history_len):
    agent = Agent(AgentConfig(replace(SMALL.model, history_len=history_len)), seed=3)
    assert agent.history == ()
    first = agent.act(OBS, INFO)
    assert agent.history == ((OBS["text"], first),)
    second = agent.act({**OBS, "text": "A zebra waits."}, INFO)
    assert agent.history == ((OBS["text"], first), ("A zebra waits.", second))
    state = agent.encode_observation({**OBS, "text": "now"})
    after_now = state[state.index(NOW) :]
    assert agent.tokenizer.encode(second)[0] in after_now  # past commands always
    past_observation = agent.tokenizer.encode("zebra")[0] in state
    if history_len:
        assert after_now[after_now.index(ACT) + 1 :].index(PREV) >= 1
        assert past_observation
    else:  # the default: past commands only
        assert PREV not in state and not past_observation
    agent.reset()
    assert agent.history == ()
    assert ACT not in agent.encode_observation(OBS)


def test_history_changes_the_decision_input(agent):
    fresh = agent.action_probs(OBS, INFO)
    agent.act({**OBS, "text": "something else happened"}, INFO)
    assert not np.allclose(agent.action_probs(OBS, INFO), fresh)


def test_act_restores_training_mode(agent):
    agent.model.train()
    agent.act(OBS, INFO)
    assert agent.model.training
    agent.model.eval()
    agent.act(OBS, INFO)
    assert not agent.model.training


@pytest.mark.parametrize(
    "info",
    [{}, {"admissible_actions": []}, {"admissible_actions": "look"}, {"admissible_actions": [1]}],
)
def test_bad_admissible_actions(agent, info):
    with pytest.raises(ValueError, match="admissible_actions"):
        agent.act(OBS, info)


def test_bad_observation(agent):
    with pytest.raises(ValueError, match="goal"):
        agent.act({"text": "no goal"}, INFO)


# -- save / load -----------------------------------------------------------------------------
def test_round_trip_gives_identical_probabilities(agent, tmp_path):
    agent.act(OBS, INFO)
    path = agent.save(tmp_path / "sub" / "agent.pt", meta={"env": "x", "steps": np.int64(3)})
    loaded = Agent.load(path, expected_config=SMALL)
    assert loaded.meta == {"env": "x", "steps": 3} and type(loaded.meta["steps"]) is int
    assert loaded.config == SMALL
    for a, b in zip(
        agent.model.state_dict().values(), loaded.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    fresh = Agent(SMALL, seed=3)
    fresh.model.load_state_dict(agent.model.state_dict())
    np.testing.assert_array_equal(loaded.action_probs(OBS, INFO), fresh.action_probs(OBS, INFO))
    assert loaded.history == ()
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["agent.pt"]  # no temp left


def test_save_overwrites_atomically_and_checks_meta(agent, tmp_path):
    path = tmp_path / "agent.pt"
    agent.save(path)
    first = path.read_bytes()
    with pytest.raises(TypeError, match=r"meta\['bad'\]"):
        agent.save(path, meta={"bad": object()})
    assert path.read_bytes() == first  # a failed save leaves the old checkpoint intact
    assert os.listdir(tmp_path) == ["agent.pt"]
    agent.meta = {"learner": "bc"}
    assert Agent.load(agent.save(path)).meta == {"learner": "bc"}


def test_interrupted_save_leaves_the_old_checkpoint(agent, tmp_path, monkeypatch):
    path = agent.save(tmp_path / "agent.pt")
    good = path.read_bytes()

    def dies_halfway(obj, f):
        f.write(good[:100])
        raise KeyboardInterrupt  # what a kill mid-write looks like from inside

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        Agent(SMALL, seed=9).save(path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["agent.pt"]
    assert (path.stat().st_mode & 0o777) == 0o644


def refused(path, match, error=ValueError, expected_config=None):
    with pytest.raises(error) as excinfo:
        Agent.load(path, expected_config=expected_config)
    message = str(excinfo.value)
    assert str(path) in message
    assert match in message, message
    return message


def test_missing_file(tmp_path):
    refused(tmp_path / "nope.pt", "no such file", FileNotFoundError)


def test_directory(tmp_path):
    refused(tmp_path, "not a file")


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, this is not a checkpoint\n", bytes(range(256)) * 4],
    ids=["empty", "text", "garbage"],
)
def test_garbage_bytes(tmp_path, content):
    path = tmp_path / "agent.pt"
    path.write_bytes(content)
    refused(path, "not a readable checkpoint")


def test_truncated_checkpoint(agent, tmp_path):
    path = agent.save(tmp_path / "agent.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    refused(path, "not a readable checkpoint")


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def save_sealed(obj, path):
    """``torch.save`` with Agent.save's checksum seal: what a forger who read the source writes."""
    payload = io.BytesIO()
    torch.save(obj, payload)
    path.write_bytes(seal(payload.getvalue()))


def test_pickle_that_would_run_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    wrapped = tmp_path / "torch_exploit.pt"
    save_sealed({"format": "earlyexp-agent", "version": 2, "x": Exploit(marker)}, wrapped)
    message = refused(wrapped, "could run code")
    assert "system" in message
    unsealed = tmp_path / "unsealed_exploit.pt"
    torch.save({"format": "earlyexp-agent", "version": 2, "x": Exploit(marker)}, unsealed)
    refused(unsealed, "does not end with an earlyexp checksum")
    raw = tmp_path / "raw_exploit.pt"
    raw.write_bytes(seal(pickle.dumps(Exploit(marker))))
    refused(raw, "cannot load agent")
    assert not marker.exists()


def rewrite(agent, tmp_path, **changes):
    path = agent.save(tmp_path / "agent.pt")
    ckpt = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del ckpt[key]
        else:
            ckpt[key] = value(ckpt) if callable(value) else value
    save_sealed(ckpt, path)
    return path


def test_wrong_format_and_version(agent, tmp_path):
    refused(rewrite(agent, tmp_path, format="something-else"), "not an earlyexp agent checkpoint")
    refused(rewrite(agent, tmp_path, format=None), "not an earlyexp agent checkpoint")
    refused(rewrite(agent, tmp_path, version=99), "version 99")
    path = tmp_path / "list.pt"
    save_sealed([1, 2, 3], path)
    refused(path, "not an earlyexp agent checkpoint")


def test_config_mismatch_names_the_fields(agent, tmp_path):
    path = agent.save(tmp_path / "agent.pt")
    expected = AgentConfig(ModelConfig(vocab_size=512, d_model=64, n_heads=4, ff_dim=64))
    message = refused(path, "does not match", expected_config=expected)
    assert "model.d_model: 32 != 64" in message
    assert "ff_dim" not in message


def test_bad_config_in_file(agent, tmp_path):
    def with_model(**fields):
        return lambda ckpt: {"model": {**ckpt["config"]["model"], **fields}}

    refused(rewrite(agent, tmp_path, config=with_model(depth=3)), "unknown fields model.depth")
    no_heads = {k: v for k, v in asdict(SMALL.model).items() if k != "n_heads"}
    refused(rewrite(agent, tmp_path, config={"model": no_heads}), "missing fields model.n_heads")
    refused(rewrite(agent, tmp_path, config=with_model(n_layers=2.0)), "model.n_layers must be int")
    refused(rewrite(agent, tmp_path, config=with_model(d_model=30)), "divisible by n_heads")
    refused(rewrite(agent, tmp_path, config="nope"), "config must be a dict")


def test_weights_that_do_not_fit(agent, tmp_path):
    def drop_key(ckpt):
        sd = dict(ckpt["state_dict"])
        sd.pop("policy_head.weight")
        sd["extra.weight"] = torch.zeros(1)
        return sd

    message = refused(rewrite(agent, tmp_path, state_dict=drop_key), "do not fit")
    assert "missing keys policy_head.weight" in message
    assert "unexpected keys extra.weight" in message

    def reshape(ckpt):
        return {**ckpt["state_dict"], "policy_head.weight": torch.zeros(1, 64)}

    refused(rewrite(agent, tmp_path, state_dict=reshape), "policy_head.weight has shape (1, 64)")

    def shrink_vocab(ckpt):
        return {**ckpt["config"], "model": {**ckpt["config"]["model"], "vocab_size": 256}}

    refused(rewrite(agent, tmp_path, config=shrink_vocab), "token_emb.weight has shape (512, 32)")
    refused(rewrite(agent, tmp_path, state_dict=None), "state_dict is a NoneType")


def test_other_tokenizer_is_refused(agent, tmp_path):
    path = rewrite(agent, tmp_path, tokenizer={"id": "hashing-md5-v9"})
    refused(path, "tokenizer")


def test_checkpoint_is_a_plain_torch_zip_with_a_checksum_seal(agent, tmp_path):
    """Other tools still read it: zip readers (and torch.load) skip the seal after the zip."""
    path = agent.save(tmp_path / "agent.pt", meta={"stats": {"loss": [0.5, 0.25]}})
    assert zipfile.is_zipfile(path)
    assert unseal(path.read_bytes()) == path.read_bytes()[: -len(SEAL_MARKER) - 65]
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == "earlyexp-agent" and ckpt["version"] == 2
    assert ckpt["config"] == asdict(SMALL)
    assert ckpt["meta"] == {"stats": {"loss": [0.5, 0.25]}}


# -- devices ---------------------------------------------------------------------------------
def test_device_names_resolve_or_say_what_to_use(monkeypatch: pytest.MonkeyPatch):
    from agents import DEVICE_ENV, resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    monkeypatch.setenv(DEVICE_ENV, "cpu")  # what auto means, where the variable is set
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV, "gpu")
    with pytest.raises(ValueError, match=f"{DEVICE_ENV}='gpu': unknown device"):
        resolve_device("auto")
    for bad in ("gpu", "cuda:", "CPU", "", "cuda:x"):
        with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU.*--device cpu"):
            resolve_device("cuda:0")


def test_agent_moves_and_still_saves_from_the_cpu(agent, tmp_path):
    assert agent.to("cpu") is agent and agent.device == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        agent.to("gpu")
    if torch.cuda.is_available():
        agent.to("cuda")
        obs, info = (
            {"goal": "take the apple", "text": "you see an apple"},
            {"admissible_actions": ["take apple", "look"]},
        )
        assert agent.act(obs, info) in info["admissible_actions"]
        loaded = Agent.load(agent.save(tmp_path / "gpu.pt"))
        assert loaded.device == torch.device("cpu")
