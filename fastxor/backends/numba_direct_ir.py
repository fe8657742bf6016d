"""A chunk function's generated source compiled straight to LLVM IR.

Why: a new variant's chunk function spent about two thirds of its compile
in Numba's front end (bytecode analysis, typing, its IR passes, lowering:
2.2 s of 3.5 s at H = 32), work that grows with the unrolled body. The
kernel language ``numba_kernel`` emits is tiny: scalar arithmetic of one
float type, selects, comparisons, loads and stores at computed offsets,
``range`` loops, ``if``, and calls of the vmath functions. This module
types it and writes the IR Numba's lowering writes for it — the same
floating-point instructions in the same order, with the same fast-math
flags and the same calls — and hands it to Numba's own code generator
(same passes, same target machine, the vmath bitcode linked), so the
machine code computes the same bits: tests compare both compilers on random
programs of the language and on random recipes' kernels, and
``bench/bitcheck.py`` on 24 runs. Both compile the source with its
multiply-adds written out as ``fma`` calls (``numba_fusion``), and without
LLVM's ``contract`` flag, so no rounding is left to LLVM's choice. Anything
outside the language raises ``Unsupported`` and the caller compiles with
Numba instead.

Integers, indices and control flow are written in the plainest form (no
wraparound of negative indices: the generated indices never are), as they
only decide addresses and trip counts; loops over lanes are marked
parallel (``_Writer.loop``). Compiled functions are cached as object code
under the kernel cache, keyed by the module (whose name hashes its source
and fastxor's), the function, the CPU, the compiler versions and this
translator's own source.

A training kernel's lane loops are vectorised by ``numba_widen`` after LLVM
optimised the scalar code (``_widened``), not by LLVM's loop vectoriser,
which had been half of a large kernel's compile; the final pass compiles
without vectorising at all (``_scalar_library``).
"""
import ast
import hashlib
import pickle
import re
import struct
from pathlib import Path

import numpy as np

from .. import jit_cache
from . import numba_fusion


class Unsupported(Exception):
    """The source uses something this translator does not write: compile with Numba."""


_FLOAT_OPS = {ast.Add: "fadd", ast.Sub: "fsub", ast.Mult: "fmul", ast.Div: "fdiv"}
_INT_OPS = {ast.Add: "add nsw", ast.Sub: "sub nsw", ast.Mult: "mul nsw"}  # Numba's signed arithmetic: no wrap
_BIT_OPS = {ast.BitAnd: "and", ast.BitOr: "or", ast.BitXor: "xor"}
_FCMP = {ast.Lt: "olt", ast.Gt: "ogt", ast.LtE: "ole", ast.GtE: "oge", ast.Eq: "oeq", ast.NotEq: "une"}
_ICMP = {ast.Lt: "slt", ast.Gt: "sgt", ast.LtE: "sle", ast.GtE: "sge", ast.Eq: "eq", ast.NotEq: "ne"}
_FLOATS = ("float", "double")
_INTS = ("i32", "i64")
_WIDTH = {"float": 32, "double": 64, "i1": 1, "i32": 32, "i64": 64}


def _float_const(value):
    """An LLVM float or double constant: the value's double bits in hex (exact for float32 values)."""
    return "0x%016X" % struct.unpack("<Q", struct.pack("<d", float(value)))[0]


class _Array:
    """A ``carray`` view: its element type, base pointer and shape (values)."""

    def __init__(self, ty, ptr, shape):
        self.ty, self.ptr, self.shape = ty, ptr, shape


