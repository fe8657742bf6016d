"""A chunk function's lane loops made vector code by fastxor, after LLVM's
scalar optimisation, instead of by LLVM's loop vectoriser.

Why: on a large unrolled body the loop vectoriser is half of a new
variant's compile (LLVM 22: H = 32 with Adam, 1.4 of 2.8 s; most of it in
its VPlan common-subexpression step, which no option turns off). Its job
here is simple, because every lane is a network of its own: the loops over
lanes (``numba_direct_ir`` marks them parallel) have a constant trip count,
read and write each array at consecutive addresses per lane, and branch only
inside the inlined math functions (the sigmoid's range checks). So LLVM
optimises the kernel as scalar code (``numba_direct_ir._scalar_library``:
the same passes up to the vectoriser, so its reassociation leaves the same
operand orders), this module rewrites each lane loop to run ``lanes``
networks per iteration, with every instruction widened one for one and the
branches turned into selects, and LLVM only generates the machine code. The
code generator sees the same vector operations as after LLVM's vectoriser,
so it fuses the same multiply-adds: the results are the same bits (tests
compare the two on random recipes and programs; ``bench/bitcheck.py``).

Anything else raises ``Unsupported`` and the caller vectorises with LLVM.
The IR is read as text, in the form LLVM prints it.
"""
import re


class Unsupported(Exception):
    """IR this module does not widen: LLVM's loop vectoriser compiles it."""


_NAME = r'%(?:"[^"]+"|[-\w.$]+)'
_LABEL = re.compile(r'^("[^"]+"|[-\w.$]+):')
_DEF = re.compile(rf"^\s+({_NAME}) = (.*)$")
_FLOAT_OPS = {"fadd", "fsub", "fmul", "fdiv", "frem"}
_INT_OPS = {"add", "sub", "mul", "shl", "lshr", "ashr", "and", "or", "xor", "sdiv", "udiv", "srem", "urem"}
_CASTS = {"bitcast", "sitofp", "uitofp", "fptosi", "fptoui", "fpext", "fptrunc", "sext", "zext", "trunc"}
#: C library calls LLVM's vectoriser turns into its vector intrinsics (NumPy's sqrt lowers to them).
_LIBM = {"sqrtf": "llvm.sqrt.f32", "sqrt": "llvm.sqrt.f64"}
_GEP = re.compile(rf"getelementptr (?:inbounds |nuw |nusw )*(\w+), ptr ({_NAME}), i64 ({_NAME}|-?\d+)$")
_INDEX = re.compile(rf"(?:add|or)(?: nuw| nsw| disjoint)* i64 ({_NAME}|\d+), ({_NAME}|\d+)$")
_LOAD = re.compile(rf"load (\w+), ptr ({_NAME})(.*)$")
_BINARY = re.compile(r"(\w+)((?: [a-z]+)*) (\w+) ([^,]+), (.+)$")
_FNEG = re.compile(r"fneg((?: [a-z]+)*) (\w+) (.+)$")
_COMPARE = re.compile(r"(\w+)((?: [a-z]+)*) (\w+) (\w+) ([^,]+), (.+)$")
_SELECT = re.compile(r"select((?: [a-z]+)*) i1 ([^,]+), (\w+) ([^,]+), \w+ (.+)$")
_CAST = re.compile(r"(\w+) (\w+) (.+) to (\w+)$")
_CALL = re.compile(r"(?:tail )?call((?: [a-z]+)*) (\w+) @([\w.]+)\((.*)\)(.*)$")
_STORE = re.compile(rf"store (\w+) (.+), ptr ({_NAME})(.*)$")
_ARITHMETIC = re.compile(r"= (fadd|fsub|fmul|fdiv|fneg|fcmp|call|tail call) ")


def _label(name):
    return name if re.fullmatch(r"[-\w.$]+", name) else f'"{name}"'


def _targets(term):
    return [t.strip('"') for t in re.findall(r'label %("[^"]+"|[-\w.$]+)', term)]


def _names(text):
    return set(re.findall(_NAME, text))


