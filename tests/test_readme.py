"""Every example in the README runs as written (at small sizes).

The README's ```python blocks run in one namespace, its ```bash lines that
start with ``fastxor`` run through ``fastxor.cli.main``, in order, each block
in a fresh directory. Sizes: every integer literal >= 1000 (networks, epochs, record
intervals, grid lengths) becomes 40, consistently, so the examples keep
their shape and take seconds.
"""
import ast
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SMALL = 40


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


class _Shrink(ast.NodeTransformer):
    def visit_Constant(self, node):
        if isinstance(node.value, int) and not isinstance(node.value, bool) and node.value >= 1000:
            return ast.copy_location(ast.Constant(SMALL), node)
        return node


def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "\n".join(blocks("python"))
    assert "fastxor.train" in code and "fastxor.sweep" in code
    tree = ast.fix_missing_locations(_Shrink().visit(ast.parse(code)))
    namespace = {}
    exec(compile(tree, "README.md", "exec"), namespace)
    assert namespace["r"].config["epochs"] == 2 * SMALL  # trained, saved, loaded, resumed
    assert len(namespace["t"]) == 2 * 2 * 3  # the sweep's grid


def _shrink_arg(token):
    return str(SMALL) if token.isdigit() and int(token) >= 1000 else token


def test_command_line_examples_run(tmp_path, monkeypatch, capsys):
    from fastxor import cli
    from fastxor.bench import harness, peers

    monkeypatch.chdir(tmp_path)
    # `fastxor bench --quick` at toy sizes, with the peers that need nothing extra
    monkeypatch.setattr(harness, "IMPLS", tuple(peers.by_name(n) for n in ("fastxor numba", "numpy vectorised")))
    monkeypatch.setitem(harness.QUICK, "sizes", (1, 100))
    monkeypatch.setitem(harness.QUICK, "target", 0.02)
    seen = set()
    for i, block in enumerate(blocks("bash")):  # each block in a fresh directory, its lines in order
        (tmp_path / str(i)).mkdir()
        monkeypatch.chdir(tmp_path / str(i))
        lines = [line.split("  #")[0].strip() for line in block.splitlines()]
        for argv in (shlex.split(line)[1:] for line in lines if line.startswith("fastxor ")):
            if argv[0] in ("plot", "analyse") or "--plot" in argv:
                pytest.importorskip("matplotlib")
            seen.add(argv[0])
            rc = cli.main([t if before == "--function" else _shrink_arg(t)  # a truth table is not a size
                           for before, t in zip(["", *argv], argv)])
            assert rc == 0, f"fastxor {' '.join(argv)} exited with {rc}: {capsys.readouterr().err}"
    assert seen == {"train", "sweep", "plot", "bench", "analyse", "merge", "map"}
