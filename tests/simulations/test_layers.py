"""Layer rule 3 (docs/architecture.md, Layers): simulations imports neither trio nor the runtime."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "simulations"
FORBIDDEN = ("trio", "gossipnode.runtime", "asyncio", "socket", "time")


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_simulator_modules_import_no_io(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module)
    allowed_time = path.name == "runner.py"  # wall time for --timing only
    for name in imported:
        for forbidden in FORBIDDEN:
            if forbidden == "time" and allowed_time:
                continue
            assert name != forbidden, path
            assert not name.startswith(forbidden + "."), (path, name)
