"""How the C allocator (glibc's malloc, where the process runs on it) treats the large buffers images need.

A worker handles each file it processes as a few buffers of the file's size: the copy read back from quarantine,
the de-identified output. For a CT slice that is half a megabyte. glibc serves such a block from its heap once
one of that size was freed, but gives the top of the heap back to the kernel whenever more than twice that size
lies free there. The next file's buffer is then mapped again, page by page. The ingest's processing of 512x512
CT slices took about 125 page faults per slice that way, and 4.5 ms of CPU per slice instead of 4.0, 0.44 ms more
of it in the kernel (medians of 16 runs each, the two settings taking turns).

`keep_large_buffers` raises both thresholds. Blocks below `MMAP_THRESHOLD` come from the heap, and up to
settings.MALLOC_KEEP_FREE_MB of free heap stays with the process, so a steady stream of files reuses the same
pages. Larger blocks (a big multi-frame object) are still mapped and unmapped on their own. Every process
applies it when Django starts (CtimsConfig.ready): web, workers, commands.
"""

from __future__ import annotations

import ctypes

# glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 16 * 1024 * 1024  # glibc's largest allowed is 32 MiB on 64-bit


def keep_large_buffers(keep_free_bytes: int) -> bool:
    """Keep up to `keep_free_bytes` of freed heap, and take blocks below MMAP_THRESHOLD from the heap.

    Returns whether the allocator took both settings: False where it is not glibc's (no `mallopt`, as on macOS;
    musl's ignores it) or `keep_free_bytes` is 0, which leaves glibc's own adaptive thresholds in place.
    """
    if keep_free_bytes <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    trim = min(keep_free_bytes, 2**31 - 1)
    return bool(mallopt(M_MMAP_THRESHOLD, min(MMAP_THRESHOLD, trim))) and bool(mallopt(M_TRIM_THRESHOLD, trim))
