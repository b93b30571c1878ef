"""Shared set-up: offline Hugging Face, and fixtures used across the test modules."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one torch thread, and on a busy shared CPU spinning intra-op
    threads make them many times slower (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli(capsys):
    """Run the command line in this process: ``cli("train", "classify", …)`` → (exit code, stdout, stderr)."""
    from malmoi.cli import main

    def run(*argv) -> tuple[int, str, str]:
        code = 0
        try:
            main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run
