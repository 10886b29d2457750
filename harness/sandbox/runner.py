"""Run a generated program against a benchmark's tests: the tests in a trusted process, the program in bubblewrap.

Three processes per sample (see ``docs/sandbox.md``):

* the harness (this module) starts the **judge** (:mod:`.judge`) with the harness's interpreter
  in a new session, in an empty temporary directory, with a minimal environment; the judge's first
  act is to set ``PR_SET_PDEATHSIG`` (it dies with the harness) and its resource limits; as root it
  starts bwrap as a throwaway uid (``UID_BASE`` + its pid). The harness kills the judge's whole process group at the
  wall-clock limit (plus :data:`GRACE_S`);
* the judge starts the **sandbox**: ``bwrap`` (bubblewrap) with new user, pid, ipc, net, uts and
  mount namespaces (``--unshare-all``), a read-only root holding only ``/usr`` (the interpreter and
  its libraries), a fresh ``/proc`` and a read-only ``/dev``, size-limited private tmpfs ``/tmp``
  (working directory) and ``/dev/shm``, uid/gid 65534, ``--die-with-parent``, ``--new-session``, an
  empty environment, the seccomp filter of :mod:`.seccomp`, and in it :mod:`.server` under
  ``python3 -I -B -S``, which sets the resource limits (address space, CPU seconds, processes, file
  size, open files, no core) before any program code runs. The judge reads the sandbox's init pid
  from ``--info-fd`` and reports it (first line of its stdout); the harness kills that init (and so
  its pid namespace) at the end, and, where cgroup v2 is writable (:mod:`.cgroups`), the sample's
  own cgroup with ``cgroup.kill``;
* the judge runs the tests; the names they use that the program defines are proxies that send
  plain-data arguments into the sandbox and get plain-data results back (:mod:`.wire`). The
  verdict is computed by the judge and reported on its stdout, which the program cannot reach.

Speed (``docs/sandbox.md``, "Speed"): in bubblewrap mode the judge is forked from a long-lived judge
service per harness thread (:class:`_JudgeService`, :func:`.judge.serve`) instead of a new
interpreter, and :func:`run_batch` starts the next :data:`AHEAD` samples' judges, each with its own
fresh sandbox, while one sample runs; each waits for its program, and nothing is shared between
samples.

The default mode (``zygote``; ``docs/sandbox.md``, "The zygote mode") gives each sample the same
isolation without starting bubblewrap and an interpreter for it: one bubblewrap sandbox per harness
thread (:class:`_Zygote`, :mod:`.zygote`) runs a pre-imported server that forks each sample's sandbox,
which makes its own user, mount, pid, IPC, UTS, network and cgroup namespaces, tmpfs, ``/proc``,
keyring and seccomp filter; the judge moves it into the sample's cgroup before it starts. Where it
does not work (nested user namespaces refused, say) the default falls back, with a line in the log, to
a fresh bubblewrap sandbox per sample (``GRPO_BENCH_SANDBOX=bwrap`` asks for that mode; a mode asked
for explicitly never falls back).

Where bubblewrap cannot run, :func:`run_tests` refuses (:class:`SandboxUnavailable`) unless the
weaker mode is chosen explicitly with ``GRPO_BENCH_SANDBOX=weak``: then the program runs in a plain
child process (its own session, the same resource limits and protocol, a temporary directory, no
namespaces), a warning is printed once to stderr, and every :class:`Result` and :func:`describe`
says ``weak``. The verdict is still computed outside the program's interpreter in that mode; what
is lost is the OS isolation (files, network, other processes).

Standard library only (no imports from the rest of the package), so that the tests can run this
package as an unprivileged user with the system interpreter.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import logging
import marshal
import math
import os
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import cgroups, seccomp

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
SANDBOX_UID = 65534  # nobody, inside the sandbox
UID_BASE = 1 << 30  # as root, bwrap runs as UID_BASE + the judge's pid: a uid no account uses
GRACE_S = 1.5  # judge start-up and clean-up beyond the sandbox's wall-clock limit
MODE_ENV = "GRPO_BENCH_SANDBOX"  # "zygote" (default, else bwrap), "bwrap" or "weak"
MODES = ("bwrap", "zygote", "weak")
NAMESPACED = ("bwrap", "zygote")  # the modes with bubblewrap's isolation (namespaces, seccomp, sized tmpfs)
PYTHON_ENV = "GRPO_BENCH_SANDBOX_PYTHON"  # interpreter inside the sandbox (default /usr/bin/python3)
AHEAD = 4  # run_batch: judges and sandboxes started ahead of need (each for one given sample)
WORKDIR_PREFIX = "grpo-sandbox-"  # + the harness's pid: a judge's temporary directory


def _source(*names: str) -> str:
    return "\n".join((HERE / name).read_text() for name in names)


SERVER = _source("wire.py", "server.py")
JUDGE = _source("wire.py", "judge.py")
ZYGOTE = _source("wire.py", "server.py", "zygote.py")
#: the zygote's command line: its program is the one argument after -c, compiled once per zygote
ZYGOTE_BOOT = ("import sys;exec(compile(sys.argv[1],'<grpo-bench zygote>','exec'),"
               "{'__name__':'__zygote__','__builtins__':__builtins__})")


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here and the weaker mode was not chosen."""


