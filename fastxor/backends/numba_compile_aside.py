"""A new variant's final pass compiled in a second process.

Why: Numba compiles one function at a time per process (a global lock), and
a new variant needs two, its training kernel and its final forward pass
(``finish_chunk``, 0.5-1.2 s). On two or more cores the final pass compiles
in a child process, into the kernel cache, while this process compiles the
training kernel; this process then loads it from the cache.

The child imports this same fastxor (its directory first on its path),
loads the kernel module from its file in the cache, and inherits the
environment, Numba's CPU settings included. Where its entry does not fit
after all, or the child fails or takes longer than ``WAIT_S``, this process
compiles as before: the child can cost time, never a result. Off when the
cache cannot be written, on one core, without an interpreter to start, and
with ``FASTXOR_COMPILE_ASIDE=0`` (the test suite, whose workers already use
every core).
"""
import os
import subprocess
import sys
from pathlib import Path

from .. import jit_cache
from ..machine import usable_cores

#: The child: compiles chunk function argv[3] of the kernel module file argv[2] into the cache, with the
#: fastxor in directory argv[1] (first on its path: ``python -c`` puts the working directory, which may
#: hold another fastxor, before PYTHONPATH; that one's entries would be keyed for its own sources).
_CHILD = """
import sys
sys.path.insert(0, sys.argv.pop(1))
from fastxor import jit_cache
from fastxor.backends import numba_kernel
module = jit_cache.load_file(sys.argv[1])
with numba_kernel.deep_recursion():
    numba_kernel.chunk_function(module, sys.argv[2])
"""


def start(module, name):
    """A child process compiling chunk function ``name`` of the kernel
    ``module`` (loaded from the cache) into the cache, or None where it
    would not help or cannot start."""
    if (os.environ.get("FASTXOR_COMPILE_ASIDE", "1") == "0" or not module.CACHE or jit_cache.cache_dir() is None
            or usable_cores() < 2 or not sys.executable):  # embedded Python: no interpreter to start
        return None
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, FASTXOR_CACHE_DIR=str(jit_cache.cache_dir()),
               PYTHONPATH=os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p))
    try:
        return subprocess.Popen([sys.executable, "-c", _CHILD, package_parent, module.__file__, name], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:  # no process to spare: this one compiles
        return None


#: Seconds to wait for a child. A final pass compiles in 0.5-1.2 s: a child still
#: busy after this is stuck (a ``sys.executable`` that is no plain Python, a hung filesystem).
WAIT_S = 60


def wait(child):
    """Wait for a child of ``start`` (None: nothing to wait for); one that
    takes longer than ``WAIT_S`` is stopped, and this process compiles instead."""
    if child is not None:
        try:
            child.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            stop(child)


def stop(child):
    """Stop a child of ``start`` at once (this process stops compiling: an error, Ctrl-C)."""
    if child is not None:
        child.kill()
        child.wait()
