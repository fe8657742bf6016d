"""The layout the architecture page promises: no import cycle among modules
(imports inside functions included, except the result's listed facade
methods), a light ``import fastxor``, one contract for every backend."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from fastxor import backends

PACKAGE = Path(__file__).resolve().parent.parent / "fastxor"


#: Imports inside a method of ``TrainResult`` that reach up to the module
#: implementing it (``result.analyse()``, ``fastxor.load(<shard directory>)``):
#: conveniences on the result object, the one kind of cycle allowed.
FACADES = {("fastxor.result", "fastxor.landscape"), ("fastxor.result", "fastxor.shards")}


def _module_imports(top_level_only=False):
    """module -> the fastxor modules it imports (at module level only, or anywhere)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = name if rel.name == "__init__" else name.rsplit(".", 1)[0]
        deps = set()
        tree = ast.parse(path.read_text())
        for node in tree.body if top_level_only else ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    where = PACKAGE.parent / sub.replace(".", "/")
                    is_module = where.with_suffix(".py").exists() or (where / "__init__.py").exists()
                    deps.add(sub if is_module else target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("fastxor")}
        graph[name] = deps - {name}
    return graph


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "anywhere"])
def test_no_import_cycle(top_level_only):
    graph = _module_imports(top_level_only)
    assert "fastxor.training" in graph and "fastxor.backends.numba_kernel" in graph
    assert top_level_only or "fastxor.philox" in graph["fastxor.params"]  # function-level imports are read
    for m, d in FACADES:
        graph[m].discard(d)
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "active", "import cycle: " + " -> ".join(path + [m])
        state[m] = "active"
        for d in graph.get(m, ()):
            if d in graph and not (m.startswith(d + ".") or d == "fastxor"):
                visit(d, path + [m])
        state[m] = "done"

    for m in graph:
        visit(m, [])


def test_import_fastxor_stays_light():
    code = ("import sys, fastxor; heavy = [m for m in ('cupy', 'torch', 'matplotlib', 'jax', 'pandas') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", backends.ORDER)
def test_every_backend_has_the_contract(name):
    module = backends.get(name)
    assert module.NAME == name
    for attr in ("problem", "memory_bytes", "run"):
        assert callable(getattr(module, attr)), f"{module.__name__} lacks {attr}"
    assert backends.MODULES[name].startswith(name + "_")  # never shadows the real package


def test_auto_prefers_the_gpu_only_for_large_runs(monkeypatch):
    monkeypatch.setattr(backends, "problem", lambda name: None)  # pretend every backend can run
    from fastxor import config

    assert backends.choose("auto", config.GPU_MIN_NETWORKS).NAME == "cupy"
    assert backends.choose("auto", config.GPU_MIN_NETWORKS - 1).NAME == "numba"
    assert backends.choose("auto", 1).NAME == "numba"