def widen(module_text, symbol, lanes):
    """``module_text`` (LLVM IR) with each parallel lane loop of function
    ``symbol`` running ``lanes(element type)`` lanes per iteration."""
    lines = module_text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith("define") and
                  (f'@"{symbol}"(' in line or f"@{symbol}(" in line)), None)
    if start is None:
        raise Unsupported(f"no function {symbol}")
    end = lines.index("}", start)
    parallel = _parallel_loop_ids(lines)
    w = _Function(lines[start + 1:end], parallel, lanes)
    if not w.widened:
        raise Unsupported("no lane loop")
    declared = {m.group(1) for line in lines if line.startswith("declare") for m in [re.search(r"@([\w.]+)\(", line)]}
    extra = [d for name, d in sorted(w.declares.items()) if name not in declared]
    return "\n".join(lines[:start + 1] + w.lines() + lines[end:] + extra)


def _parallel_loop_ids(lines):
    """The loop metadata ids whose loops ``numba_direct_ir`` marked parallel."""
    groups = {m.group(1) for line in lines for m in [re.match(r'(!\d+) = !\{!"llvm.loop.parallel_accesses"', line)] if m}
    return {m.group(1) for line in lines for m in [re.match(r"(!\d+) = distinct !\{!\d+(.*)\}$", line)]
            if m and set(re.findall(r"!\d+", m.group(2))) & groups}