class _Writer:
    """One function's IR: allocas in the entry block, then the body's blocks."""

    def __init__(self, module, ftype, flags, widened=False):
        self.module, self.F, self.flags = module, ftype, flags
        self.allocas, self.lines = [], []
        self.slots, self.arrays = {}, {}
        self.n = 0
        self.open = True
        self.declares = {}
        self.metadata = []
        self.lane_group = None
        self.widened = widened  # its lane loops are to be widened by numba_widen (``loop``)
        self.libraries = {}
        names = module.__dict__
        self.as_int, self.as_float, self.int_t = names.get("as_int"), names.get("as_float"), names.get("I")
        self.I = "i32" if ftype == "float" else "i64"

    # -- plumbing ---------------------------------------------------------
    def tmp(self):
        self.n += 1
        return f"%t{self.n}"

    def label(self, hint):
        self.n += 1
        return f"{hint}{self.n}"

    def emit(self, line):
        if not self.open:
            self.start(self.label("dead"))
        self.lines.append("  " + line)

    def start(self, label):
        if self.open:
            self.lines.append(f"  br label %{label}")
        self.lines.append(f"{label}:")
        self.open = True

    def branch(self, line):
        self.emit(line)
        self.open = False

    def op(self, text, ty):
        t = self.tmp()
        self.emit(f"{t} = {text}")
        return t, ty

    def fl(self):
        return " ".join(sorted(self.flags))

    def alloca(self, ty, hint):
        """A new stack slot of type ``ty`` in the entry block (promoted to registers by LLVM)."""
        self.n += 1
        ptr = f"%{hint}{self.n}"
        self.allocas.append(f"  {ptr} = alloca {ty}")
        return ptr

    def slot(self, name, ty):
        """The slot of local ``name`` (Numba keeps every local in one)."""
        if name in self.slots:
            if self.slots[name][1] != ty:
                raise Unsupported(f"{name} is assigned values of types {self.slots[name][1]} and {ty}")
            return self.slots[name][0]
        self.slots[name] = (self.alloca(ty, f"v.{name}."), ty)
        return self.slots[name][0]

    # -- values -----------------------------------------------------------
    def cast(self, value, ty):
        v, src = value
        if src == ty:
            return value
        if src in _FLOATS and ty in _FLOATS:
            return self.op(f"{'fpext' if _WIDTH[ty] > _WIDTH[src] else 'fptrunc'} {src} {v} to {ty}", ty)
        if src in _INTS and ty in _INTS:
            return self.op(f"{'sext' if _WIDTH[ty] > _WIDTH[src] else 'trunc'} {src} {v} to {ty}", ty)
        if src in _INTS and ty in _FLOATS:
            return self.op(f"sitofp {src} {v} to {ty}", ty)
        if src == "i1" and ty in _INTS:
            return self.op(f"zext i1 {v} to {ty}", ty)
        raise Unsupported(f"a cast from {src} to {ty}")

    def unify(self, a, b):
        """Numba's type of a binary operation on values of types ``a`` and ``b``."""
        if a == b and a != "i32":
            return a
        if a in _FLOATS and b in _FLOATS:
            return "double"
        if a in _INTS and b in _INTS:
            return "i64"
        if {a, b} <= {"double", "i32", "i64"}:
            return "double"
        raise Unsupported(f"an operation on {a} and {b}")

    def expr(self, node):
        method = getattr(self, "x_" + type(node).__name__, None)
        if method is None:
            raise Unsupported(f"expression {ast.unparse(node)}")
        return method(node)

    def x_Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            return ("1" if v else "0"), "i1"
        if isinstance(v, int):
            return str(v), "i64"
        if isinstance(v, float):
            return _float_const(v), "double"
        raise Unsupported(f"constant {v!r}")

    def x_Name(self, node):
        name = node.id
        if name in self.slots:
            ptr, ty = self.slots[name]
            return self.op(f"load {ty}, ptr {ptr}", ty)
        value = self.module.__dict__.get(name)
        if isinstance(value, (np.float32, np.float64)):
            ty = "float" if isinstance(value, np.float32) else "double"
            return _float_const(value), ty
        raise Unsupported(f"name {name}")

    def x_BinOp(self, node):
        return self.binop(type(node.op), self.expr(node.left), self.expr(node.right), node)

    def binop(self, kind, left, right, node):
        """``left <kind> right`` (values), as Numba types and computes it (``node``: for messages)."""
        if kind in _BIT_OPS:
            ty = "i1" if left[1] == right[1] == "i1" else self.unify(left[1], right[1])
            if ty not in ("i1", "i64"):
                raise Unsupported("a bitwise operation on floats")
            a, b = self.cast(left, ty), self.cast(right, ty)
            return self.op(f"{_BIT_OPS[kind]} {ty} {a[0]}, {b[0]}", ty)
        if kind is ast.Div and left[1] in _INTS and right[1] in _INTS:
            ty = "double"
        elif kind is ast.Pow:
            ty = "double"
        else:
            ty = self.unify(left[1], right[1])
        a, b = self.cast(left, ty), self.cast(right, ty)
        if ty in _FLOATS:
            if kind is ast.Pow:
                self.declares["llvm.pow.f64"] = "declare double @llvm.pow.f64(double, double)"
                return self.op(f"call {self.fl()} double @llvm.pow.f64(double {a[0]}, double {b[0]})", ty)
            if kind not in _FLOAT_OPS:
                raise Unsupported(f"float operator {ast.unparse(node) if node else kind.__name__}")
            return self.op(f"{_FLOAT_OPS[kind]} {self.fl()} {ty} {a[0]}, {b[0]}", ty)
        if kind in _INT_OPS:
            return self.op(f"{_INT_OPS[kind]} i64 {a[0]}, {b[0]}", ty)
        if kind in (ast.FloorDiv, ast.Mod):
            return self.floor_div_mod(a[0], b[0], kind is ast.Mod)
        raise Unsupported(f"integer operator {ast.unparse(node) if node else kind.__name__}")

    def floor_div_mod(self, a, b, mod):
        """Python's ``a // b`` or ``a % b`` (rounding toward minus infinity; the divisor is never 0 here)."""
        q, _ = self.op(f"sdiv i64 {a}, {b}", "i64")
        r, _ = self.op(f"srem i64 {a}, {b}", "i64")
        nz, _ = self.op(f"icmp ne i64 {r}, 0", "i1")
        sx, _ = self.op(f"xor i64 {r}, {b}", "i64")
        neg, _ = self.op(f"icmp slt i64 {sx}, 0", "i1")
        fix, _ = self.op(f"and i1 {nz}, {neg}", "i1")
        if mod:
            rb, _ = self.op(f"add i64 {r}, {b}", "i64")
            return self.op(f"select i1 {fix}, i64 {rb}, i64 {r}", "i64")
        q1, _ = self.op(f"sub i64 {q}, 1", "i64")
        return self.op(f"select i1 {fix}, i64 {q1}, i64 {q}", "i64")

    def x_UnaryOp(self, node):
        v = self.expr(node.operand)
        if isinstance(node.op, ast.USub):
            if v[1] in _FLOATS:  # Numba's negation: -0.0 - x
                return self.op(f"fsub {self.fl()} {v[1]} 0x8000000000000000, {v[0]}", v[1])
            v = self.cast(v, "i64")
            return self.op(f"sub i64 0, {v[0]}", "i64")
        if isinstance(node.op, ast.Invert) and v[1] == "i1":  # Numba: ~ of a boolean is not
            return self.op(f"xor i1 {v[0]}, 1", "i1")
        raise Unsupported(f"unary {ast.unparse(node)}")

    def x_Compare(self, node):
        if len(node.ops) != 1:
            raise Unsupported("a chained comparison")
        left, right = self.expr(node.left), self.expr(node.comparators[0])
        ty = self.unify(left[1], right[1])
        a, b = self.cast(left, ty), self.cast(right, ty)
        kind = type(node.ops[0])
        if ty in _FLOATS:
            return self.op(f"fcmp {self.fl()} {_FCMP[kind]} {ty} {a[0]}, {b[0]}", "i1")
        return self.op(f"icmp {_ICMP[kind]} i64 {a[0]}, {b[0]}", "i1")

    def truth(self, value):
        if value[1] == "i1":
            return value[0]
        if value[1] in _INTS:
            return self.op(f"icmp ne {value[1]} {value[0]}, 0", "i1")[0]
        raise Unsupported("the truth of a float")

    def x_BoolOp(self, node):
        """``and``/``or`` with Python's short circuit (a later operand may divide by a zero the first excludes)."""
        result = self.alloca("i1", "b")
        done = self.label("bool.done")
        for i, operand in enumerate(node.values):
            v = self.truth(self.expr(operand))
            self.emit(f"store i1 {v}, ptr {result}")
            if i < len(node.values) - 1:
                nxt = self.label("bool.next")
                if isinstance(node.op, ast.And):
                    self.branch(f"br i1 {v}, label %{nxt}, label %{done}")
                else:
                    self.branch(f"br i1 {v}, label %{done}, label %{nxt}")
                self.start(nxt)
        self.start(done)
        return self.op(f"load i1, ptr {result}", "i1")

    def x_IfExp(self, node):
        """``x if c else y`` as Numba lowers it: branches, the value through a slot."""
        c = self.truth(self.expr(node.test))
        yes_l, no_l, done = self.label("if.yes"), self.label("if.no"), self.label("if.done")
        self.branch(f"br i1 {c}, label %{yes_l}, label %{no_l}")
        self.start(yes_l)
        yes = self.expr(node.body)
        result = self.alloca(yes[1], "c")
        self.emit(f"store {yes[1]} {yes[0]}, ptr {result}")
        self.branch(f"br label %{done}")
        self.start(no_l)
        no = self.expr(node.orelse)
        if no[1] != yes[1]:
            if self.unify(yes[1], no[1]) != yes[1]:
                raise Unsupported(f"a conditional expression of types {yes[1]} and {no[1]}")
            no = self.cast(no, yes[1])
        self.emit(f"store {yes[1]} {no[0]}, ptr {result}")
        self.start(done)
        return self.op(f"load {yes[1]}, ptr {result}", yes[1])

    def x_Subscript(self, node):
        ptr, ty = self.element(node)
        return self.op(f"load {ty}, ptr {ptr}{self.group()}", ty)

    def group(self):
        """The access-group tag of a memory access inside a loop over lanes (see ``loop``)."""
        return f", !llvm.access.group !{self.lane_group}" if self.lane_group is not None else ""

    def element(self, node):
        """The address and element type of ``array[index]``."""
        if not isinstance(node.value, ast.Name) or node.value.id not in self.arrays:
            raise Unsupported(f"subscript {ast.unparse(node)}")
        arr = self.arrays[node.value.id]
        idx = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if len(idx) != len(arr.shape) or any(isinstance(i, ast.Slice) for i in idx):
            raise Unsupported(f"subscript {ast.unparse(node)}")
        flat = self.cast(self.expr(idx[0]), "i64")[0]
        for dim, i in zip(arr.shape[1:], idx[1:]):  # row-major
            scaled = self.op(f"mul i64 {flat}, {dim}", "i64")[0]
            flat = self.op(f"add i64 {scaled}, {self.cast(self.expr(i), 'i64')[0]}", "i64")[0]
        return self.op(f"getelementptr {arr.ty}, ptr {arr.ptr}, i64 {flat}", "ptr")[0], arr.ty

    def x_Call(self, node):
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise Unsupported(f"call {ast.unparse(node)}")
        name = node.func.id
        fn = self.module.__dict__.get(name)
        args = [self.expr(a) for a in node.args]
        if name == "float" and len(args) == 1:
            return self.cast(args[0], "double")
        if name == "min" and len(args) == 2 and all(a[1] in _INTS for a in args):
            a, b = (self.cast(v, "i64")[0] for v in args)
            lt = self.op(f"icmp slt i64 {a}, {b}", "i1")[0]
            return self.op(f"select i1 {lt}, i64 {a}, i64 {b}", "i64")
        if fn is None or len(args) == 0:
            raise Unsupported(f"call {ast.unparse(node)}")
        if fn is self.module.__dict__.get("F"):
            return self.cast(args[0], self.F)
        if fn is self.int_t:
            return self.cast(args[0], self.I)
        if fn is self.as_int and args[0][1] == self.F:
            return self.op(f"bitcast {self.F} {args[0][0]} to {self.I}", self.I)
        if fn is self.as_float and args[0][1] == self.I:
            return self.op(f"bitcast {self.I} {args[0][0]} to {self.F}", self.F)
        if fn is numba_fusion.fma and len(args) == 3:
            return self.fma(*args)
        if name == "sel" and len(args) == 3:
            c = self.truth(args[0])
            ty = args[1][1] if args[1][1] == args[2][1] else self.unify(args[1][1], args[2][1])
            x, y = self.cast(args[1], ty), self.cast(args[2], ty)
            return self.op(f"select i1 {c}, {ty} {x[0]}, {ty} {y[0]}", ty)
        if fn is np.sqrt and len(args) == 1 and args[0][1] in _FLOATS:
            ty = args[0][1]
            lib = "sqrtf" if ty == "float" else "sqrt"
            self.declares[lib] = f"declare {ty} @{lib}({ty}) nounwind readonly"
            return self.op(f"call {self.fl()} {ty} @{lib}({ty} {args[0][0]}){self.group()}", ty)
        if hasattr(fn, "overloads") and len(args) == 1 and args[0][1] in _FLOATS:
            return self.call_jitted(fn, args[0])
        raise Unsupported(f"call {ast.unparse(node)}")

    def fma(self, a, b, c):
        """``a * b + c`` as ``numba_fusion.fma`` computes it: one rounding
        where the product and the sum have one float type and the CPU has
        FMA instructions, else the product and the sum as written."""
        prod = self.unify(a[1], b[1])
        ty = self.unify(prod, c[1])
        if not (prod == ty and ty in _FLOATS and numba_fusion.has_fma()):
            return self.binop(ast.Add, self.binop(ast.Mult, a, b, None), c, None)
        a, b, c = (self.cast(v, ty)[0] for v in (a, b, c))
        name = f"llvm.fma.{'f32' if ty == 'float' else 'f64'}"
        self.declares[name] = f"declare {ty} @{name}({ty}, {ty}, {ty})"
        return self.op(f"call {self.fl()} {ty} @{name}({ty} {a}, {ty} {b}, {ty} {c})", ty)

    def call_jitted(self, dispatcher, arg):
        """A Numba function of one float, called by Numba's calling convention
        (status, return slot, exception slot); its library is linked in."""
        from numba.core import types

        nbty = types.float32 if arg[1] == "float" else types.float64
        library, name, returns = jitted_library(dispatcher, nbty)
        if returns != str(nbty):
            raise Unsupported(f"{dispatcher.__name__} returns {returns}")
        self.libraries[name] = library
        self.declares[name] = f'declare i32 @"{name}"(ptr, ptr, {arg[1]})'
        ret, exc = self.alloca(arg[1], "r"), self.alloca("ptr", "e")
        self.emit(f'call i32 @"{name}"(ptr {ret}, ptr {exc}, {arg[1]} {arg[0]})')
        return self.op(f"load {arg[1]}, ptr {ret}", arg[1])

    # -- statements -------------------------------------------------------
    def stmts(self, body):
        for node in body:
            method = getattr(self, "s_" + type(node).__name__, None)
            if method is None:
                raise Unsupported(f"statement {ast.unparse(node)[:80]}")
            method(node)

    def s_Expr(self, node):
        call = node.value
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) in self.functions:
            return self.call_address(call)
        if not (isinstance(call, ast.Constant) and isinstance(call.value, str)):  # a docstring
            raise Unsupported(f"statement {ast.unparse(node)[:80]}")

    def call_address(self, call):
        """A call of a C function passed by address (a chunk function, from
        the driver): its arguments are pointer arguments, passed on, and
        integers."""
        args = []
        for a in call.args:
            if isinstance(a, ast.Name) and a.id in self.pointers:
                args.append(f"ptr %arg.{a.id}")
            else:
                v = self.cast(self.expr(a), "i64")
                args.append(f"i64 {v[0]}")
        self.emit(f"call void %arg.{call.func.id}({', '.join(args)})")

    def s_Pass(self, node):
        pass

    def s_Assign(self, node):
        if len(node.targets) != 1:
            raise Unsupported("a chained assignment")
        target = node.targets[0]
        if isinstance(target, ast.Tuple):
            if not isinstance(node.value, ast.Tuple) or len(node.value.elts) != len(target.elts):
                raise Unsupported("an unpacking assignment")
            values = [self.expr(v) for v in node.value.elts]  # all evaluated first, as Python does
            for t, v in zip(target.elts, values):
                self.store(t, v)
            return
        value = node.value
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "carray":
            return self.bind_carray(target, value)
        if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Slice):
            return self.fill(target, self.expr(value))
        self.store(target, self.expr(value))

    def s_AugAssign(self, node):
        load = ast.copy_location(ast.BinOp(left=_as_load(node.target), op=node.op, right=node.value), node)
        self.store(node.target, self.expr(load))

    def store(self, target, value):
        if isinstance(target, ast.Name):
            if target.id in self.arrays:
                raise Unsupported(f"rebinding the array {target.id}")
            ptr = self.slot(target.id, value[1])
            self.emit(f"store {value[1]} {value[0]}, ptr {ptr}")
        elif isinstance(target, ast.Subscript):
            ptr, ty = self.element(target)
            if (value[1] in _FLOATS and ty in _FLOATS) or (value[1] in _INTS and ty in _INTS):
                value = self.cast(value, ty)  # Numba's setitem casts within a kind
            if value[1] != ty:
                raise Unsupported(f"storing {value[1]} into a {ty} array")
            self.emit(f"store {ty} {value[0]}, ptr {ptr}{self.group()}")
        else:
            raise Unsupported(f"assignment to {ast.unparse(target)}")

    def bind_carray(self, target, call):
        if not isinstance(target, ast.Name) or len(call.args) != 2 or not isinstance(call.args[1], ast.Tuple):
            raise Unsupported(f"carray {ast.unparse(call)}")
        pointer = call.args[0]
        if not isinstance(pointer, ast.Name) or pointer.id not in self.pointers:
            raise Unsupported(f"carray of {ast.unparse(pointer)}")
        shape = [self.cast(self.expr(d), "i64")[0] for d in call.args[1].elts]
        self.arrays[target.id] = _Array(self.pointers[pointer.id], f"%arg.{pointer.id}", shape)

    def fill(self, target, value):
        """``array[lo:hi] = scalar``: a loop of stores."""
        s = target.slice
        if s.step is not None or s.lower is None or s.upper is None:
            raise Unsupported(f"slice {ast.unparse(target)}")
        name = f"_fill{self.n}"
        loop = ast.For(target=ast.Name(id=name, ctx=ast.Store()),
                       iter=ast.Call(func=ast.Name(id="range", ctx=ast.Load()), args=[s.lower, s.upper], keywords=[]),
                       body=[], orelse=[])
        elem = ast.Subscript(value=target.value, slice=ast.Name(id=name, ctx=ast.Load()), ctx=ast.Store())
        self.loop(loop, lambda: self.store(elem, value), lanes=True)

    def s_For(self, node):
        self.loop(node, lambda: self.stmts(node.body), lanes=_over_lanes(node))

    def loop(self, node, body, lanes=False):
        """``for v in range([start,] stop)``: Numba's loop shape (a test in the
        header, the index in a slot). A loop over ``lanes`` is marked parallel
        (``llvm.loop.parallel_accesses``, its memory accesses in one access
        group): LLVM then skips its pairwise dependence analysis of the
        accesses, which grew with the square of an unrolled body's loads and
        stores (H = 32 with Adam: 0.6 s in LoopLoadElimination, 0.7 s in the
        vectoriser). The code it vectorises is the same. In a function
        ``numba_widen`` widens it is also marked not to unroll: a small lane
        body (the looped kernel's one parameter step) was unrolled by two,
        which ``numba_widen`` does not widen. (Elsewhere LLVM may unroll it:
        the driver's scalar copies into and out of the chunks ran 5-20 %
        of a run slower when they could not be unrolled.)"""
        it = node.iter
        if (node.orelse or not isinstance(node.target, ast.Name) or not isinstance(it, ast.Call)
                or getattr(it.func, "id", None) != "range" or not 1 <= len(it.args) <= 2):
            raise Unsupported(f"loop {ast.unparse(node.iter)}")
        bounds = [self.cast(self.expr(a), "i64")[0] for a in it.args]
        start, stop = (["0"] + bounds)[-2:]
        counter = self.alloca("i64", "i")
        self.emit(f"store i64 {start}, ptr {counter}")
        head, body_l, end = self.label("for.head"), self.label("for.body"), self.label("for.end")
        self.start(head)
        i = self.op(f"load i64, ptr {counter}", "i64")[0]
        more = self.op(f"icmp slt i64 {i}, {stop}", "i1")[0]
        self.branch(f"br i1 {more}, label %{body_l}, label %{end}")
        self.start(body_l)
        self.emit(f"store i64 {i}, ptr {self.slot(node.target.id, 'i64')}")
        if lanes:
            self.lane_group = len(self.metadata)
            self.metadata.append(f"!{self.lane_group} = distinct !{{}}")
        body()
        nxt = self.op(f"add i64 {i}, 1", "i64")[0]
        self.emit(f"store i64 {nxt}, ptr {counter}")
        if lanes:
            m = len(self.metadata)
            hints = [f'!{m + 1} = !{{!"llvm.loop.parallel_accesses", !{self.lane_group}}}']
            if self.widened:
                hints.append(f'!{m + 2} = !{{!"llvm.loop.unroll.disable"}}')
            self.metadata += [f"!{m} = distinct !{{{', '.join(f'!{m + i}' for i in range(len(hints) + 1))}}}", *hints]
            self.lane_group = None
            self.branch(f"br label %{head}, !llvm.loop !{m}")
        else:
            self.branch(f"br label %{head}")
        self.start(end)

    def s_If(self, node):
        c = self.truth(self.expr(node.test))
        yes, no, done = self.label("then"), self.label("else"), self.label("endif")
        self.branch(f"br i1 {c}, label %{yes}, label %{no}")
        self.start(yes)
        self.stmts(node.body)
        if self.open:
            self.branch(f"br label %{done}")
        self.start(no)
        self.stmts(node.orelse)
        self.start(done)


