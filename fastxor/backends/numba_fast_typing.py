"""Numba's type inference, memoised while a fastxor kernel compiles.

Why: an unrolled kernel body applies the same few operators to the same
scalar types thousands of times (H = 5 Adam: about 2 300 calls of a dozen
kinds). For every one, Numba's ``Function.get_call_type`` tries each
registered template in turn (``operator.add`` has a dozen: sets, lists,
arrays, dates ...), and builds an error message for each that does not
match, so typing the body took a second. The answer depends only on the
typing context, the function type and the argument types, all hashable and
immutable, so the first answer is kept and reused: the kernel is typed,
lowered and compiled exactly as before (same signatures, same
implementations, same machine code), in about half the time.

Scope: the memo is consulted only inside ``memoised_call_types()``, which
holds Numba's compiler lock, so no other thread's compile sees it; a
failed resolution is never stored (it raises again as before). When a
Numba release renames the method, nothing is patched and compiles run at
the old speed.
"""
import contextlib

_MEMO = {}


def _memoised(original):
    def get_call_type(self, context, args, kws):
        try:
            key = (context, self, tuple(args), tuple(sorted(kws.items())))
            sig = _MEMO.get(key)
        except TypeError:  # an unhashable argument type: resolve as Numba does
            return original(self, context, args, kws)
        if sig is None:
            sig = original(self, context, args, kws)
            if sig is not None:
                _MEMO[key] = sig
        return sig

    return get_call_type


@contextlib.contextmanager
def memoised_call_types():
    """Numba's function typing memoised (see the module docstring) while
    the block compiles; re-entrant."""
    try:
        from numba.core.compiler_lock import global_compiler_lock
        from numba.core.types.functions import BaseFunction
        BaseFunction.__dict__["get_call_type"]
    except (ImportError, KeyError):  # another Numba: compile unpatched
        yield
        return
    with global_compiler_lock:
        if _PATCH["depth"] == 0:
            _PATCH["original"] = BaseFunction.__dict__["get_call_type"]
            BaseFunction.get_call_type = _memoised(_PATCH["original"])
        _PATCH["depth"] += 1
        try:
            yield
        finally:
            _PATCH["depth"] -= 1
            if _PATCH["depth"] == 0:
                BaseFunction.get_call_type = _PATCH["original"]


_PATCH = {"depth": 0, "original": None}