@dataclass(frozen=True)
class Limits:
    """Per-sample limits; ``wall_s`` should stay below the scorer's reward timeout."""

    wall_s: float = 5.0  # the whole sample: start, program, every call, the tests
    memory_mb: int = 1024  # the program's address space (RLIMIT_AS)
    nproc: int = 32  # processes (RLIMIT_NPROC)
    file_mb: int = 16  # largest file it may write (RLIMIT_FSIZE)
    nofile: int = 64  # open files (RLIMIT_NOFILE)
    scratch_mb: int = 64  # size of the private tmpfs /tmp (bubblewrap only)
    shm_mb: int = 16  # size of the private tmpfs /dev/shm (bubblewrap only); / and /dev are read-only
    output_bytes: int = 64 * 1024  # kept of the program's output and of the judge's


@dataclass
class Result:
    status: str  # "passed" | "failed" | "timeout" | "error" (the sandbox itself failed)
    reason: str = ""
    stdout: str = ""  # the program's output (stdout and stderr together), capped
    stderr: str = ""  # the judge's own output (tracebacks), capped
    seconds: float = 0.0
    exit_code: int | None = None  # the judge's
    mode: str = ""  # "bwrap", "zygote" or "weak"

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def requested_mode() -> str:
    """The mode ``GRPO_BENCH_SANDBOX`` asks for; "" when unset (the default: :func:`mode` picks)."""
    value = os.environ.get(MODE_ENV, "").strip().lower()
    if value and value not in MODES:
        raise SandboxUnavailable(f"{MODE_ENV}={value!r}: expected 'zygote', 'bwrap' or 'weak'")
    return value


def sandbox_python() -> str:
    return os.environ.get(PYTHON_ENV) or "/usr/bin/python3"


@functools.lru_cache(maxsize=4)
def _probe(mode: str, python: str) -> str | None:
    """None when ``mode`` works here, else why not (tried once per process and configuration)."""
    if mode in NAMESPACED and not shutil.which("bwrap", path=SAFE_PATH):
        return "bwrap (bubblewrap) is not installed: apt-get install bubblewrap"
    if not os.path.isfile(python):
        return f"no interpreter {python} for the sandbox (set {PYTHON_ENV})"
    if mode in NAMESPACED:
        try:
            seccomp.bpf_program()
        except seccomp.SeccompUnavailable as exc:
            return f"no seccomp filter: {exc}"
    r = _run(mode, "def f(x):\n    return x * 7\n", "assert f(6) == 42\n", None, "", "", Limits(wall_s=15.0))
    return None if r.passed else f"{r.status}: {r.reason} {r.stdout[-300:]}".strip()


def _drop_uid() -> bool:
    """As root, whether bwrap runs as a throwaway uid (needs unprivileged user namespaces)."""
    return os.geteuid() == 0 and os.environ.get(MODE_ENV + "_ROOT_BWRAP") != "1"


def mode() -> str:
    """The mode in force: the one asked for, else ``zygote`` where it works here and ``bwrap`` where only
    that does (said once in the log); raises :class:`SandboxUnavailable` when none with namespaces works
    (``weak`` only when asked for)."""
    want = requested_mode()
    if want == "weak":
        _warn_weak()
        return "weak"
    python = sandbox_python()
    why = _probe(want or "zygote", python)
    if why and not want:
        _say_fallback(why)
        want, why = "bwrap", _probe("bwrap", python)
    if why:
        raise SandboxUnavailable(f"code sandbox unavailable ({why}); refusing to run generated code. Install "
                                 f"bubblewrap, or set {MODE_ENV}=weak to accept a sandbox without namespaces")
    return want or "zygote"


@functools.lru_cache(maxsize=1)
def _say_fallback(why: str) -> None:
    log.warning("code sandbox: the zygote mode does not work here (%s); each sample gets its own bubblewrap "
                "sandbox instead (the same isolation, slower: docs/sandbox.md, \"Speed\")", why)


@functools.lru_cache(maxsize=1)
def _warn_weak() -> None:
    banner = (f"WARNING: {MODE_ENV}=weak: generated code runs WITHOUT bubblewrap (no namespaces: it can read "
              "and write what this user can, use the network and see other processes). Results say sandbox=weak.")
    print(banner, file=sys.stderr, flush=True)
    log.warning(banner)


