"""Shared fixtures: an isolated workspace for every test session, a tiny random BERT, the bundled model."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest

# Every test process (each pytest-xdist worker too) gets its own workspace, never the user's, and
# never touches the Hub.
os.environ["GISTLAB_HOME"] = tempfile.mkdtemp(prefix="gistlab-test-home-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def wait_for_server(url: str, process, timeout: float = 120) -> None:
    """Wait until the Streamlit server at ``url`` answers its health check (fails if ``process`` ends)."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.5)


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (an app server, a torch rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def real_main_module():
    """Put the test process's own ``__main__`` back after each test: an AppTest installs its page script
    as ``sys.modules["__main__"]`` and leaves it there, and a later ``torch.multiprocessing.spawn``
    would run that script again in each child (an ``AppTest.from_function`` script then fails there)."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer, 32-wide BERT saved as a SentenceTransformer folder.

    It reuses the bundled MiniLM tokenizer so texts tokenise like the real model's, and is fast
    enough for unit tests where the weights do not matter.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from core.guides.models import bundled_minilm_l6_path

    root = tmp_path_factory.mktemp("tiny-bert")
    hf_dir = root / "hf"
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_minilm_l6_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")
    out = root / "st"
    model.save(str(out))
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module of tiny-model tests: waking the thread pool costs more than
    the work (a 32x32 linear took 10 ms on 2 threads, 0.1 ms on one, while other jobs shared the 2
    cores). Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def tiny_model(tiny_model_dir):
    """A fresh copy of the tiny random BERT (tests may train it)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_dir), device="cpu")


def require_mpnet() -> None:
    """Skip unless the strong guide's packages are installed; never in CI (438 MB to unpack and load)."""
    from core.guides.model_archive import MPNET_BASE, installed

    if os.environ.get("CI"):
        pytest.skip("bundled:mpnet-base (438 MB) is never unpacked or loaded in CI")
    if not installed(MPNET_BASE):
        pytest.skip(f"bundled:mpnet-base is not installed ({MPNET_BASE.install_command})")


@pytest.fixture(scope="session")
def mpnet():
    """The strong guide all-mpnet-base-v2 (real weights), unpacked into this session's workspace."""
    from core.guides.models import load_model

    require_mpnet()
    return load_model("bundled:mpnet-base", device="cpu")


@pytest.fixture(scope="session")
def minilm_l6():
    """The bundled all-MiniLM-L6-v2 (real weights), for tests where weights matter."""
    from core.guides.models import load_model

    return load_model("bundled:minilm-l6", device="cpu")


@pytest.fixture
def job_home(tmp_path, monkeypatch):
    """A fresh workspace (GISTLAB_HOME); a background job (core.training.jobs) still running after the test is killed."""
    import signal

    from core.training import jobs

    home = tmp_path / "home"
    monkeypatch.setenv("GISTLAB_HOME", str(home))
    yield home
    job = jobs.current_job()
    if job is not None:
        os.killpg(job.pid, signal.SIGKILL)
        jobs._children[job.pid].wait()