class _Function:
    """One function's blocks, its lane loops widened in place."""

    def __init__(self, body, parallel, lanes):
        self.blocks, label, current = [], None, []
        for line in body:
            m = _LABEL.match(line)
            if m:
                if label is not None or current:
                    self.blocks.append([label, current])
                label, current = m.group(1).strip('"'), []
            elif line.strip():
                current.append(line)
        self.blocks.append([label, current])
        self.lanes, self.declares, self.count, self.widened = lanes, {}, 0, 0
        self.chunk = {"%arg.a_p"}  # the chunk state ``a`` and addresses within it (``_Lane.in_chunk``)
        for line in body:
            m = _DEF.match(line)
            g = m and _GEP.match(m.group(2))
            if g and g.group(2) in self.chunk:
                self.chunk.add(m.group(1))
        for label, insts in list(self.blocks):
            m = re.search(r"!llvm.loop (!\d+)", insts[-1])
            if m and m.group(1) in parallel:
                try:
                    self.widen_loop(label)
                    self.widened += 1
                except Unsupported:
                    if _ARITHMETIC.search("\n".join(self.loop_lines(label))):
                        raise  # its vector code rounds as the vectoriser's would: all such loops, or none
                    # a loop that only copies (the loss history): its bits do not depend on how

    def lines(self):
        out = []
        for label, insts in self.blocks:
            if label is not None:
                out.append(f"{_label(label)}:")
            out += insts
        return out

    def fresh(self, hint):
        self.count += 1
        return f"%w.{hint}.{self.count}"

    def region(self, latch):
        """(header, the loop's blocks in layout order) of the loop closed by ``latch``."""
        order = [b[0] for b in self.blocks]
        by = dict((b[0], b[1]) for b in self.blocks)
        heads = [t for t in _targets(by[latch][-1])  # (the exit may have a phi of the latch too: an outer loop's)
                 if order.index(t) <= order.index(latch)
                 and any(" = phi " in line and f"%{_label(latch)} ]" in line for line in by[t])]
        if len(heads) != 1:
            raise Unsupported("no loop header")
        i0, i1 = order.index(heads[0]), order.index(latch)
        if i0 > i1:
            raise Unsupported("a loop laid out backwards")
        return heads[0], order[i0:i1 + 1]

    def loop_lines(self, latch):
        by = dict((b[0], b[1]) for b in self.blocks)
        try:
            return [line for b in self.region(latch)[1] for line in by[b]]
        except Unsupported:
            return by[latch]

    def widen_loop(self, latch):
        header, loop = self.region(latch)
        order = [b[0] for b in self.blocks]
        by = dict((b[0], b[1]) for b in self.blocks)
        at = {b: i for i, b in enumerate(loop)}
        succ, preds = {}, {b: [] for b in loop}
        for b in loop:
            succ[b] = []
            for t in _targets(by[b][-1]):
                if b == latch and t == header:
                    continue
                if t in at:
                    if at[t] <= at[b]:
                        raise Unsupported("a loop inside the lane loop")
                    succ[b].append(t)
                    preds[t].append(b)
                elif b != latch:
                    raise Unsupported("an exit before the latch")
        outside = [b for b in order if b not in loop and header in _targets(by[b][-1])]
        if len(outside) != 1:
            raise Unsupported("no single preheader")
        pre = outside[0]
        # the induction variable: 0, 1, ... trip - 1
        iv_line = by[header][0]
        m = re.match(rf"\s+({_NAME}) = phi i64 (.*)$", iv_line)
        incoming = _incoming(m.group(2)) if m else []
        if len(incoming) != 2 or [v for v, p in incoming if p != latch] != ["0"]:
            raise Unsupported("no induction variable from 0")
        iv = m.group(1)
        if any(" = phi " in line for line in by[header][1:]):
            raise Unsupported("a value carried from one lane to the next")
        step = next(v for v, p in incoming if p == latch)
        tail = by[latch]
        cm = re.match(rf"\s+({_NAME}) = icmp eq i64 {re.escape(step)}, (\d+)$", tail[-2])
        step_line = next((line for line in tail if re.fullmatch(
            rf"\s+{re.escape(step)} = add nuw nsw i64 {re.escape(iv)}, 1", line)), None)
        if not cm or step_line is None or not re.match(rf"\s+br i1 {re.escape(cm.group(1))}, ", tail[-1]):
            raise Unsupported("no latch counting to a constant")
        trip = int(cm.group(2))
        text = "\n".join(line for b in loop for line in by[b])
        widths = [self.lanes(t) for t in sorted(set(re.findall(r"\b(float|double)\b", text)))]
        V = min(widths, default=1)
        while V > 1 and trip % V:
            V //= 2
        if V < 2:
            raise Unsupported("no lanes to put side by side")
        defined = {d.group(1) for b in loop for line in by[b] for d in [_DEF.match(line)] if d}
        after = "\n".join(line for b in order if b not in loop for line in by[b])
        if _names(after) & (defined - {iv}):
            raise Unsupported("a value of the loop used after it")
        # blocks on every path from the header to the latch run for every lane
        paths_in, paths_out = {header: 1}, {latch: 1}
        for b in loop[1:]:
            paths_in[b] = sum(paths_in[p] for p in preds[b])
        for b in reversed(loop[:-1]):
            paths_out[b] = sum(paths_out[t] for t in succ[b])
        always = {b for b in loop if paths_in[b] * paths_out[b] == paths_out[header]}
        lane = _Lane(self, V, iv, defined, self.chunk)
        edge = {}  # (block, successor) -> its lanes' mask (None: all lanes)
        for b in loop:
            mask = None
            if b not in always:
                for e in (edge[(p, b)] for p in preds[b]):
                    mask = e if mask is None else lane.logic("or", mask, e)
            for line in by[b]:
                s = line.strip()
                if line is iv_line or line is step_line or (b == latch and line in tail[-2:]):
                    continue
                if s.startswith("br "):
                    bm = re.match(rf"br i1 ({_NAME}|true|false), label %(\S+), label %(\S+)$", s)
                    if bm:
                        c = lane.mask(bm.group(1))
                        yes, no = bm.group(2).strip('"'), bm.group(3).strip('"')
                        edge[(b, yes)] = c if mask is None else lane.logic("and", mask, c)
                        edge[(b, no)] = lane.logic("and", mask, lane.negate(c)) if mask else lane.negate(c)
                    else:
                        edge[(b, _targets(s)[0])] = mask
                elif s.startswith("store "):
                    if mask is not None:
                        raise Unsupported("a store on some lanes only")
                    lane.store(s)
                else:
                    d = _DEF.match(line)
                    if not d:
                        raise Unsupported(s)
                    if d.group(2).startswith("phi "):
                        incoming = sorted(_incoming(d.group(2)), key=lambda vp: at[vp[1]])  # in layout order
                        lane.join(d.group(1), d.group(2), [(v, edge[(p, b)]) for v, p in incoming])
                    else:
                        op = d.group(2).split()[0]
                        if mask is not None and (op in ("sdiv", "udiv", "srem", "urem") or op == "load" and not
                                                 lane.in_chunk(d.group(2))):
                            raise Unsupported(f"a {op} on some lanes only")  # run on every lane, it could fault
                        lane.instruction(d.group(1), d.group(2))
        nxt, done = self.fresh("next"), self.fresh("done")
        body = [re.sub(rf"\[ {re.escape(step)}, %[^\]]+\]", f"[ {nxt}, %{_label(header)} ]", iv_line),
                *lane.out, f"  {nxt} = add nuw nsw i64 {iv}, {V}", f"  {done} = icmp eq i64 {nxt}, {trip}",
                re.sub(r"^(\s+br i1 )[^,]+,", lambda m: f"{m.group(1)}{done},", tail[-1])]
        blocks = []
        for label, insts in self.blocks:
            if label == header:
                blocks.append([label, body])
            elif label == pre:
                blocks.append([label, insts[:-1] + lane.hoisted + insts[-1:]])
            elif label not in loop:
                blocks.append([label, insts])
        self.blocks = blocks
        self.declares.update(lane.declares)