def describe() -> dict:
    """What every result scored by this sandbox should record (raises like :func:`mode`)."""
    m = mode()
    out = {"mode": m, "python": sandbox_python() if m in NAMESPACED else sys.executable}
    if m in NAMESPACED:
        out["bwrap_runs_as"] = ("a throwaway uid" if _drop_uid() else
                                "root (RLIMIT_NPROC not enforced)" if os.geteuid() == 0 else "the harness's uid")
    out["cgroup"] = cgroups.describe()
    if m == "zygote":
        out["zygote"] = ("one bubblewrap sandbox per harness thread forks each sample's sandbox: its own user, "
                         "mount, pid, IPC, UTS and network namespaces, tmpfs, /proc, keyring and seccomp filter")
    if m in NAMESPACED:
        limits = Limits()
        out["seccomp"] = f"{len(seccomp.DENIED)} calls and namespace flags of clone denied (EPERM), clone3 ENOSYS"
        out["writable"] = f"/tmp {limits.scratch_mb} MB + /dev/shm {limits.shm_mb} MB (tmpfs); / and /dev read-only"
        try:
            out["bwrap"] = subprocess.run(["bwrap", "--version"], capture_output=True, text=True,
                                          env={"PATH": SAFE_PATH}, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def run_tests(program: str, tests: str, entry_point: str | None = None, setup_code: str = "",
              trusted_prefix: str = "", limits: Limits = Limits()) -> Result:
    """Run ``tests`` in the judge against ``program`` (then ``setup_code``) in the sandbox.

    ``trusted_prefix``: benchmark code run in the judge before the tests (HumanEval's prompt, whose
    helpers some tests call); it should also be part of ``program``. ``entry_point``: the function
    passed to ``check`` when the tests define one (HumanEval). Raises :class:`SandboxUnavailable`.
    """
    return _run(mode(), program, tests, entry_point, setup_code, trusted_prefix, limits)


def _bwrap_root(python: str, *options: str) -> list[str]:
    """bubblewrap's namespaces, uid, environment and read-only root holding only ``/usr`` (both modes)."""
    cmd = ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", *options,
           "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
           "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/lib32", "/libx32", "/sbin"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    if not prefix.startswith("/usr"):  # an interpreter installed elsewhere: its prefix, read-only
        cmd += ["--ro-bind", prefix, prefix]
    return cmd


def bwrap_command(python: str, limits: Limits) -> list[str]:
    cmd = _bwrap_root(python, "--disable-userns")
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.shm_mb << 20), "--tmpfs", "/dev/shm",
            "--size", str(limits.scratch_mb << 20), "--tmpfs", "/tmp", "--remount-ro", "/dev", "--remount-ro", "/",
            "--seccomp", "@SECCOMP_FD@", "--info-fd", "@INFO_FD@",  # the judge fills in the descriptors
            "--chdir", "/tmp", python, "-I", "-B", "-S", *server_arguments(python)]
    return cmd


DEVICES = ("null", "zero", "full", "random", "urandom", "tty")  # the zygote's /dev (what bwrap --dev binds)


def zygote_command(python: str, seccomp_fd: int) -> list[str]:
    """The zygote's bubblewrap (see :mod:`.zygote`): a sample's sandbox without ``--disable-userns`` (each
    sample builds its own namespaces inside), with the zygote's seccomp filter, and a ``/dev`` of bound
    device nodes instead of ``--dev`` (whose devpts needs a second user namespace level in bwrap, which
    would lock ``/proc``'s covering mounts and forbid each sample a fresh ``/proc``); ``/tmp`` and
    ``/dev/shm`` are read-only mount points here: each sample mounts its own."""
    cmd = _bwrap_root(python) + ["--proc", "/proc", "--tmpfs", "/dev"]
    for name in DEVICES:
        if os.path.exists("/dev/" + name):
            cmd += ["--dev-bind", "/dev/" + name, "/dev/" + name]
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        cmd += ["--symlink", f"/proc/self/fd/{fd}", "/dev/" + name]
    cmd += ["--symlink", "/proc/self/fd", "/dev/fd", "--dir", "/dev/shm", "--dir", "/tmp",
            "--remount-ro", "/dev", "--remount-ro", "/", "--seccomp", str(seccomp_fd), "--chdir", "/",
            python, "-I", "-B", "-S", "-c", ZYGOTE_BOOT, ZYGOTE]
    return cmd


#: the server's command line where its code arrives compiled (see :func:`server_arguments`)
SERVER_BOOT = "import marshal,sys;exec(marshal.loads(bytes.fromhex(sys.argv[1])))"


