"""Multiply-adds fused where the kernel source writes them, not where LLVM finds them.

Why: with LLVM's ``contract`` flag, which product of a sum became a fused
multiply-add followed the operand order LLVM's reassociation pass left,
and that depends on the code around the sum: the same arithmetic compiled
as scalar or as vector code, unrolled or in a loop, rounded differently in
the last bit (docs/performance.md, changes 14 and 15). So the CPU kernels
compile without ``contract`` (``config.NUMBA_FASTMATH``), and ``fuse``
writes the fusions into the source's syntax tree instead: ``a * b + c``,
``c + a * b``, ``a * b - c`` and ``c - a * b`` become ``fma(...)``. Where
both terms of a sum are products the right one is fused, so a sum of
products written left to right is one chain of multiply-adds; a product
assigned to a name and added later is rounded on its own. Both compilers
(``numba_direct_ir`` and Numba, through ``fused_function``) compile the
rewritten tree, and the math functions (``numba_vmath``) are fused by the
same rule, so the bits follow from the source alone.

``fma`` keeps Python's typing of ``a * b + c``: it fuses where the product
and the sum have one float type and the CPU has FMA instructions
(``has_fma``); otherwise it is the product then the sum, each rounded (on
an x86-64 CPU without FMA, the bits of the unfused source; integers, as
in index arithmetic, are exact either way).
"""
import ast
import copy

from numba import types
from numba.extending import intrinsic


def _is_product(node):
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)


def _fma(a, b, c, like):
    return ast.copy_location(ast.Call(func=ast.Name(id="fma", ctx=ast.Load()), args=[a, b, c], keywords=[]), like)


def _negated(node):
    return ast.copy_location(ast.UnaryOp(op=ast.USub(), operand=node), node)


class _Fuse(ast.NodeTransformer):
    def visit_BinOp(self, node):
        self.generic_visit(node)
        if not isinstance(node.op, (ast.Add, ast.Sub)):
            return node
        minus = isinstance(node.op, ast.Sub)
        if _is_product(node.right):  # c + a * b -> fma(a, b, c); c - a * b -> fma(-a, b, c)
            a, b = node.right.left, node.right.right
            return _fma(_negated(a) if minus else a, b, node.left, node)
        if _is_product(node.left):  # a * b + c -> fma(a, b, c); a * b - c -> fma(a, b, -c)
            return _fma(node.left.left, node.left.right, _negated(node.right) if minus else node.right, node)
        return node

    def visit_AugAssign(self, node):  # x += a * b -> x = fma(a, b, x)
        self.generic_visit(node)
        if not isinstance(node.op, (ast.Add, ast.Sub)) or not _is_product(node.value):
            return node
        load = copy.deepcopy(node.target)
        for n in ast.walk(load):
            if hasattr(n, "ctx"):
                n.ctx = ast.Load()
        a, b = node.value.left, node.value.right
        value = _fma(_negated(a) if isinstance(node.op, ast.Sub) else a, b, load, node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=value), node)


def fuse(tree):
    """``tree`` (a parsed module or function) with its multiply-adds written as ``fma`` calls, in place."""
    return ast.fix_missing_locations(_Fuse().visit(tree))


def fused_function(module, tree):
    """The Python function ``tree`` (a fused ``FunctionDef`` of ``module``'s
    source) defined in ``module`` in place of the unfused one, for Numba to
    compile: its line numbers are the source's, so Numba's cache finds it."""
    code = compile(ast.Module(body=[tree], type_ignores=[]), getattr(module, "__file__", None) or "<fastxor>", "exec")
    exec(code, module.__dict__)
    return module.__dict__[tree.name]


_HAS_FMA = {}


def has_fma():
    """Whether the CPU Numba compiles for has fused multiply-add instructions
    (x86-64 since Haswell and Piledriver, with ``+fma``; every aarch64 and
    ppc64le CPU). Without them LLVM would call libm's slow software fma."""
    from numba.core.registry import cpu_target

    codegen = cpu_target.target_context.codegen()
    key = (codegen._get_host_cpu_name(), codegen._get_host_cpu_features())
    if key not in _HAS_FMA:
        triple = codegen._llvm_module.triple
        _HAS_FMA[key] = not triple.startswith(("x86", "i386", "i686")) or "+fma" in key[1].split(",")
    return _HAS_FMA[key]


def _unify(typingctx, a, b):
    if isinstance(a, types.Integer) and isinstance(b, types.Integer):
        return types.int64
    return typingctx.unify_pairs(a, b)


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c``, typed as Numba types it; one rounding where the
    product and the sum are of one float type and ``has_fma()``."""
    if not all(isinstance(t, (types.Float, types.Integer)) and not isinstance(t, types.Boolean) for t in (a, b, c)):
        return None
    if any(isinstance(t, types.Integer) and not t.signed for t in (a, b, c)):
        return None
    prod = _unify(typingctx, a, b)
    result = _unify(typingctx, prod, c)
    if prod is None or result is None:
        return None

    def codegen(context, builder, signature, args):
        x, y = (context.cast(builder, v, t, prod) for v, t in zip(args[:2], signature.args[:2]))
        z = context.cast(builder, args[2], signature.args[2], result)
        if isinstance(result, types.Float):
            if prod == result and has_fma():
                return builder.fma(x, y, z)
            return builder.fadd(context.cast(builder, builder.fmul(x, y), prod, result), z)
        return builder.add(builder.mul(x, y, flags=["nsw"]), z, flags=["nsw"])

    return result(a, b, c), codegen

