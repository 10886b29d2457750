"""The seccomp filter bubblewrap installs on the sandboxed program (``bwrap --seccomp FD``).

Built with libseccomp (Debian's ``libseccomp2``, ``libseccomp.so.2``, through :mod:`ctypes`), not
hand-assembled BPF: libseccomp resolves the names for this architecture, adds the architecture
check (a system call made through another ABI, e.g. ``int 0x80`` on x86-64, kills the process),
and emits the classic BPF program that the kernel (and bubblewrap) take. Standard library only, like
the rest of :mod:`grpo_bench.sandbox`.

The policy is a deny list modelled on Docker's default profile: everything is allowed except the
calls in :data:`DENIED` (each with its reason; ``docs/sandbox.md`` has the table), which fail with
``EPERM``; ``clone`` with a namespace flag fails with ``EPERM`` and ``clone3`` with ``ENOSYS`` (its
flags are in memory a filter cannot read; the C library then falls back to ``clone``), as Docker does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os

#: system call -> why the sandboxed program may not make it
DENIED = {
    "ptrace": "inspect or steer another process (the sandbox's init: clear its death signal, outlive the sample)",
    "process_vm_readv": "read another process's memory",
    "process_vm_writev": "write another process's memory",
    "kcmp": "compare kernel objects of other processes (an information leak)",
    "pidfd_getfd": "steal a descriptor from another process",
    "keyctl": "read or change kernel keyrings (a session keyring inherited from the harness is a channel)",
    "add_key": "create keys in a kernel keyring",
    "request_key": "look up keys in a kernel keyring",
    "bpf": "load eBPF programs (a large kernel attack surface)",
    "perf_event_open": "performance counters: side channels and a history of kernel bugs",
    "userfaultfd": "stall the kernel on a page fault at will (a standard exploit helper)",
    "mount": "change the mounts (the namespace is bubblewrap's, set up before the program runs)",
    "umount2": "uncover what bubblewrap mounted over",
    "move_mount": "new mount API", "open_tree": "new mount API", "fsopen": "new mount API",
    "fsconfig": "new mount API", "fsmount": "new mount API", "fspick": "new mount API",
    "mount_setattr": "new mount API (e.g. make a read-only mount writable)",
    "pivot_root": "change the root",
    "chroot": "change the root",
    "unshare": "new namespaces (a fresh user namespace gives capabilities over it: kernel attack surface)",
    "setns": "join another namespace",
    "kexec_load": "load a new kernel", "kexec_file_load": "load a new kernel",
    "init_module": "load a kernel module", "finit_module": "load a kernel module",
    "delete_module": "unload a kernel module",
    "reboot": "reboot or halt", "swapon": "change swap", "swapoff": "change swap",
    "acct": "process accounting", "syslog": "read the kernel log",
    "settimeofday": "set the clock", "clock_settime": "set the clock", "clock_adjtime": "set the clock",
    "adjtimex": "set the clock",
    "open_by_handle_at": "open files by handle, bypassing the mount namespace (the 'shocker' escape)",
    "name_to_handle_at": "file handles (pair of the above)",
    "quotactl": "disk quotas", "lookup_dcookie": "kernel profiling", "iopl": "I/O port access",
    "ioperm": "I/O port access", "vhangup": "hang up the terminal", "personality": "change the execution domain",
    "io_uring_setup": "io_uring: bypasses the seccomp filter for the calls it performs, many kernel bugs",
    "io_uring_enter": "io_uring", "io_uring_register": "io_uring",
    "uselib": "obsolete", "nfsservctl": "obsolete", "_sysctl": "obsolete", "ustat": "obsolete",
    "sysfs": "obsolete",
}
#: the namespace flags that ``clone`` may not carry
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
                         0x00000080)  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7


def SCMP_ACT_ERRNO(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class SeccompUnavailable(RuntimeError):
    """libseccomp cannot be loaded or a filter cannot be built."""


def _library() -> ctypes.CDLL:
    for name in ("libseccomp.so.2", ctypes.util.find_library("seccomp")):
        if name:
            try:
                lib = ctypes.CDLL(name, use_errno=True)
                break
            except OSError:
                continue
    else:
        raise SeccompUnavailable("libseccomp is not installed: apt-get install libseccomp2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _rule(lib: ctypes.CDLL, ctx: int, action: int, name: str, *cmps: _ArgCmp) -> bool:
    """Add one rule; False when this architecture has no such call (e.g. ``iopl`` on arm64)."""
    number = lib.seccomp_syscall_resolve_name(name.encode())
    if number < 0:
        return False
    array = (_ArgCmp * len(cmps))(*cmps) if cmps else None
    rc = lib.seccomp_rule_add_array(ctx, action, number, len(cmps), array)
    if rc < 0:
        raise SeccompUnavailable(f"seccomp_rule_add({name}): {os.strerror(-rc)}")
    return True


#: what the zygote (``GRPO_BENCH_SANDBOX=zygote``) may still call to build each sample's namespaces; every
#: sample then gets the full filter of :func:`bpf_program`, which denies these too
ZYGOTE_NEEDS = ("unshare", "mount", "keyctl")


@functools.lru_cache(maxsize=2)
def bpf_program(zygote: bool = False) -> bytes:
    """The filter as classic BPF (``struct sock_filter`` array), as ``bwrap --seccomp`` and
    ``prctl(PR_SET_SECCOMP)`` read it; ``zygote``: the zygote's own, without :data:`ZYGOTE_NEEDS`."""
    lib = _library()
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    try:
        for name in DENIED:
            if not (zygote and name in ZYGOTE_NEEDS):
                _rule(lib, ctx, SCMP_ACT_ERRNO(errno.EPERM), name)
        for flag in CLONE_NAMESPACE_FLAGS:  # one rule per flag: rules on one call are or-ed
            _rule(lib, ctx, SCMP_ACT_ERRNO(errno.EPERM), "clone", _ArgCmp(0, SCMP_CMP_MASKED_EQ, flag, flag))
        _rule(lib, ctx, SCMP_ACT_ERRNO(errno.ENOSYS), "clone3")
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _export(lib: ctypes.CDLL, ctx: int) -> bytes:
    read_fd, write_fd = os.pipe()
    try:
        rc = lib.seccomp_export_bpf(ctx, write_fd)
        os.close(write_fd)
        write_fd = -1
        if rc < 0:
            raise SeccompUnavailable(f"seccomp_export_bpf: {os.strerror(-rc)}")
        chunks = []
        while chunk := os.read(read_fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


def numbers() -> dict[str, int]:
    """System call numbers of :data:`DENIED` on this architecture (for tests and documentation)."""
    lib = _library()
    found = {name: lib.seccomp_syscall_resolve_name(name.encode()) for name in DENIED}
    return {name: number for name, number in found.items() if number >= 0}