@functools.lru_cache(maxsize=4)
def server_arguments(python: str) -> tuple[str, ...]:
    """How ``python`` gets the server's code: compiled once per harness process and marshalled (as hex,
    an argument) where ``python``'s bytecode format is the harness's own (the same magic number), else
    the source, which every sandbox then compiles again (about 1.5 ms of CPU)."""
    if _bytecode_magic(python) != importlib.util.MAGIC_NUMBER.hex():
        return ("-c", SERVER)
    return ("-c", SERVER_BOOT, marshal.dumps(compile(SERVER, "<grpo-bench server>", "exec")).hex())


@functools.lru_cache(maxsize=4)
def _bytecode_magic(python: str) -> str:
    """``python``'s bytecode magic number (hex), asked once per harness process; "" when it cannot say."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return importlib.util.MAGIC_NUMBER.hex()
    try:
        return subprocess.run([python, "-I", "-S", "-c", "import importlib.util as u;print(u.MAGIC_NUMBER.hex())"],
                              capture_output=True, text=True, timeout=30, env={"PATH": SAFE_PATH}).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def verdict_bytes(limits: Limits) -> int:
    """The largest verdict line the judge may write (it cuts the program's output to fit; JSON escapes
    can make a control character 6 bytes)."""
    return 2 * limits.output_bytes + 8192


def _judge_rlimits(limits: Limits) -> list[tuple[int, int]]:
    """The judge's own limits (it sets them first thing); the sandbox inherits them and lowers its own."""
    memory = (2 * limits.memory_mb + 512) << 20
    return [(resource.RLIMIT_AS, memory), (resource.RLIMIT_CPU, math.ceil(limits.wall_s) + 2), (resource.RLIMIT_CORE, 0)]


@functools.lru_cache(maxsize=1)
def judge_code() -> bytes:
    """The judge's source compiled once per harness process, as the frame its bootstrap reads: the length
    of the marshalled code object on one line, then the code (it runs on ``sys.executable``, the
    interpreter that compiled it, so the marshal format matches)."""
    code = marshal.dumps(compile(JUDGE, "<grpo-bench judge>", "exec"))
    return b"%d\n" % len(code) + code


#: the judge's command line: it reads its compiled code from stdin, then its job (see :func:`judge_code`)
JUDGE_BOOT = "import marshal,sys;r=sys.stdin.buffer;exec(marshal.loads(r.read(int(r.readline()))))"


@dataclass(frozen=True)
class Sample:
    """One program and its tests (the arguments of :func:`run_tests`)."""

    program: str
    tests: str
    entry_point: str | None = None
    setup_code: str = ""
    trusted_prefix: str = ""
    limits: Limits = Limits()


def _job_head(mode_: str, sample: Sample, parent_pid: int, cgroup_procs: str, zygote_fd: int | None = None) -> dict:
    """Everything the judge needs before the program: it prepares the sandbox from this alone.
    ``cgroup_procs``: the sample's cgroup's ``cgroup.procs``, which the judge joins first ("" for none);
    ``zygote_fd``: in zygote mode, the judge's descriptor of the zygote's socket (it asks for the sandbox)."""
    limits = sample.limits
    if mode_ == "bwrap":
        command, cwd = bwrap_command(sandbox_python(), limits), "/"
    elif mode_ == "zygote":
        command, cwd = None, "/"
    else:  # the server runs in the judge's own (per-sample) directory
        command, cwd = [sys.executable, "-I", "-B", "-S", *server_arguments(sys.executable)], None
    return {"cgroup_procs": cgroup_procs, "uid_base": UID_BASE if mode_ == "bwrap" and _drop_uid() else 0,
            "zygote_fd": zygote_fd, "tmp_bytes": limits.scratch_mb << 20, "shm_bytes": limits.shm_mb << 20,
            "harness_pid": parent_pid, "judge_rlimits": _judge_rlimits(limits), "verdict_bytes": verdict_bytes(limits),
            "tests": sample.tests, "entry_point": sample.entry_point or "",
            "call_check": bool(sample.entry_point and re.search(r"^def check\(", sample.tests, re.M)),
            "seccomp": seccomp.bpf_program().hex() if mode_ == "bwrap" else "",
            "prefix": sample.trusted_prefix or "", "command": command, "cwd": cwd, "env": {"PATH": SAFE_PATH},
            "limits": {"wall_s": limits.wall_s, "memory_mb": limits.memory_mb, "cpu_s": math.ceil(limits.wall_s) + 1,
                       "file_mb": limits.file_mb, "nofile": limits.nofile, "nproc": limits.nproc,
                       "output_bytes": limits.output_bytes}}


