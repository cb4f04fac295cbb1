"""The app shell: Demo opens first, every page file is in the navigation, missing pages never break it."""

from __future__ import annotations

import ast
import shutil
import tomllib
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "app" / "main.py"


def navigation_files() -> list[str]:
    """The page files main.py's SECTIONS lists, read from its source."""
    for node in ast.parse(MAIN.read_text()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "SECTIONS":
            sections = ast.literal_eval(node.value)
            return [file for entries in sections.values() for file, _, _ in entries]
    raise AssertionError("main.py has no SECTIONS")


def test_demo_is_the_first_page():
    at = AppTest.from_file(str(MAIN), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "What the guide removes, and why it matters"
    assert navigation_files()[0] == "demo.py"


def test_every_page_file_is_in_the_navigation():
    files = {p.name for p in (ROOT / "app" / "views").glob("*.py")} - {"__init__.py"}
    listed = navigation_files()
    assert files <= set(listed)
    assert {"demo.py", "inspect.py", "whatif.py", "embedding_map.py", "train.py", "results.py"} <= set(listed)


def test_a_missing_page_is_left_out(tmp_path, monkeypatch):
    app = tmp_path / "app"
    shutil.copytree(ROOT / "app", app, ignore=shutil.ignore_patterns("__pycache__", "train.py", "inspect.py"))
    (tmp_path / "demo").mkdir()  # an empty demo folder: the page runs to its links at the end
    monkeypatch.setenv("GISTLAB_DEMO_DIR", str(tmp_path / "demo"))
    at = AppTest.from_file(str(app / "main.py"), default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value.startswith("What the guide removes")
    assert [link.proto.label for link in at.get("page_link")] == []  # both link targets are absent


def test_server_listens_on_localhost_with_an_upload_limit():
    config = tomllib.loads((ROOT / "app" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert 1 <= config["server"]["maxUploadSize"] <= 200
    assert config["client"]["showErrorDetails"] in ("type", "none")
