"""``numba_widen`` on small hand-written loops: the widened code computes
what the scalar loop computes, and what it cannot widen safely it refuses.
(The kernels themselves are compared with LLVM's vectoriser in
test_direct_ir.py and by ``bench/bitcheck.py``.)"""
import ctypes

import numpy as np
import pytest

from fastxor.backends import numba_widen

#: A lane loop over 64 floats of the chunk state: lanes holding a negative
#: value take another row's element ({masked}, on those lanes only).
_LOOP = """
define void @f(ptr %arg.a_p, ptr %arg.x_p) {{
entry:
  br label %body
body:
  %i = phi i64 [ 0, %entry ], [ %j, %join ]
  %p = getelementptr float, ptr %arg.a_p, i64 %i
  %v = load float, ptr %p, align 4
  %c = fcmp olt float %v, 0.000000e+00
  br i1 %c, label %neg, label %join
neg:
{masked}
  br label %join
join:
  %r = phi float [ %w, %neg ], [ %v, %body ]
  %s = fmul contract float %r, 3.000000e+00
  %t = fadd contract float %s, %v
  store float %t, ptr %p, align 4
  %j = add nuw nsw i64 %i, 1
  %d = icmp eq i64 %j, 64
  br i1 %d, label %exit, label %body, !llvm.loop !0
exit:
  ret void
}}
!0 = distinct !{{!0, !1}}
!1 = !{{!"llvm.loop.parallel_accesses", !2}}
!2 = distinct !{{}}
"""
_CHUNK_ROW = """  %q = getelementptr i8, ptr %p, i64 256
  %w = load float, ptr %q, align 4"""


def _run(ir, a):
    import llvmlite.binding as ll

    ll.initialize_native_target()
    ll.initialize_native_asmprinter()
    module = ll.parse_assembly(ir)
    module.verify()
    machine = ll.Target.from_default_triple().create_target_machine(
        cpu=ll.get_host_cpu_name(), features=ll.get_host_cpu_features().flatten())
    engine = ll.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(engine.get_function_address("f"))(a.ctypes.data, 0)
    return a


@pytest.mark.parametrize("lanes", [4, 8, 16])
def test_a_branch_becomes_a_select_with_the_scalar_loop_s_results(lanes, rng):
    """The branch over some lanes is turned into a select, the chunk row is
    read on every lane (it holds every lane's element), and the results are
    the scalar loop's, bit for bit (NaN, signed zeros and infinities among
    the inputs)."""
    ir = _LOOP.format(masked=_CHUNK_ROW)
    wide = numba_widen.widen(ir, "f", lambda element: lanes)
    assert f"load <{lanes} x float>" in wide and f"select <{lanes} x i1>" in wide and "br i1 %c" not in wide
    a = rng.normal(0, 2, 64 * 3).astype(np.float32)
    a[rng.choice(64, 8, replace=False)] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e-30, -5.0]
    want, got = _run(ir, a.copy()), _run(wide, a.copy())
    np.testing.assert_array_equal(want.view(np.uint32), got.view(np.uint32))


@pytest.mark.parametrize("masked, why", [
    ("  %w = load float, ptr %arg.x_p, align 4", "a load on some lanes only"),  # not the chunk state: could fault
    ("  %e = fptosi float %v to i32\n  %z = sdiv i32 7, %e\n  %w = sitofp i32 %z to float", "a sdiv on some lanes only"),
])
def test_what_could_fault_on_the_other_lanes_is_left_to_llvm(masked, why):
    """Code run on some lanes only that could fault when run on all of them
    (a load outside the chunk state, an integer division) is not widened:
    ``Unsupported``, and LLVM's vectoriser compiles it."""
    with pytest.raises(numba_widen.Unsupported, match=why):
        numba_widen.widen(_LOOP.format(masked=masked), "f", lambda element: 16)


def test_a_loop_over_a_run_time_number_of_lanes_is_left_to_llvm():
    ir = _LOOP.format(masked=_CHUNK_ROW).replace("%d = icmp eq i64 %j, 64", "%d = icmp eq i64 %j, %n").replace(
        "define void @f(ptr %arg.a_p, ptr %arg.x_p)", "define void @f(ptr %arg.a_p, ptr %arg.x_p, i64 %n)")
    with pytest.raises(numba_widen.Unsupported, match="no latch counting to a constant"):
        numba_widen.widen(ir, "f", lambda element: 16)
