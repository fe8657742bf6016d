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
from fastxor.state import ACTIVATIONS, LOSSES, Recipe

ROOT = Path(__file__).resolve().parent.parent


# --- nvcc -------------------------------------------------------------------------------


def _ptxas_report(arch, recipes, boolean=True, targets=-1):
    """entry name -> (registers, stack, spill stores, spill loads) of the loader's module for ``recipes``
    (``targets``: compile-time target bits, as ``cupy_kernel.target_bits``)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not installed")
    res = subprocess.run([nvcc, f"-arch={arch}", "-cubin", "-Xptxas", "-v", "-ftz=true", "-std=c++17", "-x", "cu",
                          "-o", "/dev/null", "-"], input=gpu.module_source(*recipes, boolean=boolean, targets=targets),
                         capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    report = {}
    for name, body in re.findall(r"Compiling entry function '(\w+)' for '\w+'\n(.*?)(?=ptxas info\s+: Compiling|\Z)",
                                 res.stderr, re.S):
        regs = int(re.search(r"Used (\d+) registers", body).group(1))
        spill = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", body)
        report[name] = (regs, *(int(v) for v in spill.groups()))
    return report


def _check_no_local_memory(arch, recipes, boolean=True, targets=-1):
    report = _ptxas_report(arch, recipes, boolean, targets)
    assert set(report) == {gpu.entry_name(r, boolean, targets) for r in recipes}
    for name, (regs, stack, stores, loads) in sorted(report.items()):
        print(f"{arch} {name}: {regs} registers, stack {stack} B, spills {stores}/{loads} B")
        assert (stack, stores, loads) == (0, 0, 0), f"{name} uses local memory on {arch}"
        assert regs <= 255
    return report


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles_register_resident_kernels(arch):
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    recipes = [Recipe(h, f32) for h in (1, 2, 3, 4, 8, 16, gpu.REGISTER_RESIDENT["f32"][2])]
    recipes += [Recipe(2, f32, fast_math=True)]
    recipes += [Recipe(h, f64) for h in (1, 2, 4, gpu.REGISTER_RESIDENT["f64"][2])]
    _check_no_local_memory(arch, recipes)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles_every_recipe_without_spills(arch):
    """Every optimizer, loss, activation and option; float32 Adam up to H = 8 and
    float64 Adam at H = 2 stay in registers."""
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    recipes = [Recipe(h, f32, optimizer=o, weight_decay=True, target_loss=0.01)
               for h in (2, 4, 8) for o in ("adam", "adamw")]
    recipes += [Recipe(2, f64, optimizer="adam"), Recipe(8, f32, momentum=True, nesterov=True, weight_decay=True)]
    recipes += [Recipe(3, f32, loss=loss, activation=act, momentum=True, dampening=0.1)
                for loss in LOSSES for act in ACTIVATIONS]
    recipes += [Recipe(8, f32, optimizer="adamw", weight_decay=True, lr_output=True, output="linear",
                       activation="tanh"),  # the trainability maps' recipes: two rates, linear output
                Recipe(2, f64, lr_output=True, output="linear", activation="tanh"),
                Recipe(8, f32, lr_output=True, momentum=True)]
    _check_no_local_memory(arch, recipes)
    if arch == "sm_90":  # the entries a boolean function's run records its loss with: XOR's targets compiled in
        _check_no_local_memory(arch, recipes, targets=gpu.target_bits([0, 1, 1, 0]))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_keeps_parity3_and_parity4_in_registers(arch):
    """3-bit and 4-bit parity (D = 3, S = 8 and D = 4, S = 16) up to H = 8 in
    float32, the seed's recipe and Adam, without spills; 5-bit parity
    (S = 32, samples read from memory) compiles too."""
    f32 = np.dtype(np.float32)
    recipes = [Recipe(h, f32, inputs=d, samples=2**d) for d in (3, 4) for h in (1, 2, 3, 4, 8)]
    recipes += [Recipe(h, f32, inputs=d, samples=2**d, optimizer="adam") for d in (3, 4) for h in (3, 4)]
    recipes += [Recipe(5, f32, inputs=5, samples=32)]
    report = _check_no_local_memory(arch, recipes)
    assert "fastxor_train_h3_f32_d3s8" in report
    real = _check_no_local_memory(arch, [Recipe(1, np.dtype(np.float32), inputs=4, samples=16)], boolean=False)
    # boolean X is computed from the sample index, real X held in registers (measured: 72-80 against 168)
    assert real["fastxor_train_h1_f32_d4s16_realx"][0] > report["fastxor_train_h1_f32_d4s16"][0] + 32


def test_the_register_resident_widths_hold_for_d_inputs(arch="sm_90"):
    """REGISTER_RESIDENT for D > 2 (the D = 2 widths: above, both arches):
    the widest float32 kernel of 3, 4 and 8 inputs and float64 of 3 and 8
    keep everything in registers; one unit wider, 4-bit parity spills (the
    table is a boundary, not just a safe value)."""
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    table = gpu.REGISTER_RESIDENT
    recipes = [Recipe(table["f32"][d], f32, inputs=d, samples=2**d) for d in (3, 4, 8)]
    recipes += [Recipe(table["f64"][d], f64, inputs=d, samples=2**d) for d in (3, 8)]
    assert all(gpu.register_resident(r) for r in recipes)
    _check_no_local_memory(arch, recipes)
    wider = Recipe(table["f32"][4] + 1, f32, inputs=4, samples=16)
    assert not gpu.register_resident(wider)
    regs, *local = _ptxas_report(arch, [wider])[gpu.entry_name(wider)]
    assert any(local), "one unit wider than the table should spill"


def test_loader_source_names_the_real_file():
    src = gpu.module_source(Recipe(3, np.dtype(np.float32)))
    assert src.startswith(f'#line 1 "{gpu.kernel_path().as_posix()}"')
    assert src.rstrip().endswith("FASTXOR_ENTRY(h3_f32, 2, 3, 4, true, float, false, 0, 0, 0, 0, -1, true)")
    assert gpu.entry_name(Recipe(3, np.dtype(np.float64))) == "fastxor_train_h3_f64"
    adam = Recipe(2, np.dtype(np.float32), True, optimizer="adam", activation="tanh", target_loss=0.1)
    assert gpu.entry_name(adam) == "fastxor_train_h2_f32fast_1_0_1_16"
    assert gpu.module_source(adam).rstrip().endswith("FASTXOR_ENTRY(h2_f32fast_1_0_1_16, 2, 2, 4, true, float, true, 1, "
                                                     "0, 1, 16, -1, true)")
    assert gpu.module_source(adam, targets=6, history=False).rstrip().endswith(
        "FASTXOR_ENTRY(h2_f32fast_1_0_1_16_y6_q, 2, 2, 4, true, float, true, 1, 0, 1, 16, 6, false)")
    assert gpu.target_bits([0, 1, 1, 0]) == 6 and gpu.target_bits([1, 0, 0, 0, 0, 0, 0, 1]) == 129
    assert gpu.target_bits([0, 0.5, 1, 0]) == -1 and gpu.target_bits([0.0, -0.0, 1, 1]) == -1
    assert gpu.target_bits([0, 1] * 16) == -1  # beyond the samples held in registers
    assert gpu.entry_name(Recipe(2, np.dtype(np.float32)), boolean=False) == "fastxor_train_h2_f32_realx"
    assert gpu.entry_name(Recipe(3, np.dtype(np.float32), inputs=3, samples=8)) == "fastxor_train_h3_f32_d3s8"


def test_float32_h2_fits_half_occupancy(arch="sm_90"):
    """<= 64 registers: 50 % occupancy (32 warps of 128-thread blocks per SM)."""
    regs = _ptxas_report(arch, [Recipe(2, np.dtype(np.float32))])["fastxor_train_h2_f32"][0]
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


def test_the_specialised_entry_of_xor(arch="sm_90"):
    """A run of XOR recording no loss uses the entry with XOR's targets
    folded in and no history countdown: at most 300 SASS instructions per
    network-epoch and 48 registers for float32 H = 2 on sm_90 (the general
    entry: 319 and 56), no local memory; the same folds hold parity3's."""
    from fastxor.bench import sass

    why = sass.problem()
    if why:
        pytest.skip(why)
    prof = sass.profile(2, "float32", arch=arch, specialised=True)
    general = sass.profile(2, "float32", arch=arch)
    print(f"XOR H=2 float32 {arch}: {prof['instructions_per_network_epoch']} instructions per network-epoch "
          f"(general entry {general['instructions_per_network_epoch']}), {prof['mix']}")
    assert prof["instructions_per_network_epoch"] <= 300 < general["instructions_per_network_epoch"]
    nvcc = shutil.which("nvcc")
    seed, parity3 = Recipe(2, np.dtype(np.float32)), Recipe(3, np.dtype(np.float32), inputs=3, samples=8)
    for recipe, y in ((seed, [0, 1, 1, 0]), (parity3, [0, 1, 1, 0, 1, 0, 0, 1])):
        res = subprocess.run([nvcc, f"-arch={arch}", "-cubin", "-Xptxas", "-v", "-ftz=true", "-std=c++17", "-x", "cu",
                              "-o", "/dev/null", "-"], capture_output=True, text=True,
                             input=gpu.module_source(recipe, targets=gpu.target_bits(y), history=False))
        assert res.returncode == 0, res.stderr
        regs = int(re.search(r"Used (\d+) registers", res.stderr).group(1))
        assert "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" in res.stderr
        if recipe is seed:
            assert regs <= 48, regs


