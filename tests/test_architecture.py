"""core/ is layered: no module imports from a package above its own (docs/ARCHITECTURE.md)."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
BASE = {"errors", "paths", "workspace", "hub"}  # top-level modules at the bottom: they may import each other
LAYER = {"base": 0, "corpus": 1, "guides": 1, "method": 2, "training": 3, "analysis": 4, "cli": 5}


def _package(name: str) -> str:
    """'core.method.loss' -> 'method'; top-level modules of the bottom layer -> 'base'."""
    part = name.split(".")[1] if "." in name else name
    return "base" if part in BASE else part


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("core.")}
    return found


def test_every_core_module_belongs_to_a_known_layer():
    for path in CORE.rglob("*.py"):
        name = path.relative_to(CORE).parts[0].removesuffix(".py")
        assert name == "__init__" or _package(name) in LAYER, f"{path}: add its package to LAYER and to docs/ARCHITECTURE.md"


def test_no_import_points_up_or_sideways_between_packages():
    upward = []
    for path in CORE.rglob("*.py"):
        own = _package(path.relative_to(CORE).parts[0].removesuffix(".py"))
        if own == "__init__":
            continue
        for target in _imports(path):
            other = _package(target)
            if other != own and LAYER[other] >= LAYER[own]:
                upward.append(f"{path.relative_to(CORE)} imports {target}")
    assert not upward, upward


def test_the_check_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from core.analysis.inspect import Batch\nimport core.training.runs\n")
    assert _imports(bad) == {"core.analysis.inspect", "core.training.runs"}
