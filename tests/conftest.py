"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy CPU two threads can stall for 100s of ms.

    Use with `pytestmark = pytest.mark.usefixtures("one_thread")`; the thread count is restored after.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