_LINKED = {}


def jitted_library(dispatcher, nbty):
    """(library, symbol, return type) of the Numba function ``dispatcher``
    (a math function) compiled for one argument of type ``nbty``: this
    process's, or fastxor's cache entry of it, or compiled by Numba (and the
    entry written). Why an entry of fastxor's own: Numba's loads its cache
    through its typing registries, which took 0.12-0.27 s of a new variant's
    wait; an entry is Numba's own serialised library, unserialised as Numba
    does."""
    import sys

    from numba.core.registry import cpu_target

    key = (dispatcher.py_func.__module__, dispatcher.__name__, str(nbty))
    if key in _LINKED:
        return _LINKED[key]
    path = cache_file(sys.modules[key[0]], f"{key[1]}_{key[2]}")
    found = None
    if path is not None and path.exists() and (nbty,) not in dispatcher.overloads:
        try:
            state = pickle.loads(path.read_bytes())
            library = cpu_target.target_context.codegen().unserialize_library(state["library"])
            found = library, state["symbol"], state["returns"]
        except Exception:  # a broken entry: compiled again
            path.unlink(missing_ok=True)
            jit_cache.discarded([path])
    if found is None:
        dispatcher.compile((nbty,))  # from Numba's cache when it has one
        cres = dispatcher.overloads[(nbty,)]
        found = cres.library, cres.fndesc.mangled_name, str(cres.signature.return_type)
        if path is not None:
            try:
                data = pickle.dumps({"library": cres.library.serialize_using_object_code(),
                                     "symbol": found[1], "returns": found[2]})
            except Exception:  # a library compiled without its object code kept: no entry
                data = None
            if data is not None:
                jit_cache.write_file(path, data)
    _LINKED[key] = found
    return found


