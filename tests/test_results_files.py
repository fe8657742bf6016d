"""Measured figures and the files they come from: every results file says
when and on what it was measured, and every figure the README (or a docs
table row) quotes beside a results file is in that file, at the precision
quoted."""
import csv
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = sorted((ROOT / "bench" / "results").glob("*.json"))
#: Written before ``harness.environment`` recorded the date, the CPU's
#: microarchitecture and SIMD features: they say what they recorded then.
RECORDED_BEFORE_FLAGS = "20261201"
SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
FILE_REF = re.compile(r"`((?:bench/results|docs)/[\w.-]+\.(?:json|csv))`")
#: 3.16e8, 2 310, 13.5, 1.28e10, 89.04 (a thousands gap is a thin space or a space)
FIGURE = re.compile(r"(?<![\w.])(\d{1,3}(?:[ \u2009]\d{3})+|\d+(?:\.\d+)?)(?:e(-?\d+))?")
#: 10⁵ and 2.5 × 10⁵, rewritten as 1e5 and 2.5e5 before figures are read
POWER = re.compile(r"(?:(\d+(?:\.\d+)?)\s*×\s*)?10([⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+)")
#: Words around a number that make it context, not a measured figure.
CONTEXT = re.compile(r"95 % CI|\d{4}-\d{2}-\d{2}|AVX-512|Zen \d")


def numbers_in(path):
    """Every number in a results file (JSON values, numbers inside strings and keys, CSV cells)."""
    out = []
    if path.suffix == ".csv":
        for row in csv.reader(path.open()):
            for cell in row:
                try:
                    out.append(float(cell))
                except ValueError:
                    pass
        return out

    def walk(v):
        if isinstance(v, bool):
            return
        if isinstance(v, (int, float)):
            out.append(float(v))
        elif isinstance(v, dict):  # keys too: "fastxor new variant (H5 adam tanh bce)"
            for key, x in v.items():
                walk(key)
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            out.extend(float(m) for m in re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", v))

    walk(json.loads(path.read_text()))
    return out


def quoted_in(text, exponent, values):
    """Whether the figure written ``text`` x 10**exponent is one of ``values``
    rounded as written (3.16e8: 3 significant digits; 89.04: 2 decimals; a
    fraction in the file may be quoted as a percentage)."""
    digits = re.sub(r"[ \u2009]", "", text)
    x = float(digits) * 10.0 ** exponent
    if exponent == 0 and "." in digits:
        half_unit = 0.5 * 10.0 ** -len(digits.split(".")[1])
    else:
        significant = len(digits.replace(".", "").strip("0")) or 1
        half_unit = 0.5 * 10.0 ** (math.floor(math.log10(x)) - significant + 1) if x else 0.5
    return any(abs(v * scale - x) <= half_unit * (1 + 1e-9) for v in values for scale in (1, 100))


def unmatched_figures(line, root=ROOT):
    """The figures of a line quoting results files that none of those files holds."""
    values = [v for ref in FILE_REF.findall(line) for v in numbers_in(root / ref)]
    text = CONTEXT.sub("", FILE_REF.sub("", line))
    text = POWER.sub(lambda m: f"{m.group(1) or '1'}e{m.group(2).translate(SUPERSCRIPT)}", text)
    missing = []
    for m in FIGURE.finditer(text):
        exponent = int(m.group(2) or 0)
        if not quoted_in(m.group(1), exponent, values):
            missing.append(m.group(0))
    return missing


def _quoting_lines():
    """The README's lines that cite a results file, and the docs' table rows
    that do (a docs paragraph mixes figures of several files with derived
    ones; a table row quotes one file's figures)."""
    lines = [("README.md", line) for line in (ROOT / "README.md").read_text().splitlines() if FILE_REF.search(line)]
    for page in sorted((ROOT / "docs").glob("*.md")):
        lines += [(page.name, line) for line in page.read_text().splitlines()
                  if line.startswith("|") and FILE_REF.search(line)]
    return lines


def test_every_figure_quoted_beside_a_file_is_in_that_file():
    lines = _quoting_lines()
    assert sum(page == "README.md" for page, _ in lines) >= 3  # the headline and the two speed rows
    for page, line in lines:
        for ref in FILE_REF.findall(line):
            assert (ROOT / ref).exists(), ref
        assert not unmatched_figures(line), f"{page}: not in the cited file: {unmatched_figures(line)} in {line[:120]!r}"


def test_the_figure_check_can_fail(tmp_path):
    """A changed digit, a precision the file does not support, a figure the
    file does not hold: each is caught; the right ones pass."""
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "x.json").write_text(
        json.dumps(dict(a=316011234.5, r=[13.48, 0.8904, 2308.7], n=100000, note="at 10 networks")))
    ref = "`bench/results/x.json`"
    assert unmatched_figures(f"| {ref}, 2026-11-25 | 3.16e8 (N = 10⁵) | ×13.5, ×2 310 | 89.04 % (95 % CI) | 10 |",
                             tmp_path) == []
    for wrong, read in (("3.17e8", "3.17e8"), ("13.49", "13.49"), ("89.1", "89.1"), ("2 320", "2 320"),
                        ("10⁶", "1e6"), ("1.1 × 10⁵", "1.1e5"), ("11", "11")):
        assert unmatched_figures(f"{ref} {wrong}", tmp_path) == [read]


def _date_of(path, doc):
    env = doc.get("environment") or {}
    date = doc.get("date") or env.get("date")
    m = re.search(r"(\d{8})", path.name)
    return str(date) if date else (f"{m.group(1)[:4]}-{m.group(1)[4:6]}-{m.group(1)[6:]}" if m else None)


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_every_results_file_says_when_and_on_what(path):
    """A date (recorded, or in the file's name) and the machine: the CPU and
    its cores, or the GPU, and the versions; files from the current recorder
    also the CPU's microarchitecture and SIMD features, memory and OS."""
    doc = json.loads(path.read_text())
    assert _date_of(path, doc), "no date"
    env = doc.get("environment")
    if env is None:  # older layouts: the machine in top-level fields
        described = {"cpu", "cores", "host", "host_cpus", "device", "gpu_model", "arch", "nvcc"} & set(doc)
        assert described or "versions" in doc, f"{path.name} names no machine"
        return
    assert {"cpu", "cores", "machine", "numpy", "python", "fastxor", "gpu"} <= set(env), sorted(env)
    if re.search(r"(\d{8})", path.name).group(1) > RECORDED_BEFORE_FLAGS:
        assert {"date", "cpu_arch", "cpu_flags", "memory_gib", "os", "llvmlite"} <= set(env), sorted(env)


def test_the_environment_recorder_describes_this_machine(monkeypatch):
    from fastxor.bench import harness

    monkeypatch.setattr(harness, "cpu_clock_ghz", lambda: 3.0)  # measured: 0.2 s of a busy loop
    env = harness.environment()
    assert env["cores"] == os.cpu_count() and env["numpy"] == np.__version__
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", env["date"])
    assert env["cpu_arch"] and env["cpu_arch"] != "generic"
    import llvmlite.binding as llvm

    from fastxor.machine import SIMD_FEATURES, proc_field

    has = llvm.get_host_cpu_features()
    assert env["cpu_flags"] == [f for f in SIMD_FEATURES if has.get(f)]
    flags = (proc_field("/proc/cpuinfo", "flags") or "").split()
    if flags:  # Linux x86: the kernel's own list agrees
        for f in ("avx2", "fma", "avx512f"):
            assert (f in env["cpu_flags"]) == (f in flags), f
    assert env["memory_gib"] is None or env["memory_gib"] > 0
