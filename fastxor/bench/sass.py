"""The GPU kernel's instruction mix, read from its compiled SASS.

Why: on an H100 the fused kernel is bound by instruction issue, not by FP32
throughput (every instruction -- integer, move, branch, the IEEE-divide
checks -- takes an issue slot), and a hand count of "FP32 operations" misses
most of them. So the bound is derived from what the compiler emits: the
loader's exact module source, compiled by nvcc with the options NVRTC gets
from CuPy (``-ftz=true``; NVRTC's defaults ``-prec-div=true -prec-sqrt=true
-fmad=true`` are nvcc's too), disassembled by ``cuobjdump -sass``.

Instructions per network-epoch = the static instructions of the epoch loop
(the largest backward branch of the kernel): the loop body runs once per
epoch on every path but the rare ones it calls out of line (the IEEE
divide's slow path for huge or subnormal operands). Where the loop branches
over inline fix-ups (float64), ``common_path`` is the count without them:
the static count bounds the issue slots from above, the common path from
below, and the fraction of the bound is quoted for both.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

#: H100 SXM: 132 SMs x 4 schedulers, each issuing one warp instruction (32
#: thread-instructions) per clock, at 1.98 GHz boost.
H100 = dict(sms=132, schedulers=4, warp=32, clock_ghz=1.98)

#: SASS opcode (before the first '.') -> pipe, for the reported mix.
PIPES = {
    "fp32": {"FADD", "FMUL", "FFMA", "FMNMX", "FSETP", "FSEL", "FSET", "FCHK", "FSWZADD", "FRND", "F2F"},
    "fp64": {"DADD", "DMUL", "DFMA", "DSETP", "DMNMX", "DSET", "F2I", "I2F"},
    "mufu": {"MUFU"},
    "integer": {"IADD3", "IMAD", "LOP3", "ISETP", "SHF", "LEA", "IABS", "SEL", "IMNMX", "PRMT", "FLO", "POPC",
                "IADD", "ICMP", "VIADD", "VIMNMX", "I2FP", "F2IP", "IMUL", "SGXT", "BMSK", "PLOP3", "P2R", "R2P",
                "CS2R", "S2R", "S2UR", "UIADD3", "ULDC", "UMOV", "ULOP3", "USHF", "UIMAD", "R2UR", "UISETP",
                "ULEA", "USEL", "VOTEU", "UPRMT", "UFLO", "UPOPC"},
    "move": {"MOV", "SHFL", "HFMA2"},  # HFMA2.MMA -RZ, RZ, c: the compiler's constant move
    "memory": {"LDG", "STG", "LDC", "LD", "ST", "LDL", "STL", "LDS", "STS", "ATOM", "RED"},
    "control": {"BRA", "BSSY", "BSYNC", "CALL", "RET", "EXIT", "WARPSYNC", "BAR", "NOP", "YIELD", "BREAK",
                "BPT", "JMP", "BRX", "JMX", "ACQBULK", "DEPBAR", "KILL"},
}
LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z0-9_.]+)([^;]*);")


def find_tool(name):
    """``name`` on PATH, beside nvcc, or from the pip wheels (nvidia-cuda-cuobjdump, -nvdisasm)."""
    found = shutil.which(name)
    if found:
        return found
    nvcc = shutil.which("nvcc")
    places = [Path(nvcc).parent / name] if nvcc else []
    for base in sys.path:
        places += [Path(p) for p in glob.glob(os.path.join(base, "nvidia", "*", "bin", name))]
    return next((str(p) for p in places if p.is_file() and os.access(p, os.X_OK)), None)


def problem():
    """None when nvcc and cuobjdump (with nvdisasm) are here, else what is missing."""
    missing = [t for t in ("nvcc", "cuobjdump", "nvdisasm") if find_tool(t) is None]
    return f"{', '.join(missing)} not found" if missing else None


def compile_sass(source, arch="sm_90"):
    """The SASS text of ``source`` compiled as CuPy's NVRTC would compile it."""
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "module.cubin"
        subprocess.run([find_tool("nvcc"), f"-arch={arch}", "-cubin", "-ftz=true", "-std=c++17", "-x", "cu",
                        "-o", str(cubin), "-"], input=source, text=True, check=True, capture_output=True)
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(find_tool("nvdisasm")).parent),
                                                     os.environ.get("PATH", "")]))
        out = subprocess.run([find_tool("cuobjdump"), "-sass", str(cubin)], text=True, check=True,
                             capture_output=True, env=env)
    return out.stdout


def instructions(sass):
    """[(address, opcode, operands)] in address order."""
    return [(int(a, 16), op, rest.strip()) for a, _, op, rest in LINE.findall(sass)]