def _names(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _over_lanes(loop):
    """Whether no two iterations of ``loop`` touch the same array element: it
    is innermost, and every element it writes, and every element it reads of
    an array it writes, is indexed by its variable (or a local computed from
    it: ``k = blk * 8 + kk``). Why that suffices for the generated kernels:
    their offsets are ``row * C + lane`` with C, the chunk, at least the trip
    count, so distinct lanes never meet (``numba_kernel._lane_loop``)."""
    lane, written, accesses = {loop.target.id}, set(), []
    for stmt in loop.body:  # one walk of each statement: the largest bodies have 3 000 lines
        nodes = list(ast.walk(stmt))
        if any(isinstance(n, (ast.For, ast.While)) for n in nodes):
            return False
        accesses += [n for n in nodes if isinstance(n, ast.Subscript)]
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AugAssign) else []
        written |= {_names(t.value).pop() for t in targets if isinstance(t, ast.Subscript)}
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name) and \
                {n.id for n in nodes if isinstance(n, ast.Name) and n is not stmt.targets[0]} & lane:
            lane.add(stmt.targets[0].id)
    return all(_names(n.slice) & lane for n in accesses if _names(n.value) & written)


def _as_load(target):
    """An assignment's ``target`` as the expression that reads it (``a[i] += x`` reads ``a[i]``)."""
    return ast.parse(ast.unparse(target), mode="eval").body


