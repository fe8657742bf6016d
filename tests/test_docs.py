"""Every example in the README and in docs/ runs as written (at small sizes),
and the documentation site builds without a warning.

Each page's ```python blocks run in one namespace of their own; its ```bash
lines that start with ``fastxor`` run through ``fastxor.cli.main``, in
order, each block in a fresh directory. Sizes: every integer literal >= 1000
(networks, epochs, record intervals, grid lengths) becomes 40, consistently,
so the examples keep their shape and take seconds.
"""
import ast
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SMALL = 40


def blocks(page, lang):
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(), re.S)


class _Shrink(ast.NodeTransformer):
    def visit_Constant(self, node):
        if isinstance(node.value, int) and not isinstance(node.value, bool) and node.value >= 1000:
            return ast.copy_location(ast.Constant(SMALL), node)
        return node


def _run_python(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = "\n".join(blocks(page, "python"))
    tree = ast.fix_missing_locations(_Shrink().visit(ast.parse(code)))
    namespace = {}
    exec(compile(tree, page.name, "exec"), namespace)
    return namespace


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p, "python")], ids=lambda p: p.name)
def test_python_examples_run(page, tmp_path, monkeypatch):
    namespace = _run_python(page, tmp_path, monkeypatch)
    if page == README:  # the quick start and common tasks did what they say
        assert namespace["r"].config["epochs"] == 2 * SMALL  # trained, saved, loaded, resumed
        assert len(namespace["t"]) == 2 * 2  # the sweep's grid


def _shrink_arg(token):
    return str(SMALL) if token.isdigit() and int(token) >= 1000 else token


def test_command_line_examples_run(tmp_path, monkeypatch, capsys):
    from fastxor import cli
    from fastxor.bench import harness, peers

    # `fastxor bench --quick` at toy sizes, with the peers that need nothing extra
    monkeypatch.setattr(harness, "IMPLS", tuple(peers.by_name(n) for n in ("fastxor numba", "numpy vectorised")))
    monkeypatch.setitem(harness.QUICK, "sizes", (1, 100))
    monkeypatch.setitem(harness.QUICK, "target", 0.02)
    seen = set()
    for page in PAGES:
        for i, block in enumerate(blocks(page, "bash")):  # each block in a fresh directory, its lines in order
            where = tmp_path / f"{page.stem}-{i}"
            where.mkdir()
            monkeypatch.chdir(where)
            lines = [line.split("  #")[0].strip() for line in block.splitlines()]
            for argv in (shlex.split(line)[1:] for line in lines if line.startswith("fastxor ")):
                if argv[0] in ("plot", "analyse") or "--plot" in argv:
                    pytest.importorskip("matplotlib")
                seen.add(argv[0])
                rc = cli.main([t if before == "--function" else _shrink_arg(t)  # a truth table is not a size
                               for before, t in zip(["", *argv], argv)])
                assert rc == 0, f"{page.name}: fastxor {' '.join(argv)} exited with {rc}: {capsys.readouterr().err}"
    assert seen == {"train", "sweep", "plot", "bench", "analyse", "merge", "map"}


def test_the_readme_links_to_pages_that_exist():
    for target in re.findall(r"\]\((docs/[^)#]+)", README.read_text()):
        assert (ROOT / target).exists(), target


def test_the_documentation_site_builds_strictly(tmp_path):
    """``mkdocs build --strict`` (the docs extra): every page, link and API
    reference entry resolves; the CLI reference is generated from the parser."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    cli_page = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "--lr-output" in cli_page and "fastxor map lr" in cli_page
    api_page = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "lr_map" in api_page and "Train many D-H-1 networks" in api_page
    shutil.rmtree(tmp_path / "site")


def test_the_documented_train_signature_is_the_real_one():
    """docs/usage.md writes out ``fastxor.train``'s signature: every parameter,
    in order, with its default, as the function has them."""
    import inspect

    import fastxor

    text = (ROOT / "docs" / "usage.md").read_text()
    written = re.search(r"`fastxor\.train\((.*?)\)` returns", text).group(1)
    documented = ast.parse(f"def train({written}): pass").body[0].args
    names = [a.arg for a in documented.args + documented.kwonlyargs]
    defaults = [ast.literal_eval(d) for d in documented.defaults + documented.kw_defaults]
    real = inspect.signature(fastxor.train).parameters.values()
    assert names == [p.name for p in real]
    assert defaults == [p.default for p in real]
