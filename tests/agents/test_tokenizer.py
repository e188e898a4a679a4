import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.tokenizer import ACT, CLS, GOAL, N_SPECIAL, NOW, PAD, PREV, HashingTokenizer

SENTENCE = "You see a Fridge 1, an apple; take apple from fridge 1."
# Frozen: if these change, every trained checkpoint silently reads different words.
EXPECTED_8192 = [1926, 6766, 5235, 7945, 7991, 2318, 1206, 4640, 1033, 2875, 4640, 7456, 7945]
EXPECTED_8192 += [7991, 4210]
EXPECTED_64 = [22, 62, 19, 57, 39, 30, 54, 48, 41, 27, 48, 32, 57, 39, 18]
TOKENIZER_FILE = Path(__file__).resolve().parents[2] / "agents" / "tokenizer.py"


def test_ids_are_frozen():
    assert HashingTokenizer().encode(SENTENCE) == EXPECTED_8192
    assert HashingTokenizer(64).encode(SENTENCE) == EXPECTED_64


def test_ids_do_not_depend_on_the_process_hash_seed():
    # Load the module from its file so the child skips importing torch via agents/__init__.
    code = (
        "import importlib.util, json, sys; "
        f"spec = importlib.util.spec_from_file_location('tok', {str(TOKENIZER_FILE)!r}); "
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); "
        f"print(json.dumps(mod.HashingTokenizer().encode({SENTENCE!r})))"
    )
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert json.loads(out.stdout) == EXPECTED_8192


def test_splitting_and_case():
    tok = HashingTokenizer()
    assert tok.tokenize("Take Apple 12 from fridge-1.") == [
        "take",
        "apple",
        "12",
        "from",
        "fridge",
        "-",
        "1",
        ".",
    ]
    assert tok.tokenize("get_order(id=7)") == ["get", "_", "order", "(", "id", "=", "7", ")"]
    assert tok.encode("APPLE") == tok.encode("apple") == tok.encode("  apple. ")[:1]
    assert tok.encode("") == []


def test_ids_stay_above_the_special_range():
    assert len({PAD, CLS, GOAL, NOW, ACT, PREV}) == 6
    assert max(PAD, CLS, GOAL, NOW, ACT, PREV) < N_SPECIAL
    tok = HashingTokenizer(N_SPECIAL + 3)
    ids = tok.encode("the quick brown fox jumps over the lazy dog 0 1 2 3 ! ? ,")
    assert all(N_SPECIAL <= i < N_SPECIAL + 3 for i in ids)


def test_encode_returns_a_fresh_list():
    tok = HashingTokenizer()
    first = tok.encode("open the fridge")
    first.append(-1)
    assert tok.encode("open the fridge") == first[:-1]
    assert tok.token_ids("open the fridge") == tuple(first[:-1])


@pytest.mark.parametrize("size", [0, N_SPECIAL, 3.5])
def test_bad_vocab_size(size):
    with pytest.raises(ValueError, match="vocab_size"):
        HashingTokenizer(size)