def function_def(module, name):
    """The definition of ``name`` in the source ``jit_cache`` loaded ``module``
    from (also a module compiled in memory), parsed once per module, its
    multiply-adds written out (``numba_fusion.fuse``)."""
    if "_syntax_tree" not in module.__dict__:
        module._syntax_tree = numba_fusion.fuse(ast.parse(module.FASTXOR_KEY[1]))
    return next((f for f in module._syntax_tree.body if getattr(f, "name", None) == name), None)


def translate(module, fname, signature, flags, widened=False):
    """The LLVM IR module text of ``module.<fname>`` compiled for the Numba
    ``signature`` (void; pointers, int64, and ``voidptr`` for the address of
    a C function it calls), its C symbol, and the Numba libraries it calls
    into."""
    from numba.core import types

    fn = function_def(module, fname)
    if not isinstance(fn, ast.FunctionDef) or fn.decorator_list or signature.return_type != types.void:
        raise Unsupported(f"{fname} is no plain function returning nothing")
    F = {np.float32: "float", np.float64: "double"}[module.F]
    w = _Writer(module, F, flags, widened)
    w.pointers, w.functions, params = {}, set(), []
    llty = {types.float32: "float", types.float64: "double", types.int64: "i64"}
    for arg, ty in zip(fn.args.args, signature.args):
        if ty == types.voidptr:  # a C function's address, called as a statement
            w.functions.add(arg.arg)
            params.append(f"ptr %arg.{arg.arg}")
        elif isinstance(ty, types.CPointer):
            w.pointers[arg.arg] = llty[ty.dtype]
            params.append(f"ptr %arg.{arg.arg}")
        elif ty == types.int64:
            params.append(f"i64 %arg.{arg.arg}")
            w.emit(f"store i64 %arg.{arg.arg}, ptr {w.slot(arg.arg, 'i64')}")
        else:
            raise Unsupported(f"argument type {ty}")
    w.stmts(fn.body)
    if w.open:
        w.emit("ret void")
    symbol = f"fastxor_direct.{module.__name__}.{fname}"
    text = "\n".join([
        f'define void @"{symbol}"({", ".join(params)}) {{',
        "entry:",
        *w.allocas,
        "  br label %body",
        "body:",
        *w.lines,
        "}",
        *w.declares.values(),
        *w.metadata,
    ])
    return text, symbol, list(w.libraries.values())


