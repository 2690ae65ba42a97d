"""The layer rules of docs/architecture.md (Layers), enforced by scanning imports against an
allowlist: for each part of the tree, what it may import. Anything not listed fails, and so
does a module in no listed part: a new import or a new package is a decision, made here.

Each part lists standard-library modules (`None`: any, for the shell), third-party
distributions by top-level name, and gossipnode modules by prefix. The core's list is the
short one: pure computation only, so no clock, socket, file, thread or process can reach it;
`random` only for the injected `random.Random`, `sys` only for `getsizeof`.
"""

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STDLIB = frozenset(sys.stdlib_module_names)

# Computation with no outside world: what the core and the layers beside it build on.
PURE = frozenset({
    "__future__", "abc", "array", "bisect", "collections", "dataclasses", "enum",
    "functools", "hashlib", "heapq", "itertools", "math", "operator", "random", "struct",
    "sys", "types", "typing",
})


@dataclass(frozen=True)
class Allowed:
    stdlib: frozenset[str] | None  # None: the whole standard library (the shell)
    third_party: frozenset[str] = frozenset()
    internal: tuple[str, ...] = ()  # gossipnode modules (and their submodules)
    # Modules whose attributes (and `from` imports) are limited to these names.
    attributes: tuple[tuple[str, frozenset[str]], ...] = ()


SEEDED_ONLY = (("random", frozenset({"Random"})),)
CORE_ATTRIBUTES = (*SEEDED_ONLY, ("sys", frozenset({"getsizeof"})))

# Part of the tree (a package directory, or one top-level module) -> what it may import.
# The longest matching part decides.
ALLOWED: dict[str, Allowed] = {
    "gossipnode/core": Allowed(
        PURE, internal=("gossipnode.core", "gossipnode.config"), attributes=CORE_ATTRIBUTES,
    ),
    "gossipnode/wire": Allowed(
        PURE | {"base64", "hmac", "zlib"}, frozenset({"cbor2", "nacl"}),
        ("gossipnode.wire", "gossipnode.core", "gossipnode.config"),
    ),
    "gossipnode/storage": Allowed(
        PURE | {"os", "pathlib", "sqlite3"}, internal=("gossipnode.storage", "gossipnode.core"),
    ),
    "gossipnode/openpgp": Allowed(
        PURE | {"binascii", "bz2", "contextlib", "re", "zlib"}, frozenset({"pysequoia"}),
        ("gossipnode.openpgp", "gossipnode.core", "gossipnode.wire"),
    ),
    "gossipnode/runtime": Allowed(
        None, frozenset({"trio", "nacl", "h11"}),
        ("gossipnode.runtime", "gossipnode.core", "gossipnode.wire", "gossipnode.storage",
         "gossipnode.openpgp", "gossipnode.config", "gossipnode.identity", "gossipnode"),
    ),
    # The CLI: `trust` signs administrative records itself (nacl, the CBOR codec).
    "gossipnode/commands": Allowed(
        None, frozenset({"nacl"}),
        ("gossipnode.commands", "gossipnode.cli", "gossipnode.client", "gossipnode.config",
         "gossipnode.config_file",
         "gossipnode.core", "gossipnode.identity", "gossipnode.openpgp", "gossipnode.storage",
         "gossipnode.runtime", "gossipnode.wire"),
    ),
    # What the agent and the simulator put around the core (value decoder, content check,
    # codec, group commit); sqlite3 only names the store's failure for `commit_writes`.
    "gossipnode/driving.py": Allowed(
        PURE | {"sqlite3"},
        internal=("gossipnode.config", "gossipnode.core", "gossipnode.wire",
                  "gossipnode.openpgp"),
    ),
    "gossipnode/__init__.py": Allowed(frozenset()),
    "gossipnode/__main__.py": Allowed(frozenset({"sys"}), internal=("gossipnode.cli",)),
    "gossipnode/config.py": Allowed(PURE | {"base64", "binascii", "ipaddress", "pathlib"}),
    "gossipnode/config_file.py": Allowed(
        PURE | {"pathlib", "tomllib"}, internal=("gossipnode.config", "gossipnode.config_rules"),
    ),
    "gossipnode/config_rules.py": Allowed(PURE, internal=("gossipnode.config",)),
    "gossipnode/identity.py": Allowed(
        PURE | {"base64", "binascii", "os", "pathlib"}, frozenset({"nacl"}),
    ),
    "gossipnode/client.py": Allowed(PURE | {"json", "os", "pathlib", "socket"}),
    "gossipnode/cli.py": Allowed(
        None, internal=("gossipnode.cli", "gossipnode.client", "gossipnode.config",
                        "gossipnode.core", "gossipnode.identity", "gossipnode"),
    ),
    # The simulator: deterministic, so no trio, runtime, socket or thread; one seeded
    # random.Random owns all chance. Its runner alone times itself and makes the garbage
    # collector run less often during a run, and its entry point re-executes itself with
    # a fixed hash seed.
    "simulations": Allowed(
        PURE | {"argparse", "errno", "importlib", "inspect", "json"},
        internal=("simulations", "gossipnode.core", "gossipnode.config", "gossipnode.wire",
                  "gossipnode.openpgp", "gossipnode.driving"),
        attributes=SEEDED_ONLY,
    ),
    "simulations/runner.py": Allowed(
        PURE | {"argparse", "contextlib", "gc", "importlib", "json", "time"},
        internal=("simulations", "gossipnode.core", "gossipnode.config", "gossipnode.wire"),
        attributes=SEEDED_ONLY,
    ),
    "simulations/__main__.py": Allowed(
        frozenset({"os", "sys"}), internal=("simulations",),
    ),
}


