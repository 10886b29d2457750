"""Run untrusted Python (a program, then its tests) in a throwaway, limited process on Linux.

Layers, each used where this machine allows it (probed once per process, see :func:`isolation`):

* a fresh temporary working directory, removed afterwards. With a private mount namespace it is
  a size-limited tmpfs, and so are ``/tmp``, ``/var/tmp`` and ``/dev/shm``: nothing reaches disk;
* a new session (process group), killed as a whole with SIGKILL at the wall-clock limit;
* when the harness runs as root, the child runs as a fresh unprivileged uid/gid (unique per run,
  no supplementary groups, ``no_new_privs``): it cannot change root-owned files, signal the
  harness or read its ``/proc/<pid>/environ``, and every process it leaves behind, even one that
  left the process group, is found by uid and killed;
* resource limits: CPU seconds, address space, processes (per uid), file size, open files, no core;
* an environment holding only a minimal ``PATH``, and ``python -I -B`` (isolated mode). With a
  sandbox uid the interpreter is the first of ``$GRPO_BENCH_SANDBOX_PYTHON``, the harness's own
  (symlinks resolved), its base, ``python3`` on that PATH, that the uid can execute (a pyenv
  under ``/root`` is not); programs should need the standard library only;
* no network: a new network namespace (its loopback is down). Where the kernel refuses, the runner
  replaces ``socket.socket`` before the program runs; that is weaker (ctypes or a subprocess such
  as ``curl`` gets around it) and :attr:`Isolation.net_namespace` says which one is in force;
* stdout and stderr read incrementally and capped (the rest is read and dropped).

Verdict: the parent sends the runner a random nonce on stdin, which the runner reads to EOF and
replaces with ``/dev/null`` before any program code runs. The runner writes ``READY <nonce>`` to a
private pipe, compiles the program and the tests, runs them in one namespace, and only when both
finish without an exception writes ``PASS <nonce>`` and leaves with ``os._exit``. Exit codes,
printed text, ``sys.exit(0)`` or ``os._exit(0)`` before the asserts, replaced builtins, a fake
``AssertionError`` (``assert`` raises the real one) or a patched ``os.write`` never count as a pass.
Not covered, because the program shares the runner's interpreter: deliberate introspection of the
runner's frame to find the nonce, trace hooks that jump over lines, and return values whose
``__eq__`` always answers True.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import json
import logging
import math
import os
import resource
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
UID_BASE = 1 << 30  # fresh uids: UID_BASE + 16 * pid + n, far from real accounts
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 2, 4, 1 << 14, 1 << 18
PR_SET_NO_NEW_PRIVS = 38

RUNNER = r'''
import os, sys
def _main(fd):
    import json, traceback
    write, exit_, exec_, compile_ = os.write, os._exit, exec, compile
    job = json.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    ready, ok = ("READY %s\n" % job["nonce"]).encode(), ("PASS %s\n" % job["nonce"]).encode()
    if job["block_sockets"]:
        import socket, _socket
        class BlockedSocket(socket.socket):
            def __init__(self, *args, **kwargs):
                raise PermissionError("network access is disabled in this sandbox")
        socket.socket = _socket.socket = BlockedSocket
    write(fd, ready)
    try:
        code = [compile_(job[part], "<%s>" % part, "exec") for part in ("program", "tests")]
        del job
        scope = {"__name__": "__sandbox__"}
        for c in code:
            exec_(c, scope)
    except BaseException:
        try:
            traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            exit_(1)
    write(fd, ok)
    try:
        sys.stdout.flush()
    finally:
        exit_(0)
_main(int(sys.argv[1]))
'''


@dataclass(frozen=True)
class Limits:
    """Per-run limits; ``wall_s`` should stay below the scorer's reward timeout."""

    wall_s: float = 5.0
    memory_mb: int = 1024  # address space (RLIMIT_AS)
    nproc: int = 32  # processes of the sandbox uid (RLIMIT_NPROC)
    file_mb: int = 16  # largest file it may write (RLIMIT_FSIZE)
    nofile: int = 64  # open files (RLIMIT_NOFILE)
    scratch_mb: int = 64  # tmpfs size of the working directory (mount namespace only)
    output_bytes: int = 64 * 1024  # kept of each of stdout and stderr


@dataclass
class Result:
    status: str  # "passed" | "failed" | "timeout" | "error" (the sandbox itself failed)
    reason: str = ""
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    exit_code: int | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Isolation:
    python: str  # interpreter the program runs under (must be usable by the sandbox uid)
    drop_user: bool
    net_namespace: bool
    mount_namespace: bool