class CompiledChunk:
    """A compiled chunk function, passed to the driver as Numba passes a
    ``cfunc``: a first-class function of the same signature (so the driver's
    cached compile is the same one). ``from_cache``: loaded, not compiled;
    ``widened``: its lane loops vectorised by ``numba_widen``."""

    def __init__(self, library, symbol, signature, from_cache, widened=False):
        self.library, self.symbol, self._signature, self.from_cache = library, symbol, signature, from_cache
        self.widened = widened
        self.address = library.get_pointer_to_function(symbol)
        if not self.address:
            raise RuntimeError(f"no code for {symbol}")

    def __wrapper_address__(self):
        return self.address

    def signature(self):
        return self._signature


#: This translator's version (and its widening's): an edit never reuses code it compiled before.
_TRANSLATOR = hashlib.sha256(b"".join((Path(__file__).parent / f).read_bytes() for f in (
    "numba_direct_ir.py", "numba_widen.py", "numba_fusion.py"))).hexdigest()[:8]


def cache_file(module, fname):
    """The cache entry of ``module.<fname>`` on this machine (None: compiled
    in memory): keyed by the CPU Numba compiles for and the compiler versions,
    as Numba keys its own, and by this translator's version."""
    import llvmlite
    import numba
    from numba.core.registry import cpu_target

    if not module.CACHE:
        return None
    from .. import config

    codegen = cpu_target.target_context.codegen()
    machine = "|".join((codegen._get_host_cpu_name(), codegen._get_host_cpu_features(), numba.__version__,
                        llvmlite.__version__, _TRANSLATOR, "widen" if config.NUMBA_WIDEN else "llvm"))
    return jit_cache.compiled_file(module.__name__, fname, hashlib.sha256(machine.encode()).hexdigest()[:16])