def imports_of(path, root=ROOT):
    """[(module, names imported from it, or None for a plain import)], and per imported
    module name the attributes used on it (`random.Random` -> {"random": {"Random"}})."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, None))
                aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(root).with_suffix("").parts[: -node.level]
                base = ".".join(package)
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            found.append((module, {alias.name for alias in node.names}))
    used: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases):
            used.setdefault(aliases[node.value.id], set()).add(node.attr)
    return found, used


def part_of(path, root=ROOT):
    relative = path.relative_to(root).as_posix()
    matches = [p for p in ALLOWED if relative == p or relative.startswith(p + "/")]
    return max(matches, key=len) if matches else None


def violations(path, root=ROOT):
    """Every import of `path` its part does not allow, as readable strings."""
    part = part_of(path, root)
    if part is None:
        return [f"{path.relative_to(root).as_posix()} is in no part of ALLOWED"]
    allowed = ALLOWED[part]
    found, used = imports_of(path, root)
    wrong = []
    for module, _ in found:
        top = module.split(".")[0]
        if module.startswith("gossipnode") or top == "simulations":
            if not any(module == p or module.startswith(p + ".") for p in allowed.internal):
                wrong.append(f"{module} (not in {part}'s internal list)")
        elif top in STDLIB:
            if allowed.stdlib is not None and top not in allowed.stdlib:
                wrong.append(f"{module} (standard library not listed for {part})")
        elif top not in allowed.third_party:
            wrong.append(f"{module} (third party not listed for {part})")
    for module, names in allowed.attributes:
        extra = used.get(module, set()) - names
        extra |= {n for m, imported in found if m == module and imported for n in imported} - names
        if extra:
            wrong.append(f"{module}.{'/'.join(sorted(extra))} (only {sorted(names)} allowed)")
    return wrong


def files():
    return [path for top in ("gossipnode", "simulations")
            for path in sorted((ROOT / top).rglob("*.py"))]


def test_every_module_imports_only_what_its_layer_allows():
    checked = files()
    assert len(checked) > 50  # the scan found the tree
    wrong = {str(path.relative_to(ROOT)): v for path in checked if (v := violations(path))}
    assert wrong == {}


def test_the_scan_catches_what_the_rules_forbid(tmp_path):
    """The checker itself: forbidden imports in a core module and the simulator are caught."""
    (tmp_path / "gossipnode" / "core").mkdir(parents=True)
    (tmp_path / "simulations").mkdir()
    (tmp_path / "gossipnode" / "extra").mkdir()
    core = tmp_path / "gossipnode" / "core" / "bad.py"
    core.write_text(
        "import time\nimport random\nfrom random import shuffle\nfrom os import path\n"
        "import cbor2\nfrom ..runtime import agent\nfrom . import records\n"
        "from ..config import NodeConfig\nx = random.random()\ny = random.Random(1)\n"
    )
    found = violations(core, tmp_path)
    assert any(v.startswith("time ") for v in found)
    assert any(v.startswith("os ") for v in found)
    assert any(v.startswith("cbor2 ") for v in found)
    assert any(v.startswith("gossipnode.runtime ") for v in found)
    assert any(v.startswith("random.random/shuffle ") for v in found)
    assert not any("records" in v or "config" in v for v in found)
    sim = tmp_path / "simulations" / "bad.py"
    sim.write_text("import trio\nimport socket\nfrom gossipnode.runtime import agent\n")
    assert len(violations(sim, tmp_path)) == 3
    stray = tmp_path / "gossipnode" / "extra" / "new.py"
    stray.write_text("")
    assert violations(stray, tmp_path) == ["gossipnode/extra/new.py is in no part of ALLOWED"]


def test_only_runtime_imports_trio_and_only_the_composition_root_imports_runtime():
    """Two rules of the allowlist stated directly, so that widening it is a visible act."""
    for part, allowed in ALLOWED.items():
        if "trio" in allowed.third_party:
            assert part == "gossipnode/runtime", part
        if any(p.startswith("gossipnode.runtime") for p in allowed.internal):
            assert part in {"gossipnode/runtime", "gossipnode/commands"}, part
        if part.startswith("simulations"):
            assert allowed.stdlib is not None and not {"socket", "threading"} & allowed.stdlib