def run_tests(program: str, tests: str, limits: Limits = Limits()) -> Result:
    """Run ``program`` then ``tests`` (Python source) in the sandbox; passed only if both finish."""
    try:
        return _run(isolation(), program, tests, limits)
    except OSError as exc:  # no temp dir, no pipes, out of descriptors...: the sandbox failed, not the program
        return Result("error", f"sandbox setup failed: {type(exc).__name__}: {exc}")


@functools.lru_cache(maxsize=1)
def isolation() -> Isolation:
    """The strongest configuration that works here (tried once per process, strongest first)."""
    root = os.geteuid() == 0
    tried = []
    for drop in (True, False) if root else (False,):
        pythons = _python_candidates(world=True) if drop else [sys.executable]
        for net, mnt in ((True, True), (True, False), (False, False)):
            for py in pythons:
                iso = Isolation(py, drop, net, mnt)
                r = _run(iso, "x = 6 * 7", "assert x == 42", Limits(wall_s=10.0))
                if r.passed:
                    log.info("code sandbox: %s", iso)
                    return iso
                tried.append(f"{iso}: {r.status} {r.reason}")
    log.warning("code sandbox: no configuration works here:\n%s", "\n".join(tried))
    return Isolation(sys.executable, False, False, False)


def _python_candidates(world: bool) -> list[str]:
    names = [os.environ.get("GRPO_BENCH_SANDBOX_PYTHON"), sys.executable, getattr(sys, "_base_executable", None),
             shutil.which("python3", path=SAFE_PATH)]
    out = []
    for name in filter(None, names):
        real = os.path.realpath(name)
        if real not in out and os.path.isfile(real) and (not world or _world_usable(real)):
            out.append(real)
    return out


def _world_usable(path: str) -> bool:
    """Every directory on the way is searchable by others, and the file readable and executable."""
    try:
        if os.stat(path).st_mode & (stat.S_IROTH | stat.S_IXOTH) != (stat.S_IROTH | stat.S_IXOTH):
            return False
        parent = os.path.dirname(path)
        while parent and parent != "/":
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            parent = os.path.dirname(parent)
        return True
    except OSError:
        return False


_libc = ctypes.CDLL(None, use_errno=True)
_serial = itertools.count()


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _fresh_uid() -> int:
    return UID_BASE + 16 * (os.getpid() % (1 << 22)) + next(_serial) % 16


def _preexec(iso: Isolation, limits: Limits, uid: int | None, workdir: str):
    """What the child does between fork and exec (as root where we are root)."""
    root = os.geteuid() == 0
    flags = (CLONE_NEWNET if iso.net_namespace else 0) | (CLONE_NEWNS if iso.mount_namespace else 0)
    if flags and not root:
        flags |= CLONE_NEWUSER
    owner = f",uid={uid},gid={uid},mode=0700" if uid is not None else ",mode=1777"
    work_opts = f"size={limits.scratch_mb}m{owner}".encode()
    scratch = [d.encode() for d in SCRATCH_DIRS if os.path.isdir(d)]
    nproc = limits.nproc if uid is not None else limits.nproc + _count_processes(os.getuid())
    mb = 1 << 20
    rlimits = [(resource.RLIMIT_CPU, math.ceil(limits.wall_s) + 1), (resource.RLIMIT_AS, limits.memory_mb * mb),
               (resource.RLIMIT_FSIZE, limits.file_mb * mb), (resource.RLIMIT_NOFILE, limits.nofile),
               (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, nproc)]

    def child() -> None:
        if flags:
            _check(_libc.unshare(flags), "unshare")
        if iso.mount_namespace:
            _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
            for d in scratch:
                _check(_libc.mount(b"tmpfs", d, b"tmpfs", MS_NOSUID | MS_NODEV, b"size=16m,mode=1777"), "mount tmpfs")
            os.makedirs(workdir, exist_ok=True)
            _check(_libc.mount(b"tmpfs", workdir.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, work_opts), "mount workdir")
        for res, value in rlimits:
            resource.setrlimit(res, (value, value))
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        os.chdir(workdir)

    return child


