"""What this machine has: CPU name and available memory, read from Linux's
/proc with portable fallbacks. One place for both readers, so the memory
guard in ``training`` and the benchmark report in ``bench`` parse alike."""
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


def cpu_name():
    return proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()


def available_memory():
    """Bytes the OS could give us now, or None when it cannot say."""
    kib = proc_field("/proc/meminfo", "MemAvailable")
    if kib is not None:
        return int(kib.split()[0]) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
