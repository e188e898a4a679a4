"""Where the suite trains: ``--device auto`` is the CPU unless ``EARLYEXP_DEVICE`` says
otherwise (tests/conftest.py), and what holds only there."""

from __future__ import annotations

import pytest
import torch

from agents import resolve_device

#: A test of bit-exact results (determinism, golden files) or of a margin measured on the
#: CPU: on a GPU, bf16 autocast and the GPU's kernels change the last bits, and training
#: follows another path from there.
EXACT_ON_CPU = pytest.mark.skipif(
    resolve_device("auto") != torch.device("cpu"),
    reason="exact on the CPU only (EARLYEXP_DEVICE=cpu runs it)",
)

#: A test that needs a CUDA GPU (it asks for one by name).
NEEDS_GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