def _processes(uid: int) -> list[int]:
    """Live (not zombie) processes whose real, effective or saved uid is ``uid``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
        except (OSError, ValueError):
            continue
        if str(uid) in fields.get("Uid", "").split()[:3] and fields.get("State", "Z").split()[0] not in "ZX":
            found.append(int(name))
    return found


def _count_processes(uid: int) -> int:
    return len(_processes(uid))


def _kill_all(pgid: int, uid: int | None) -> None:
    """SIGKILL the child's process group, then (with a sandbox uid) every process of that uid."""
    try:
        os.killpg(pgid, signal.SIGKILL)  # the leader is not reaped yet, so its pgid is not reused
    except OSError:
        pass
    for _ in range(100 if uid is not None else 0):
        pids = _processes(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


class _Capture:
    """The first ``cap`` bytes and the last 4 kB of a stream, and its total size."""

    def __init__(self, cap: int):
        self.cap, self.head, self.tail, self.total = cap, bytearray(), b"", 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        if len(self.head) < self.cap:
            self.head += data[: self.cap - len(self.head)]
        self.tail = (self.tail + data)[-4096:]

    def text(self) -> str:
        more = f"\n[... {self.total - len(self.head)} more bytes]" if self.total > len(self.head) else ""
        return self.head.decode("utf-8", "replace") + more


class _Pump:
    """Feeds the payload to stdin and reads stdout, stderr and the result pipe without threads."""

    def __init__(self, proc: subprocess.Popen, result_fd: int, payload: bytes, cap: int):
        self.proc, self.payload, self.sent = proc, payload, 0
        self.sel = selectors.DefaultSelector()
        self.out = {"stdout": _Capture(cap), "stderr": _Capture(cap), "result": _Capture(4096)}
        for name, fd in (("stdout", proc.stdout.fileno()), ("stderr", proc.stderr.fileno()), ("result", result_fd)):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, name)
        os.set_blocking(proc.stdin.fileno(), False)
        self.sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "stdin")
        try:
            self.pidfd = os.pidfd_open(proc.pid)
            self.sel.register(self.pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):
            self.pidfd = None

    def exited(self) -> bool:
        try:  # WNOWAIT: the child stays a zombie, so its pid (and pgid) cannot be reused before we kill
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:  # reaped elsewhere (e.g. SIGCHLD ignored)
            return True

    def run_until(self, deadline: float, stop_on_exit: bool = True) -> bool:
        """Pump until the child exits (True) or the deadline passes (False)."""
        while True:
            if stop_on_exit and self.exited():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.sel.get_map():
                return False
            step = remaining if self.pidfd is not None else min(remaining, 0.02)
            for key, _ in self.sel.select(step):
                self._handle(key)

    def _handle(self, key) -> None:
        name = key.data
        if name == "exit":
            self.sel.unregister(key.fd)
        elif name == "stdin":
            try:
                self.sent += os.write(key.fd, self.payload[self.sent:self.sent + 65536])
            except BlockingIOError:
                return
            except OSError:
                self.sent = len(self.payload)
            if self.sent >= len(self.payload):
                self.sel.unregister(key.fd)
                self.proc.stdin.close()
        else:
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                self.out[name].add(data)
            else:
                self.sel.unregister(key.fd)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
        self.sel.close()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


def _run(iso: Isolation, program: str, tests: str, limits: Limits) -> Result:
    nonce = secrets.token_hex(16)
    uid = _fresh_uid() if iso.drop_user else None
    payload = json.dumps({"nonce": nonce, "program": program, "tests": tests,
                          "block_sockets": not iso.net_namespace}).encode()
    workdir = tempfile.mkdtemp(prefix="grpo-sandbox-")
    result_r, result_w = os.pipe()
    start = time.monotonic()
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        try:
            proc = subprocess.Popen(
                [iso.python, "-I", "-B", "-c", RUNNER, str(result_w)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(result_w,), env={"PATH": SAFE_PATH},
                start_new_session=True, preexec_fn=_preexec(iso, limits, uid, workdir))
        except (OSError, subprocess.SubprocessError) as exc:
            return Result("error", f"sandbox could not start: {type(exc).__name__}: {exc}")
        finally:
            os.close(result_w)
        pump = _Pump(proc, result_r, payload, limits.output_bytes)
        try:
            exited = pump.run_until(start + limits.wall_s)
            _kill_all(proc.pid, uid)
            pump.run_until(time.monotonic() + 1.0, stop_on_exit=False)  # drain what is left
            code = proc.wait()
        finally:
            pump.close()
        return _verdict(nonce, pump.out, exited, code, time.monotonic() - start, limits)
    finally:
        os.close(result_r)
        shutil.rmtree(workdir, ignore_errors=True)


def _verdict(nonce: str, out: dict[str, _Capture], exited: bool, code: int, seconds: float, limits: Limits) -> Result:
    stdout, stderr = out["stdout"].text(), out["stderr"].text()
    last = stderr.strip().splitlines()[-1][:300] if stderr.strip() else ""
    result = out["result"]

    def res(status: str, reason: str) -> Result:
        return Result(status, reason, stdout, stderr, seconds, code)

    if not result.head.startswith(f"READY {nonce}\n".encode()):
        return res("error", f"runner did not start (exit code {code}{', timed out' if not exited else ''}): {last}")
    if result.tail.endswith(f"PASS {nonce}\n".encode()):
        return res("passed", "")
    if not exited:
        return res("timeout", f"exceeded the {limits.wall_s:g} s wall-clock limit")
    return res("failed", last or f"exit code {code} before the tests finished")
