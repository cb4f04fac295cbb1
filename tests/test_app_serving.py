"""How the lab is served (issue 14): 127.0.0.1 however it is started, `gistlab app` passes SIGTERM on
to its Streamlit child, and a server reachable from other machines refuses outside paths."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for_server

ROOT = Path(__file__).resolve().parent.parent


def listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


def test_gistlab_app_from_another_folder_binds_localhost_and_forwards_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "GISTLAB_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("STREAMLIT_SERVER_ADDRESS", None)
    app = subprocess.Popen([sys.executable, "-m", "core.cli", "app", "--port", str(port)],
                           cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_server(f"http://127.0.0.1:{port}", app)
        assert listening(port) == ["0100007F"]  # 127.0.0.1 only, although no flag and no config in cwd

        app.send_signal(signal.SIGTERM)  # what kill, systemd and container runtimes send
        assert app.wait(timeout=30) is not None
        deadline = time.monotonic() + 30
        while listening(port):
            assert time.monotonic() < deadline, "the Streamlit child still listens after gistlab app ended"
            time.sleep(0.2)
    finally:
        if app.poll() is None:
            os.killpg(app.pid, signal.SIGKILL)


def test_the_lab_config_sits_next_to_the_entry_script():
    import tomllib

    config = tomllib.loads((ROOT / "app" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    project = ROOT / ".streamlit" / "config.toml"  # read from the repository root (AppTest, pytest)
    assert project.is_symlink() and project.resolve() == (ROOT / "app" / ".streamlit" / "config.toml").resolve()


def test_the_train_page_refuses_outside_paths_when_served_to_a_network(tmp_path, monkeypatch):
    import streamlit
    from streamlit.testing.v1 import AppTest

    from core.training import jobs

    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    outside = tmp_path / "elsewhere" / "pairs.csv"
    outside.parent.mkdir()
    outside.write_text("anchor,positive\na,b\n")
    real = streamlit.get_option
    monkeypatch.setattr(streamlit, "get_option", lambda key: "0.0.0.0" if key == "server.address" else real(key))
    monkeypatch.setattr(jobs, "start_training", lambda *a, **k: pytest.fail("must not start"))
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=90).run()
    at = at.switch_page("views/train.py").run()
    next(t for t in at.text_input if t.label == "Data").set_value(str(outside))
    at = next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "outside the workspace and your home folder" in at.error[0].value