class _ForkedJudge:
    """A judge forked by the :class:`_JudgeService`, seen like a ``Popen``: its pid, its pipes, its exit."""

    def __init__(self, service: "_JudgeService", pid: int, stdin: int, stdout: int, stderr: int):
        self.service, self.pid, self.returncode = service, pid, None
        self.stdin, self.stdout, self.stderr = (open(stdin, "wb", buffering=0), open(stdout, "rb", buffering=0),
                                                open(stderr, "rb", buffering=0))
        self.pidfd = os.pidfd_open(pid)  # readable once it has exited; the service reaps it only when asked

    def exited(self) -> bool:
        return bool(select.select([self.pidfd], [], [], 0)[0])

    def poll(self) -> int | None:
        return self.returncode

    def wait(self) -> int:
        """Its exit code, once it has exited (the harness kills its group first); -1 if the service is gone."""
        if self.returncode is None:
            select.select([self.pidfd], [], [], 5.0)
            self.returncode = self.service.reap(self.pid)
            os.close(self.pidfd)
        return self.returncode


class _JudgeService:
    """The judge service of this harness thread (see :func:`.judge.serve`), started on first use.

    One per thread: its death signal follows the thread that started it. None where it cannot start
    (then every judge is started by the harness itself).
    """

    _mine: dict[tuple[int, int], "_JudgeService"] = {}

    @classmethod
    def mine(cls) -> "_JudgeService | None":
        cls._forget_finished_threads()
        key = (os.getpid(), threading.get_ident())
        service = cls._mine.get(key)
        if service is None or service.proc.poll() is not None:
            try:
                service = cls._mine[key] = cls()
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("judge service unavailable (%s): one interpreter per judge", exc)
                cls._mine.pop(key, None)
                return None
        return service

    @classmethod
    def _forget_finished_threads(cls) -> None:
        """Close the sockets of services whose thread has ended (they died with it)."""
        alive = {(os.getpid(), thread.ident) for thread in threading.enumerate()}
        for key in [key for key in cls._mine if key not in alive]:
            cls._mine.pop(key).sock.close()

    def __init__(self):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen([sys.executable, "-I", "-B", "-S", "-c", JUDGE_BOOT], stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                                         env={"PATH": SAFE_PATH}, start_new_session=True, pass_fds=(theirs.fileno(),))
        finally:
            theirs_fd = theirs.fileno()
            theirs.close()
        config = {"serve": {"harness_pid": os.getpid(), "socket_fd": theirs_fd}}
        self.proc.stdin.write(judge_code() + (json.dumps(config) + "\n").encode())
        self.proc.stdin.close()

    def _ask(self, message: bytes, fds: list[int] = ()) -> dict:
        socket.send_fds(self.sock, [message], list(fds))
        self.sock.settimeout(30.0)
        answer = self.sock.recv(4096)
        if not answer:
            raise OSError("the judge service ended")
        return json.loads(answer)

    def fork(self, cwd: str, extra_fd: int | None = None) -> _ForkedJudge:
        """A judge with the three pipes as 0, 1, 2 and ``extra_fd`` (the zygote's socket) as 3."""
        pipes = [os.pipe() for _ in range(3)]  # the judge's stdin, stdout, stderr
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1]]
        try:
            extra = [extra_fd] if extra_fd is not None else []
            pid = int(self._ask(json.dumps({"fork": cwd}).encode(), theirs + extra)["pid"])
        except BaseException:
            for fd in (pipes[0][1], pipes[1][0], pipes[2][0]):
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        return _ForkedJudge(self, pid, pipes[0][1], pipes[1][0], pipes[2][0])

    def fork_or_none(self, cwd: str, extra_fd: int | None = None) -> _ForkedJudge | None:
        """A forked judge, or None when the service failed (the harness then starts the judge itself)."""
        try:
            return self.fork(cwd, extra_fd)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("judge service failed (%s): starting this judge directly", exc)
            self.proc.kill()  # replaced on the next sample
            return None

    def reap(self, pid: int) -> int:
        try:
            return int(self._ask(json.dumps({"reap": pid}).encode())["code"])
        except (OSError, ValueError, KeyError):
            return -1