def object_code(path):
    """The machine code (an ELF object) in a cache entry."""
    return pickle.loads(path.read_bytes())["library"][2][0]


def _scalar_library(codegen, name):
    """A code library of ``codegen`` whose optimisation runs without LLVM's
    loop and SLP vectorisers. Why: the loop vectoriser takes about half of a
    large unrolled body's compile (most of it in its VPlan common-subexpression
    step, which no option turns off). Code that runs once per network and
    run (the final pass) or does no arithmetic (the driver) gains nothing
    from vectors: a new variant's final pass compiles in a third of the time
    (H = 32 with Adam: 0.3 against 0.9 s; 4-bit parity at H = 16: 0.6
    against 2.2 s). A training kernel is optimised this way before
    ``numba_widen`` vectorises it (``_widened``)."""
    base = type(codegen)._library_class

    class ScalarLibrary(base):
        def _optimize_functions(self, ll_module):
            ll_module.data_layout = self._codegen._data_layout
            for func in ll_module.functions:
                fpm, pb = self._codegen._function_pass_manager(loop_vectorize=False, slp_vectorize=False)
                fpm.run(func, pb)

        def _optimize_final_module(self):  # Numba's two passes (a cheap inlining one, then the full one)
            c = self._codegen
            for kwargs in (dict(opt=c._opt_level, cost="cheap"), {}):
                mpm, pb = c._module_pass_manager(loop_vectorize=False, slp_vectorize=False, **kwargs)
                mpm.run(self._final_module, pb)

    return ScalarLibrary(codegen, name)


def _optimised(library):
    """The LLVM IR text of ``library`` (with its modules added) linked and
    optimised as ``finalize`` would, without generating machine code."""
    for lib in library._linking_libraries:
        library._final_module.link_in(lib._get_module_for_linking(), preserve=True)
    library._optimize_final_module()
    return str(library._final_module)


def _codegen_only(codegen, name):
    """A code library of ``codegen`` for IR that is already optimised
    (``numba_widen``'s): only LLVM's instruction combiner runs on it, as it
    runs after LLVM's own vectoriser, to simplify the lanes' masks."""
    import llvmlite.binding as ll

    base = type(codegen)._library_class

    class CodegenOnly(base):
        def _optimize_functions(self, ll_module):
            ll_module.data_layout = self._codegen._data_layout

        def _optimize_final_module(self):
            pm, pb = ll.ModulePassManager(), self._codegen._pass_builder()
            pm.add_instruction_combine_pass()
            pm.run(self._final_module, pb)

    return CodegenOnly(codegen, name)


