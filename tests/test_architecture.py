"""core/ is layered: no module imports from a package above its own (docs/ARCHITECTURE.md)."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
BASE = {"errors", "paths", "workspace", "hub", "fsio"}  # top-level modules at the bottom: they may import each other
LAYER = {"base": 0, "corpus": 1, "guides": 1, "method": 2, "training": 3, "analysis": 4, "cli": 5}


def _package(name: str) -> str:
    """'core.method.loss' -> 'method'; top-level modules of the bottom layer -> 'base'."""
    part = name.split(".")[1] if "." in name else name
    return "base" if part in BASE else part


def _imports(path: Path, root: Path) -> set[str]:
    """The core modules ``path`` imports, relative imports resolved against its place under ``root``."""
    here = ["core", *path.relative_to(root).with_suffix("").parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # from ..analysis import x: relative to the importing module's package
                module = ".".join([*here[:-node.level], *([module] if module else [])])
            found |= {module} if module.startswith("core.") else set()
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("core.")}
    return found


def violations(root: Path) -> list[str]:
    """Every import under ``root`` (a core/ tree) that points up or sideways between packages."""
    found = []
    for path in root.rglob("*.py"):
        own = _package(path.relative_to(root).parts[0].removesuffix(".py"))
        if own == "__init__":
            continue
        for target in _imports(path, root):
            other = _package(target)
            if other != own and LAYER[other] >= LAYER[own]:
                found.append(f"{path.relative_to(root)} imports {target}")
    return sorted(found)


def test_every_core_module_belongs_to_a_known_layer():
    for path in CORE.rglob("*.py"):
        name = path.relative_to(CORE).parts[0].removesuffix(".py")
        assert name == "__init__" or _package(name) in LAYER, f"{path}: add its package to LAYER and to docs/ARCHITECTURE.md"


def test_no_import_points_up_or_sideways_between_packages():
    assert violations(CORE) == []


def test_the_check_finds_upward_sideways_and_relative_imports_and_allows_downward_ones(tmp_path):
    for package in ("method", "guides", "corpus", "analysis"):
        (tmp_path / package).mkdir()
    (tmp_path / "method" / "loss.py").write_text(
        "import core.training.runs\nfrom core.analysis.inspect import Batch\nfrom ..analysis import audit\n"
        "from core.guides.models import load_model\nfrom core.errors import GistlabError\nimport torch\n")
    (tmp_path / "guides" / "models.py").write_text("from core.corpus.data import load_pairs\n")  # same layer
    (tmp_path / "corpus" / "data.py").write_text("from . import wordnet\nfrom .wordnet import read\n")  # own package
    (tmp_path / "analysis" / "inspect.py").write_text("from ..method.loss import GISTLoss\n")  # downward
    assert violations(tmp_path) == ["guides/models.py imports core.corpus.data",
                                    "method/loss.py imports core.analysis",
                                    "method/loss.py imports core.analysis.inspect",
                                    "method/loss.py imports core.training.runs"]
