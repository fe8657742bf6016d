"""The CUDA kernel as nvcc compiles it: every register-resident
instantiation for sm_80 and sm_90 without spills or local memory (register
counts are printed), and the loader's module source. The kernel's results
are tested through the loader in tests/test_gpu_backend.py (on a GPU, or on
the strict fake CuPy of tests/fake_cupy everywhere else).
"""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fastxor.backends import cupy_kernel as gpu

ROOT = Path(__file__).resolve().parent.parent


# --- nvcc -------------------------------------------------------------------------------


def _ptxas_report(arch, entries):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not installed")
    path = gpu.kernel_path()
    src = f'#line 1 "{path}"\n{path.read_text()}\n' + "".join(
        f"FASTXOR_ENTRY({h}, {t}, {s}, {f})\n" for h, t, s, f in entries)
    res = subprocess.run([nvcc, f"-arch={arch}", "-cubin", "-Xptxas", "-v", "-std=c++17", "-x", "cu",
                          "-o", "/dev/null", "-"], input=src, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    report = {}
    for name, body in re.findall(r"Compiling entry function '(\w+)' for '\w+'\n(.*?)(?=ptxas info\s+: Compiling|\Z)",
                                 res.stderr, re.S):
        regs = int(re.search(r"Used (\d+) registers", body).group(1))
        spill = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", body)
        report[name] = (regs, *(int(v) for v in spill.groups()))
    return report


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles_register_resident_kernels(arch):
    entries = [(h, "float", "f32", "false") for h in (1, 2, 3, 4, 8, 16, gpu.REGISTER_RESIDENT["f32"])]
    entries += [(2, "float", "f32fast", "true")]
    entries += [(h, "double", "f64", "false") for h in (1, 2, 4, gpu.REGISTER_RESIDENT["f64"])]
    report = _ptxas_report(arch, entries)
    assert set(report) == {f"fastxor_train_h{h}_{s}" for h, _, s, _ in entries}
    for name, (regs, stack, stores, loads) in sorted(report.items()):
        print(f"{arch} {name}: {regs} registers, stack {stack} B, spills {stores}/{loads} B")
        assert (stack, stores, loads) == (0, 0, 0), f"{name} uses local memory on {arch}"
        assert regs <= 255


def test_loader_source_names_the_real_file():
    src = gpu.module_source(3, np.float32, fast=False)
    assert src.startswith(f'#line 1 "{gpu.kernel_path().as_posix()}"')
    assert src.rstrip().endswith("FASTXOR_ENTRY(3, float, f32, false)")
    assert gpu.entry_name(3, np.float64) == "fastxor_train_h3_f64"
    assert gpu.module_source(2, np.float32, fast=True).rstrip().endswith("FASTXOR_ENTRY(2, float, f32fast, true)")


def test_float32_h2_fits_half_occupancy(arch="sm_90"):
    """<= 64 registers: 50 % occupancy (32 warps of 128-thread blocks per SM)."""
    regs = _ptxas_report(arch, [(2, "float", "f32", "false")])["fastxor_train_h2_f32"][0]
    assert regs <= 64


def test_epoch_loop_instruction_count():
    """The epoch loop of float32 H = 2 as CuPy compiles it for sm_90: at most
    380 SASS instructions per network-epoch, no per-sigmoid branches (the
    IEEE divide's slow-path checks are gone), and an H100 issue-slot bound
    above 8e10 network-epochs/s (132 SMs x 4 schedulers x 32 x 1.98 GHz /
    instructions). Needs nvcc and cuobjdump/nvdisasm (the test extras install
    the latter two from PyPI)."""
    from fastxor.bench import sass

    why = sass.problem()
    if why:
        pytest.skip(why)
    prof = sass.profile(2, "float32")
    print(f"H=2 float32 sm_90: {prof['instructions_per_network_epoch']} instructions per network-epoch "
          f"{prof['mix']}, H100 issue bound {prof['h100_issue_bound_ne_per_s']:.3g} network-epochs/s")
    assert prof["instructions_per_network_epoch"] <= 380
    assert prof["mix"].get("control", 0) <= 4
    assert prof["h100_issue_bound_ne_per_s"] > 8e10