def epoch_loop(instrs):
    """The instructions of the largest loop (target..backward branch)."""
    best = (0, 0)
    for i, (addr, op, rest) in enumerate(instrs):
        m = re.match(r"(?:.*\s)?0x([0-9a-f]+)$", rest)
        if op.startswith("BRA") and m and int(m.group(1), 16) < addr:
            start = next(j for j, ins in enumerate(instrs) if ins[0] >= int(m.group(1), 16))
            if i + 1 - start > best[1] - best[0]:
                best = (start, i + 1)
    return instrs[best[0]:best[1]]


def branched_over(loop):
    """The loop's instructions inside forward branches: blocks a predicated
    ``BRA`` jumps over. In these kernels they are range fix-ups that the
    common path skips (float64 exp's handling of huge arguments, the
    divide's operand checks), so len(loop) - branched_over(loop) is the
    path an ordinary epoch executes; the static count is an upper bound."""
    inside = set()
    for addr, op, rest in loop:
        m = re.match(r"(?:.*\s)?0x([0-9a-f]+)$", rest)
        if op.startswith("BRA") and m and int(m.group(1), 16) > addr:
            inside |= {a for a, _, _ in loop if addr < a < int(m.group(1), 16)}
    return len(inside)


def pipe_of(op):
    base = op.split(".")[0]
    return next((pipe for pipe, ops in PIPES.items() if base in ops or op in ops), "other")


def issue_bound(per_network_epoch, gpu=H100):
    """Network-epochs/s if every issue slot of every scheduler were used."""
    return gpu["sms"] * gpu["schedulers"] * gpu["warp"] * gpu["clock_ghz"] * 1e9 / per_network_epoch


def profile(hidden=2, dtype="float32", fast=False, arch="sm_90", recipe_options=None, specialised=False):
    """The epoch loop's instruction count and mix, and the H100 issue-slot bound
    (``recipe_options``: state.Recipe fields beyond the seed's). ``specialised``:
    the entry a run of XOR that records no loss uses (its targets folded in,
    no history: ``cupy_kernel.launch_kernel``), else the entry with history
    and run-time targets (what any data and any run can use)."""
    import numpy as np

    from ..backends import cupy_kernel
    from ..state import Recipe

    recipe = Recipe(hidden, np.dtype(dtype), fast, **(recipe_options or {}))
    entry = dict(targets=cupy_kernel.target_bits([0, 1, 1, 0]), history=False) if specialised else {}
    loop = epoch_loop(instructions(compile_sass(cupy_kernel.module_source(recipe, **entry), arch)))
    mix = Counter(pipe_of(op) for _, op, _ in loop)
    common = len(loop) - branched_over(loop)
    return dict(hidden=hidden, dtype=str(dtype), fast_math=fast, arch=arch, recipe=recipe_options or {},
                specialised=specialised, instructions_per_network_epoch=len(loop), common_path=common,
                mix=dict(sorted(mix.items())), h100_issue_bound_ne_per_s=issue_bound(len(loop)),
                h100_common_path_bound_ne_per_s=issue_bound(common))


def main(argv=None):
    """``python -m fastxor.bench.sass [--out FILE]``: the profiles of the kernels
    the benchmarks run (float32 H = 2 and 8, fast-math, float64, and each
    training recipe at float32 H = 2; then the first four as XOR's
    specialised entry), as JSON."""
    import argparse
    import json
    import subprocess as sp

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--out")
    ap.add_argument("--arch", default="sm_90")
    a = ap.parse_args(argv)
    why = problem()
    if why:
        raise SystemExit(f"fastxor.bench.sass: {why}")
    nvcc = sp.run([find_tool("nvcc"), "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]
    seed = [(2, "float32", False, None), (2, "float32", True, None), (8, "float32", False, None),
            (2, "float64", False, None)]
    recipes = [dict(momentum=True), dict(momentum=True, nesterov=True, weight_decay=True), dict(activation="tanh"),
               dict(activation="relu"), dict(loss="bce"), dict(loss="bce_logits"),
               dict(momentum=True, target_loss=0.01), dict(optimizer="adam"),
               dict(optimizer="adamw", weight_decay=True)]
    res = dict(nvcc=nvcc, arch=a.arch, gpu_model=H100, profiles=[
        profile(h, dt, fast, a.arch, options) for h, dt, fast, options in
        seed + [(2, "float32", False, r) for r in recipes]] + [
        profile(h, dt, fast, a.arch, options, specialised=True) for h, dt, fast, options in seed])
    text = json.dumps(res, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
