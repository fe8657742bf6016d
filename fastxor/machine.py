"""What this machine has: CPU name, available memory, package versions.
/proc is read with portable fallbacks; one place for these readers, so the
memory guard, results files and the benchmark report agree."""
import os
import platform


def proc_field(path, key):
    """The value on the first ``key : value`` line of ``path`` (blanks around
    the key ignored: cpuinfo pads it with tabs), or None (no such file, as
    off Linux, or no such line)."""
    try:
        with open(path) as f:
            for line in f:
                name, sep, value = line.partition(":")
                if sep and name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return None


def usable_cores():
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_name():
    return proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()


#: The instruction-set features that decide what the kernels compile to (the
#: SIMD width, FMA) and how NumPy's exp/log round: a results file records
#: which of them its machine had.
SIMD_FEATURES = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512bf16",
                 "neon", "sve", "asimd")


def cpu_description():
    """The CPU as LLVM sees it: its microarchitecture (``znver4``,
    ``sapphirerapids``: under a hypervisor ``model name`` is often just
    "AMD EPYC") and which of SIMD_FEATURES it has; {} without llvmlite."""
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return {}
    features = llvm.get_host_cpu_features()
    return dict(cpu_arch=llvm.get_host_cpu_name(), cpu_flags=[f for f in SIMD_FEATURES if features.get(f)])


def memory_gib():
    """Total memory in GiB (one decimal), or None."""
    kib = proc_field("/proc/meminfo", "MemTotal")
    return round(int(kib.split()[0]) / 2**20, 1) if kib else None


def available_memory():
    """Bytes the OS could give us now, or None when it cannot say."""
    kib = proc_field("/proc/meminfo", "MemAvailable")
    if kib is not None:
        return int(kib.split()[0]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def versions(modules=("numba", "cupy", "torch")):
    """Versions of what produced a run: fastxor, Python, NumPy, and those of
    ``modules`` that are installed (read from package metadata: nothing is
    imported, so asking never loads CuPy or torch)."""
    from importlib import metadata

    import numpy as np

    from . import __version__

    out = {"fastxor": __version__, "python": platform.python_version(), "numpy": np.__version__}
    dists = {"cupy": ("cupy", "cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x")}
    for mod in modules:
        for dist in dists.get(mod, (mod,)):
            try:
                out[mod] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                pass
    return out


def install_hint(extra):
    """How to add an optional extra: from the checkout fastxor was installed
    from (the name ``fastxor`` on the package index is an unrelated project)."""
    where = "."
    try:
        import json
        from importlib import metadata

        url = json.loads(metadata.distribution("fastxor").read_text("direct_url.json") or "{}").get("url", "")
        if url.startswith("file://") and os.path.isdir(url[7:]):
            where = url[7:]
    except Exception:  # noqa: BLE001 - a hint never fails; '.' is the checkout's own spelling
        pass
    return f"pip install '{where}[{extra}]' (from the fastxor checkout; 'pip install fastxor' is another project)"


#: What to do when a run does not fit: said by every memory refusal.
MEMORY_ADVICE = ("use fewer networks, train in batches (start=...), a larger record_every, "
                 "or spread the run over several machines")


def require_memory(need, what):
    """Refuse with MemoryError, before anything is allocated, when ``need``
    bytes exceed ``config.MEMORY_FRACTION`` of the memory available now."""
    from . import config

    avail = available_memory()
    if avail is not None and need > config.MEMORY_FRACTION * avail:
        raise MemoryError(
            f"{what} needs about {need / 2**30:.1f} GiB, more than {config.MEMORY_FRACTION:.0%} of the "
            f"{avail / 2**30:.1f} GiB available; {MEMORY_ADVICE}"
        )