_LANES = {}


def vector_lanes(element):
    """How many ``element`` values ("float", "double") LLVM's loop vectoriser
    puts in a vector on this CPU (as Numba compiles for it), read off a
    small loop it vectorises: ``numba_widen`` uses the same width, so the
    kernels keep their speed (Zen 4: 16 floats; an AVX2 CPU: 8)."""
    from numba.core.registry import cpu_target

    if element not in _LANES:
        codegen = cpu_target.target_context.codegen()
        ir = (f"define void @probe(ptr noalias %a, ptr noalias %b) {{\nentry:\n  br label %loop\nloop:\n"
              f"  %i = phi i64 [ 0, %entry ], [ %j, %loop ]\n"
              f"  %p = getelementptr {element}, ptr %a, i64 %i\n  %q = getelementptr {element}, ptr %b, i64 %i\n"
              f"  %x = load {element}, ptr %p\n  %y = load {element}, ptr %q\n"
              f"  %z = fmul contract {element} %x, %y\n  %s = fadd contract {element} %z, %x\n"
              f"  store {element} %s, ptr %p\n  %j = add nuw nsw i64 %i, 1\n  %c = icmp eq i64 %j, 1024\n"
              f"  br i1 %c, label %done, label %loop\ndone:\n  ret void\n}}\n")
        library = _loaded(codegen.create_library("fastxor_vector_lanes"), _for_target(codegen, ir))
        widths = [int(w) for w in re.findall(rf"<(\d+) x {element}>", _optimised(library))]
        _LANES[element] = max(widths, default=1)
    return _LANES[element]


def entry_name(fname, vectorise):
    """The name ``fname``'s compiled code goes by (in the cache, in a module's compiled functions)."""
    return fname if vectorise else f"{fname}_scalar"


def _for_target(codegen, text):
    """LLVM IR ``text`` headed by the target ``codegen`` compiles for."""
    return f'target triple = "{codegen._llvm_module.triple}"\ntarget datalayout = "{codegen._data_layout}"\n{text}'


def _loaded(library, text, libraries=()):
    """``library`` holding the LLVM IR ``text`` (verified), the Numba
    ``libraries`` it calls linked in."""
    import llvmlite.binding as ll

    ir_module = ll.parse_assembly(text)
    ir_module.verify()
    library.add_llvm_module(ir_module)
    for lib in libraries:
        library.add_linking_library(lib)
    return library


def _widened(codegen, name, text, symbol, libraries):
    """A library (not finalised) holding the IR ``text`` optimised as scalar
    code with its lane loops widened by ``numba_widen``; None where that
    module does not widen it (LLVM's vectoriser compiles it then)."""
    import logging

    from . import numba_widen

    scalar = _loaded(_scalar_library(codegen, name), text, libraries)
    try:
        wide = numba_widen.widen(_optimised(scalar), symbol, vector_lanes)
    except numba_widen.Unsupported as e:
        logging.getLogger("fastxor").debug("%s: LLVM vectorises it (%s)", name, e)
        return None
    return _loaded(_codegen_only(codegen, name), wide)


def compile_chunk(module, fname, signature, vectorise=True):
    """``module.<fname>`` compiled through LLVM IR, or loaded from the cache;
    raises ``Unsupported`` for source outside the kernel language.
    ``vectorise=False``: without LLVM's vectorisers (``_scalar_library``),
    a separate cache entry."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target
    from numba.core.types.function_type import WrapperAddressProtocol
    from numba.experimental import function_type  # noqa: F401 (how Numba types and unboxes the protocol)

    WrapperAddressProtocol.register(CompiledChunk)
    with global_compiler_lock:
        codegen = cpu_target.target_context.codegen()
        path = cache_file(module, entry_name(fname, vectorise))
        if path is not None and path.exists():
            try:
                state = pickle.loads(path.read_bytes())
                return CompiledChunk(codegen.unserialize_library(state["library"]), state["symbol"], signature, True,
                                     state.get("widened", False))
            except Exception:  # a broken entry (a killed writer, a full disk): compiled again
                path.unlink(missing_ok=True)
                jit_cache.discarded([path])
        from .. import config

        widen = vectorise and config.NUMBA_WIDEN
        text, symbol, libraries = translate(module, fname, signature, config.NUMBA_FASTMATH, widen)
        name = f"{module.__name__}.{fname}"
        text = _for_target(codegen, text)
        library = _widened(codegen, name, text, symbol, libraries) if widen else None
        widened = library is not None
        if library is None:
            library = _loaded(codegen.create_library(name) if vectorise else _scalar_library(codegen, name), text,
                              libraries)
        if path is not None:
            library.enable_object_caching()
        library.finalize()
        compiled = CompiledChunk(library, symbol, signature, False, widened)
        if path is not None:
            jit_cache.write_file(path, pickle.dumps({"library": library.serialize_using_object_code(),
                                                     "symbol": symbol, "widened": widened}))
        return compiled