def test_the_common_path_leaves_out_what_forward_branches_skip():
    """``sass.branched_over`` on a hand-made loop: the two instructions a
    predicated forward BRA jumps over are off the common path; the backward
    branch and the rest are on it."""
    from fastxor.bench import sass

    text = "\n".join([
        "/*0100*/ FADD R1, R2, R3 ;", "/*0110*/ @P0 BRA 0x140 ;", "/*0120*/ FMUL R4, R4, R5 ;",
        "/*0130*/ DADD R6, R6, R8 ;", "/*0140*/ FFMA R1, R1, R2, R3 ;", "/*0150*/ @P1 BRA 0x100 ;"])
    loop = sass.epoch_loop(sass.instructions(text))
    assert len(loop) == 6 and sass.branched_over(loop) == 2


def test_float64_common_path_is_shorter_than_the_static_loop():
    """float64's sigmoids branch over exp's range fix-ups: the common path is
    shorter than the static count, and float32 H = 2 (no such branches) has
    the two equal."""
    from fastxor.bench import sass

    why = sass.problem()
    if why:
        pytest.skip(why)
    f64, f32 = sass.profile(2, "float64"), sass.profile(2, "float32")
    assert 0.6 * f64["instructions_per_network_epoch"] < f64["common_path"] < f64["instructions_per_network_epoch"]
    assert f32["common_path"] == f32["instructions_per_network_epoch"]
