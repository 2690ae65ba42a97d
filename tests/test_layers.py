"""The layer rules of docs/architecture.md (Layers), enforced by scanning imports."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names)

# The core may not touch the outside world, even through the standard library.
CORE_FORBIDDEN = {
    "time",
    "socket",
    "sqlite3",
    "asyncio",
    "trio",
    "os",
    "subprocess",
    "threading",
    "logging",
    "pathlib",
    "select",
    "selectors",
    "signal",
}


def imports_of(path):
    """(module, attribute uses of `random`) for one source file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
                base = ".".join(package)
                modules.append(f"{base}.{node.module}" if node.module else base)
            else:
                modules.append(node.module)
    random_uses = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "random"
    }
    return modules, random_uses


def files(package):
    return sorted((ROOT / package).rglob("*.py"))


def top(module):
    return module.split(".")[0]


def test_core_imports_only_the_standard_library_and_config():
    assert files("gossipnode/core")
    for path in files("gossipnode/core"):
        modules, random_uses = imports_of(path)
        for module in modules:
            if module.startswith("gossipnode"):
                assert module.startswith(("gossipnode.core", "gossipnode.config")), (path, module)
            else:
                assert top(module) in STDLIB, (path, module)
                assert top(module) not in CORE_FORBIDDEN, (path, module)
        # An injected random.Random only; never the module-level functions.
        assert random_uses <= {"Random"}, (path, random_uses)


def test_wire_and_storage_stay_below_the_shell():
    allowed = {
        "gossipnode/wire": {"cbor2", "nacl"},
        "gossipnode/storage": set(),
    }
    for package, third_party in allowed.items():
        for path in files(package):
            for module in imports_of(path)[0]:
                if module.startswith("gossipnode"):
                    assert not module.startswith(
                        (
                            "gossipnode.runtime",
                            "gossipnode.cli",
                            "gossipnode.storage"
                            if package == "gossipnode/wire"
                            else "gossipnode.wire",
                        )
                    ), (path, module)
                else:
                    assert top(module) in STDLIB | third_party, (path, module)


def test_only_runtime_imports_trio():
    for path in files("gossipnode") + files("simulations"):
        if "runtime" in path.relative_to(ROOT).parts:
            continue
        for module in imports_of(path)[0]:
            assert top(module) != "trio", (path, module)


def test_only_the_composition_root_imports_runtime_or_simulations():
    for path in files("gossipnode") + files("simulations"):
        relative = path.relative_to(ROOT)
        in_root = relative.parts[:2] in {("gossipnode", "runtime"), ("gossipnode", "commands")}
        if relative.parts[0] == "simulations" or in_root or relative.name == "cli.py":
            if relative.parts[0] == "simulations":
                assert all(not m.startswith("gossipnode.runtime") for m in imports_of(path)[0]), (
                    path
                )
            continue
        for module in imports_of(path)[0]:
            assert not module.startswith(("gossipnode.runtime", "simulations")), (path, module)
