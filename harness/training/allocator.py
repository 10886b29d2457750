"""The C allocator keeps freed memory for the next tensor (``[train] keep_freed_memory``).

A training step allocates and frees the same large tensors again and again (activations, their
gradients, the logits). glibc serves a block above its mmap threshold (128 KiB at first, moving up
to at most 32 MiB as it sees blocks freed) with a fresh ``mmap`` and unmaps it on ``free``, and it
gives the top of its heap back to the system beyond a trim threshold. Every new tensor then touches
pages the kernel must fault in and zero: on the 2-core machine a forward+backward of the default
model took about 2.5 million page faults and a tenth of its time in the kernel.

:func:`keep_freed_memory` sets, through ``mallopt``:

    M_MMAP_THRESHOLD  32 MiB   blocks up to 32 MiB (glibc's largest) come from the heap, not mmap
    M_TRIM_THRESHOLD  2 GiB    freed heap memory stays with the process for reuse
    M_TOP_PAD         256 MiB  the heap grows in large steps

It changes no number a run computes, only where its memory comes from; the process keeps up to its
peak for reuse (peak RSS rose by about 0.1 GiB in the measurement). It is process-wide and lasts for
the life of the process, so every later run in the same process keeps it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from ..provenance import glibc

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, (2 << 30) - 1), (M_TOP_PAD, 256 << 20))


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` to this process's glibc allocator; False where that is not possible."""
    if not glibc():
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return all(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1 for param, value in SETTINGS)
