"""Shared fixtures of every test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors: one thread is faster, and OpenMP threads crawl when the CPU is shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