def _incoming(phi):
    return [(v.strip(), p.strip('"')) for v, p in re.findall(r"\[ ([^,]+), %(\"[^\"]+\"|[-\w.$]+) \]", phi)]


class _Lane:
    """The widened instructions of one loop body. Values are ``v`` (one per
    lane: a vector), ``u`` (the same for every lane: kept scalar, broadcast
    where a vector needs it), ``i`` (the lane index plus a uniform: an
    element index) or ``p`` (the address of lane 0's element of
    consecutive ones)."""

    def __init__(self, fn, lanes, iv, defined, chunk):
        self.fn, self.V, self.defined = fn, lanes, defined
        self.kind = {iv: "i"}
        self.chunk = set(chunk)  # addresses within the chunk state ``a``
        self.out, self.hoisted, self.broadcasts, self.declares = [], [], {}, {}

    def vt(self, ty):
        return f"<{self.V} x {ty}>"

    def of(self, value):
        return self.kind.get(value, "u") if value.startswith("%") else "u"

    def vector(self, value, ty):
        """``value`` (of scalar type ``ty``) as a vector operand."""
        value = value.strip()
        if self.of(value) == "v":
            return value
        if self.of(value) in "ip":
            raise Unsupported(f"an index used as a number: {value}")
        if not value.startswith("%"):
            return "poison" if value in ("poison", "undef") else f"splat ({ty} {value})"
        key = (value, ty)
        if key not in self.broadcasts:
            name = self.fn.fresh("splat")
            where = self.out if value in self.defined else self.hoisted
            where += [f"  {name}.0 = insertelement {self.vt(ty)} poison, {ty} {value}, i64 0",
                      f"  {name} = shufflevector {self.vt(ty)} {name}.0, {self.vt(ty)} poison, "
                      f"<{self.V} x i32> zeroinitializer"]
            self.broadcasts[key] = name
        return self.broadcasts[key]

    def in_chunk(self, load):
        """Whether ``load`` reads the lanes' elements of the chunk state ``a``
        (argument ``a_p``), which holds every row for every lane: safe on any lane."""
        m = _LOAD.match(load)
        return bool(m) and m.group(2) in self.chunk

    def mask(self, cond):
        return self.vector(cond, "i1")

    def logic(self, op, a, b):
        """Masks ``a`` and/or/xor ``b``; "and" and "or" in the logical form
        LLVM's vectoriser writes (selects), which its instruction combiner
        then simplifies as it does the vectoriser's."""
        name, vt = self.fn.fresh(op), self.vt("i1")
        if op == "and":
            self.out.append(f"  {name} = select {vt} {a}, {vt} {b}, {vt} zeroinitializer")
        elif op == "or":
            self.out.append(f"  {name} = select {vt} {a}, {vt} splat (i1 true), {vt} {b}")
        else:
            self.out.append(f"  {name} = {op} {vt} {a}, {b}")
        return name

    def negate(self, a):
        return self.logic("xor", a, "splat (i1 true)")

    def join(self, name, rhs, incoming):
        """A phi where the branches meet: a select on each incoming edge's mask."""
        ty = rhs.split()[1]
        if len({v for v, _ in incoming}) == 1 and self.of(incoming[0][0]) != "v":
            self.kind[name] = self.of(incoming[0][0])
            self.out.append(f"  {name} = select i1 true, {ty} {incoming[0][0]}, {ty} {incoming[0][0]}")
            return
        self.kind[name] = "v"
        result = self.vector(incoming[0][0], ty)  # then each further edge's value on its lanes (as LLVM blends)
        for j, (value, mask) in enumerate(incoming[1:]):
            if mask is None:
                raise Unsupported("a join entered from a block all lanes run")
            target = name if j == len(incoming) - 2 else self.fn.fresh("phi")
            self.out.append(f"  {target} = select {self.vt('i1')} {mask}, {self.vt(ty)} "
                            f"{self.vector(value, ty)}, {self.vt(ty)} {result}")
            result = target

    def store(self, s):
        m = _STORE.match(s)
        if not m or self.of(m.group(3)) != "p":
            raise Unsupported(f"a store not to each lane's element: {s}")
        ty, value, ptr, rest = m.groups()
        self.out.append(f"  store {self.vt(ty)} {self.vector(value, ty)}, ptr {ptr}{rest}")

    def instruction(self, name, rhs):
        op = rhs.split()[0]
        if op == "getelementptr":
            m = _GEP.match(rhs)
            if not m:
                raise Unsupported(rhs)
            element, base, index = m.groups()
            kinds = (self.of(base), self.of(index))
            if kinds == ("u", "u"):
                self.kind[name] = "u"
            elif kinds == ("u", "i") and element in ("float", "double"):
                self.kind[name] = "p"  # the lanes' consecutive elements
                if base in self.chunk:
                    self.chunk.add(name)
            elif kinds == ("p", "u") and element == "i8" and not index.startswith("%"):
                self.kind[name] = "p"  # another row of them
                if base in self.chunk:
                    self.chunk.add(name)
            else:
                raise Unsupported(rhs)
            self.out.append(f"  {name} = {rhs}")
            return
        kinds = {self.of(v) for v in _names(rhs)}
        if op in ("add", "or") and kinds & {"i"}:
            m = _INDEX.match(rhs)
            if not m or sorted((self.of(m.group(1)), self.of(m.group(2)))) != ["i", "u"]:
                raise Unsupported(f"the lane index in {rhs}")
            self.kind[name] = "i"
            self.out.append(f"  {name} = {rhs}")
            return
        if op == "load":
            m = _LOAD.match(rhs)
            if not m:
                raise Unsupported(rhs)
            if self.of(m.group(2)) == "p":
                self.kind[name] = "v"
                self.out.append(f"  {name} = load {self.vt(m.group(1))}, ptr {m.group(2)}{m.group(3)}")
            elif self.of(m.group(2)) == "u":
                self.kind[name] = "u"
                self.out.append(f"  {name} = {rhs}")
            else:
                raise Unsupported(rhs)
            return
        if kinds & {"i", "p"}:
            raise Unsupported(f"the lane index in {rhs}")
        if kinds <= {"u"}:
            self.kind[name] = "u"
            self.out.append(f"  {name} = {rhs}")
            return
        self.kind[name] = "v"
        vt, vec = self.vt, self.vector
        if op in _FLOAT_OPS or op in _INT_OPS:
            m = _BINARY.match(rhs)
            o, flags, ty, a, b = m.groups()
            self.out.append(f"  {name} = {o}{flags} {vt(ty)} {vec(a, ty)}, {vec(b, ty)}")
        elif op == "fneg":
            flags, ty, a = _FNEG.match(rhs).groups()
            self.out.append(f"  {name} = fneg{flags} {vt(ty)} {vec(a, ty)}")
        elif op in ("fcmp", "icmp"):
            o, flags, pred, ty, a, b = _COMPARE.match(rhs).groups()
            self.out.append(f"  {name} = {o}{flags} {pred} {vt(ty)} {vec(a, ty)}, {vec(b, ty)}")
        elif op == "select":
            flags, c, ty, a, b = _SELECT.match(rhs).groups()
            cond = f"{vt('i1')} {c}" if self.of(c) == "v" else f"i1 {c}"
            self.out.append(f"  {name} = select{flags} {cond}, {vt(ty)} {vec(a, ty)}, {vt(ty)} {vec(b, ty)}")
        elif op in _CASTS:
            o, ty, a, to = _CAST.match(rhs).groups()
            self.out.append(f"  {name} = {o} {vt(ty)} {vec(a, ty)} to {vt(to)}")
        elif op in ("call", "tail"):
            m = _CALL.match(rhs)
            fn = m and _LIBM.get(m.group(3), m.group(3))
            im = m and re.fullmatch(r"llvm\.(\w+)\.(f32|f64)", fn)
            if not im:
                raise Unsupported(f"a call: {rhs}")
            flags, ty, args = m.group(1), m.group(2), [a.strip().split(" ", 1) for a in m.group(4).split(",")]
            vfn = f"llvm.{im.group(1)}.v{self.V}{im.group(2)}"
            self.declares[vfn] = f"declare {vt(ty)} @{vfn}({', '.join(vt(t) for t, _ in args)})"
            operands = ", ".join(f"{vt(t)} {vec(v, t)}" for t, v in args)
            self.out.append(f"  {name} = call{flags} {vt(ty)} @{vfn}({operands})")
        else:
            raise Unsupported(rhs)