class _Zygote:
    """The zygote of this harness thread (``GRPO_BENCH_SANDBOX=zygote``, :mod:`.zygote`), started on first use
    and replaced when it died: a bubblewrap sandbox whose pre-imported server forks each sample's sandbox.

    The harness keeps one end of a socketpair; every judge gets a copy of it and asks for its sample's
    sandbox there. One per thread: bubblewrap's death signal follows the thread that started it.
    """

    _mine: dict[tuple[int, int], "_Zygote"] = {}
    _started = itertools.count()

    @classmethod
    def mine(cls) -> "_Zygote":
        """This thread's live zygote (a dead one is replaced); raises OSError when none can start."""
        alive = {(os.getpid(), thread.ident) for thread in threading.enumerate()}
        for key in [key for key in cls._mine if key not in alive]:
            cls._mine.pop(key).close()
        key = (os.getpid(), threading.get_ident())
        zygote = cls._mine.get(key)
        if zygote is None or zygote.proc.poll() is not None:
            if zygote is not None:
                zygote.close()
            zygote = cls._mine[key] = cls()
        return zygote

    def __init__(self):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        filter_fd = os.memfd_create("seccomp", 0)
        ids: dict = {}
        if _drop_uid():  # as root: a throwaway uid of its own, as a judge's bwrap gets
            n = next(self._started)
            uid = UID_BASE + (1 << 29) + (((os.getpid() & 0xFFFFF) << 8) | (n & 0xFF))
            ids = {"user": uid, "group": uid, "extra_groups": []}
        try:
            os.write(filter_fd, seccomp.bpf_program(zygote=True))
            os.lseek(filter_fd, 0, os.SEEK_SET)
            self.proc = subprocess.Popen(zygote_command(sandbox_python(), filter_fd), stdin=subprocess.PIPE,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/",
                                         env={"PATH": SAFE_PATH}, start_new_session=True,
                                         pass_fds=(theirs.fileno(), filter_fd), **ids)
        except BaseException:
            self.sock.close()
            raise
        finally:
            theirs_fd = theirs.fileno()
            theirs.close()
            os.close(filter_fd)
        config = {"socket_fd": theirs_fd, "bpf": seccomp.bpf_program().hex(), "keyctl": seccomp.numbers()["keyctl"]}
        self.proc.stdin.write((json.dumps(config) + "\n").encode())
        self.proc.stdin.close()

    def close(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    @classmethod
    def replace(cls, zygote: "_Zygote") -> None:
        """A zygote that failed a sample (alive but not serving): ended, so that the next sample gets a new
        one. Only if it is still this thread's (samples that were waiting on it may fail after it)."""
        key = (os.getpid(), threading.get_ident())
        if cls._mine.get(key) is zygote:
            cls._mine.pop(key).close()


class _Judge:
    """One sample's judge, its sandbox and its cgroup; never used for a second sample.

    Created, it starts the judge, which confines itself, starts a fresh sandbox and waits for the
    program (so it may be created ahead of need); :meth:`run` sends the program and returns the
    verdict; :meth:`discard` ends one that will not be used. Either way everything is killed and
    removed at the end.
    """

    def __init__(self, mode_: str, sample: Sample):
        self.mode, self.sample, self.limits = mode_, sample, sample.limits
        self.workdir = tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-", dir=_swept_tempdir())
        self.proc, self.group, self.head, self.sent, self.error, self.zygote = None, None, b"", 0, "", None
        service = _JudgeService.mine() if mode_ in NAMESPACED else None
        try:
            self.zygote = _Zygote.mine() if mode_ == "zygote" else None
            zygote = self.zygote.sock.fileno() if self.zygote is not None else None
            if service is not None:
                self.proc, parent_pid, code = service.fork_or_none(self.workdir, zygote), service.proc.pid, b""
                judge_zygote = 3 if zygote is not None else None  # where the forked judge has it
            if self.proc is None:
                self.proc = subprocess.Popen([sys.executable, "-I", "-B", "-S", "-c", JUDGE_BOOT],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             cwd=self.workdir, env={"PATH": SAFE_PATH}, start_new_session=True,
                                             pass_fds=(zygote,) if zygote is not None else ())
                parent_pid, code, judge_zygote = os.getpid(), judge_code(), zygote
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            self.error = f"judge could not start: {type(exc).__name__}: {exc}"
            return
        self.group = _sample_cgroup(self.limits)  # empty: the judge joins it before anything else (judge._confine)
        procs = str(self.group.path / "cgroup.procs") if self.group is not None else ""
        head = _job_head(mode_, sample, parent_pid, procs, judge_zygote)
        self.head = code + (json.dumps(head) + "\n").encode()
        fd = self.proc.stdin.fileno()
        os.set_blocking(fd, False)
        try:  # as much as the pipe takes now; the rest when the sample runs
            self.sent = os.write(fd, self.head)
        except OSError:  # full, or the judge is gone (the verdict will say)
            pass

    def run(self) -> Result:
        self.begin()
        return self.finish()

    def begin(self) -> None:
        """Send the program: the sample's clock starts here."""
        self.start = time.monotonic()
        if self.proc is None:
            return
        sample, limits = self.sample, self.limits
        job = (json.dumps({"program": sample.program, "setup": sample.setup_code or ""}) + "\n").encode()
        self.pump = _Pump(self.proc, self.head + job, verdict_bytes(limits) + 4096,  # + the sandbox line
                          limits.output_bytes, self.mode in NAMESPACED)
        self.pump.sent = self.sent
        self.pump.poll()  # what the pipe takes at once

    def finish(self) -> Result:
        """Wait for the verdict (or the deadline), kill everything of the sample, return the result."""
        self.end()
        return self.result()

    def end(self) -> None:
        """Wait for the verdict (or the deadline), then kill everything of the sample: after this nothing
        of it runs; :meth:`result` reaps the judge and removes the (empty) cgroup and directory."""
        if self.proc is None:
            return
        pump = self.pump
        try:
            self.exited = pump.run_until(self.start + self.limits.wall_s + GRACE_S)
            self._kill()
            pump.kill_sandbox()  # the sandbox's init, and with it its pid namespace (it has its own session)
            pump.run_until(time.monotonic() + 1.0, stop_on_exit=False)
        except BaseException:
            pump.close()
            self.discard()
            raise
        self.seconds = time.monotonic() - self.start

    def result(self) -> Result:
        """The verdict of an :meth:`end`-ed judge: its exit status, then its cgroup and directory removed."""
        if self.proc is None:
            self.discard()
            return Result("error", self.error, mode=self.mode)
        try:
            code = self.proc.wait()
        finally:
            self.pump.close()
            self.discard()
        result = _verdict(self.pump, self.exited, code, self.seconds, self.limits, self.mode)
        if self.zygote is not None and result.status == "error" and "zygote" in result.reason:
            _Zygote.replace(self.zygote)
        return result

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the judge, bwrap and anything else left in its group
        except OSError:
            pass
        if self.group is not None:
            self.group.kill()  # and everything else the sample started, wherever it went

    def discard(self) -> None:
        """Kill what is left and remove the sample's cgroup and directory (idempotent)."""
        if self.proc is not None and self.proc.returncode is None:
            self._kill()  # a judge never given its program: no program code ever ran in its sandbox
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass
        if self.group is not None:
            _remove_later(self.group)
            self.group = None
        try:
            os.rmdir(self.workdir)  # empty in the bubblewrap mode (the judge runs there, the program in /tmp)
        except OSError:
            shutil.rmtree(self.workdir, ignore_errors=True)


_lingering = threading.local()  # .cgroups: killed samples' cgroups not yet empty


def _remove_later(group: cgroups.SampleCgroup) -> None:
    """Remove a killed sample's cgroup if it is empty already, else later (:func:`_remove_lingering`):
    its last process to exit tears down the sample's namespaces (an RCU grace period, up to tens of ms
    under load), which the harness's thread need not wait for while other samples run."""
    pending = _lingering.__dict__.setdefault("cgroups", [])
    pending.append(group)
    pending[:] = [g for g in pending if not g.remove(0)]


def _remove_lingering() -> None:
    """Wait (up to 2 s each, as before) for the lingering cgroups to empty and remove them."""
    for group in _lingering.__dict__.pop("cgroups", []):
        group.remove()


def _run(mode_: str, program: str, tests: str, entry_point: str | None, setup_code: str, trusted_prefix: str,
         limits: Limits) -> Result:
    try:
        return _Judge(mode_, Sample(program, tests, entry_point, setup_code, trusted_prefix, limits)).run()
    finally:
        _remove_lingering()


def run_batch(samples: list[Sample]) -> list[Result]:
    """:func:`run_tests` for each sample in turn, one at a time, with the next sample's judge and sandbox
    started while the current one runs (bubblewrap mode; see ``docs/sandbox.md``, "Speed").

    Each sample still gets its own judge, sandbox and cgroup, created for it alone; a started-ahead
    sandbox has run nothing of any program when its program arrives. Everything of a sample is killed
    before the next sample's program is sent; its judge's exit status is collected and its empty cgroup
    and directory removed while the next sample runs. In the weak mode (no namespaces: a program could
    reach a waiting process of the same user) nothing is started ahead.
    Raises :class:`SandboxUnavailable`.
    """
    mode_ = mode()
    ahead = AHEAD if mode_ in NAMESPACED else 0
    results: list[Result] = []
    waiting: list[_Judge] = []  # judges started for the next samples, in order
    ended: list[_Judge] = []  # the previous sample's judge: killed, its result not yet taken
    try:
        for i, sample in enumerate(samples):
            judge = waiting.pop(0) if waiting else _Judge(mode_, sample)
            judge.begin()
            if ended:  # the previous sample's reaping and clean-up, while this one runs
                results.append(ended.pop().result())
            while len(waiting) < ahead and i + 1 + len(waiting) < len(samples):
                waiting.append(_Judge(mode_, samples[i + 1 + len(waiting)]))
            judge.end()
            ended.append(judge)
        if ended:
            results.append(ended.pop().result())
    finally:
        for judge in ended:
            judge.result()
        for judge in waiting:
            judge.discard()
        _remove_lingering()
    return results


@functools.lru_cache(maxsize=1)
def _swept_tempdir() -> str:
    """The temporary directory, once per process rid of judges' directories whose harness is dead (a
    SIGKILLed harness cannot remove its own)."""
    base = tempfile.gettempdir()
    for path in Path(base).glob(WORKDIR_PREFIX + "*"):
        owner = path.name[len(WORKDIR_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not cgroups.process_alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)
    return base


def _sample_cgroup(limits: Limits) -> cgroups.SampleCgroup | None:
    """The sample's own cgroup, empty, where cgroup v2 is writable (see :mod:`.cgroups`); the judge joins it."""
    memory = (limits.memory_mb + limits.scratch_mb + limits.shm_mb + 256) << 20  # program, tmpfs, judge
    return cgroups.create(memory, limits.nproc + 8)


def _verdict(pump: _Pump, exited: bool, code: int, seconds: float, limits: Limits, mode_: str) -> Result:
    """The judge's verdict, believed only from a judge that exited with status 0 and wrote exactly one."""
    stderr = pump.out["stderr"].text()
    out = pump.out["stdout"]
    if not exited:
        return Result("timeout", f"exceeded the {limits.wall_s:g} s wall-clock limit", "", stderr, seconds, code, mode_)
    try:
        if out.total > len(out.head):
            raise ValueError("verdict larger than its cap")
        verdict = json.loads(out.head[pump.verdict_start:].decode())
        if not isinstance(verdict, dict) or verdict.get("status") not in ("passed", "failed", "timeout", "error"):
            raise ValueError("not a verdict")
        status, reason, output = verdict["status"], str(verdict["reason"]), str(verdict["output"])
    except (ValueError, KeyError) as exc:
        last = stderr.strip().splitlines()[-1][:300] if stderr.strip() else ""
        return Result("error", f"judge failed (exit code {code}, {exc}): {last}", "", stderr, seconds, code, mode_)
    if code != 0:  # e.g. killed after something wrote a "verdict" into its stdout (possible in the weak mode)
        return Result("failed", f"the judge did not exit cleanly (exit code {code}): its verdict is not trusted",
                      output, stderr, seconds, code, mode_)
    return Result(status, reason, output, stderr, seconds, code, mode_)


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
    """Feeds the payload to stdin and reads stdout and stderr without threads."""

    def __init__(self, proc: subprocess.Popen, payload: bytes, stdout_cap: int, stderr_cap: int,
                 sandbox_line: bool):
        self.proc, self.payload, self.sent = proc, payload, 0
        self.sandbox_line, self.verdict_start, self.sandbox_pidfd = sandbox_line, 0, None
        self.sel = selectors.DefaultSelector()
        self.out = {"stdout": _Capture(stdout_cap), "stderr": _Capture(stderr_cap)}
        for name, fd in (("stdout", proc.stdout.fileno()), ("stderr", proc.stderr.fileno())):
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
        if isinstance(self.proc, _ForkedJudge):  # the service's child: a zombie until the harness asks
            return self.proc.exited()
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

    def poll(self) -> None:
        """Whatever can be written or read without waiting."""
        for key, _ in self.sel.select(0):
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
                if name == "stdout" and self.sandbox_line:
                    self._watch_sandbox()
            else:
                self.sel.unregister(key.fd)

    def _watch_sandbox(self) -> None:
        """The judge's first line (bubblewrap mode): the sandbox's init, opened as a pidfd at once."""
        head = bytes(self.out["stdout"].head)
        if b"\n" not in head:
            return
        self.sandbox_line = False
        line = head.split(b"\n", 1)[0]
        try:
            info = json.loads(line)
            pid = int(info["sandbox_pid"])
        except (ValueError, KeyError, TypeError):
            return  # not the sandbox's line: no sandbox started (the verdict says why)
        self.verdict_start = len(line) + 1
        try:
            pidfd = os.pidfd_open(pid)
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return
        if int(stat[19]) == info.get("start_time"):  # the same process, not a recycled pid
            self.sandbox_pidfd = pidfd
        else:
            os.close(pidfd)

    def kill_sandbox(self) -> None:
        if self.sandbox_pidfd is not None:
            try:
                signal.pidfd_send_signal(self.sandbox_pidfd, signal.SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        for fd in (self.pidfd, self.sandbox_pidfd):
            if fd is not None:
                os.close(fd)
        self.sel.close()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass
