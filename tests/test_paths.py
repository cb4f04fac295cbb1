"""core.paths: outputs checked before the work; server-side paths refused when served to a network."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import GistlabError
from core.paths import check_output_dir, check_output_file, check_served_path, is_local


def test_an_output_file_may_not_be_a_folder_or_sit_under_a_file(tmp_path):
    assert check_output_file(tmp_path / "new" / "out.csv") == tmp_path / "new" / "out.csv"
    with pytest.raises(GistlabError, match="is a folder: give a file name"):
        check_output_file(tmp_path)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(GistlabError, match="plain is a file, not a folder"):
        check_output_file(tmp_path / "plain" / "out.csv")


def test_an_output_folder_may_not_be_a_file(tmp_path):
    assert check_output_dir(tmp_path / "run") == tmp_path / "run"
    assert not (tmp_path / "run").exists()  # checking creates nothing
    (tmp_path / "file").write_text("x")
    with pytest.raises(GistlabError, match="is a file, not a folder"):
        check_output_dir(tmp_path / "file")


@pytest.mark.parametrize("address,local", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                           ("[::1]", True), ("0.0.0.0", False), ("", False), (None, False),
                                           ("192.168.1.5", False)])
def test_which_addresses_are_local(address, local):
    assert is_local(address) is local


def test_outside_paths_are_refused_only_when_served_to_a_network(tmp_path, monkeypatch):
    home, outside = tmp_path / "home", tmp_path / "elsewhere"
    (home / "data").mkdir(parents=True)
    outside.mkdir()
    (home / "data" / "pairs.csv").write_text("anchor,positive\na,b\n")
    (outside / "secret.csv").write_text("x")
    (home / "link.csv").symlink_to(outside / "secret.csv")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path / "workspace"))

    for spec in (str(outside / "secret.csv"), str(home / "link.csv")):  # a link out of home counts as out
        check_served_path(spec, "127.0.0.1")  # a lab on localhost opens what its user names
        with pytest.raises(GistlabError, match="outside the workspace and your home folder"):
            check_served_path(spec, "0.0.0.0")
    check_served_path(str(home / "data" / "pairs.csv"), "0.0.0.0")
    check_served_path("~/data/pairs.csv", "0.0.0.0")
    (tmp_path / "workspace" / "runs").mkdir(parents=True)
    check_served_path(str(tmp_path / "workspace" / "runs"), "0.0.0.0")
    for spec in ("bundled", "bundled:minilm-l6", "org/name", str(Path("/no/such/file.csv"))):
        check_served_path(spec, "0.0.0.0")  # not a server path: nothing to leak
