"""The trusted test process: runs the benchmark's tests against proxies of the sandboxed program.

``wire.py``'s source and this file's, compiled once by the harness and sent marshalled to the
harness's interpreter (``-I -B -S -c`` :data:`.runner.JUDGE_BOOT`), which runs either one judge or
the judge service (:func:`serve`) that forks them; standard library only, in its own session with a
wall-clock limit enforced by :mod:`.runner`.
It starts the sandbox (the command it is given: bubblewrap around :mod:`.server`), then runs the
tests here, where the program cannot reach: a name the tests use that the program defines is a
:class:`Remote` whose calls send plain-data arguments and get plain-data results back (see
:mod:`.wire`), rebuilt here before any comparison. Everything the tests compare, and the verdict,
is computed in this process; the program's only influence is the data it returns.

A *fault* (the program crashed or was killed, overran the time limit, returned something that is
not plain data, broke the protocol) raises :class:`Fault`, a ``BaseException`` so that a test's
``except Exception`` cannot swallow it, and is recorded: a run with a fault never passes, even if
the test code caught it. An exception the program raised is re-raised here as the built-in
exception of that name (``ValueError``...), or :class:`RemoteError` for other names, so that tests
expecting an exception still work; its message is the program's text, nothing more. The
exceptions that steer control flow rather than report an error (:data:`CONTROL_FLOW`:
``StopIteration`` silently ends ``map``/``all``/``zip``...) are faults, as PEP 479 does for
generators.

Nothing here may die or overflow on the program's data: every text built from it is bounded
before it is built (:func:`bounded_repr`, :func:`exception_text`; ``str(10**5000)`` raises), the
verdict is capped by its encoded size (:func:`verdict_line`), and the deadline is a ``SIGALRM``
timer that raises a fault wherever the judge is (a blocked ``send``, decoding, the tests).
"""

try:  # imported as a module (documentation, tests); in use wire.py's source comes first
    from .wire import NotPlain, _type_name, decode, dumps, encode, loads
except ImportError:
    pass

import builtins as _builtins


class Fault(BaseException):
    """The program cannot be judged any further: never a pass."""


class ProgramFailed(Exception):
    """The program did not load (its own exception, before any test ran)."""


class RemoteError(Exception):
    """The program raised an exception that is not a built-in one (only its type name and message cross)."""


#: exceptions that are control flow, not errors: from the program they are faults (PEP 479)
CONTROL_FLOW = ("StopIteration", "StopAsyncIteration", "GeneratorExit", "KeyboardInterrupt", "SystemExit")
TEXT_LIMIT = 500  # characters of any text built from the program's data


def bounded_repr(value, limit=TEXT_LIMIT, depth=0):
    """``repr`` of plain data in at most about ``limit`` characters, never formatting anything larger.

    Other objects are named by type only (their ``__repr__`` is not called).
    """
    t = type(value)
    if value is None or t in (bool, float, complex):
        return repr(value)
    if t is int:
        bits = value.bit_length()
        return repr(value) if bits <= 3 * limit else "<int of %d bits>" % bits
    if t in (str, bytes, bytearray):
        text = repr(value[:limit])
        return text if len(value) <= limit else text + "..."
    if t in (list, tuple, set, frozenset, dict):
        if depth >= 4:
            return "<%s of %d items>" % (t.__name__, len(value))
        items = dict.items(value) if t is dict else value
        parts, used = [], 0
        for item in items:
            if used > limit:
                parts.append("...")
                break
            text = ("%s: %s" % (bounded_repr(item[0], limit // 2, depth + 1),
                                bounded_repr(item[1], limit // 2, depth + 1)) if t is dict
                    else bounded_repr(item, limit // 2, depth + 1))
            parts.append(text)
            used += len(text) + 2
        return "%s%s%s" % ("{" if t in (dict, set, frozenset) else "(" if t is tuple else "[", ", ".join(parts),
                           "}" if t in (dict, set, frozenset) else ")" if t is tuple else "]")
    return "<%s>" % _type_name(value)


def exception_text(exc, limit=TEXT_LIMIT):
    """``Type: message`` of an exception, its message bounded before it is built."""
    try:
        args = tuple.__iter__(BaseException.__getattribute__(exc, "args"))
        args = tuple(args)
        if len(args) == 1 and type(args[0]) is str:
            message = args[0][:limit]
        elif args:
            message = bounded_repr(args[0] if len(args) == 1 else args, limit)
        else:
            message = ""
    except Exception:
        message = "?"
    name = str(getattr(type(exc), "__name__", "?"))[:100]
    return "%s: %s" % (name, message) if message else name


def verdict_line(status, reason, output, max_bytes):
    """The verdict as one JSON line of at most ``max_bytes`` bytes (at least 1024): the output is cut to
    fit first, then the reason; never the line itself."""
    import json

    reason = reason[:2000]
    while True:
        line = (json.dumps({"status": status, "reason": reason, "output": output}) + "\n").encode()
        if len(line) <= max_bytes:
            return line
        if output:
            keep = len(output) * (max_bytes // 2) // len(line)
            output = output[:keep] + "\n[... output cut to fit the verdict]" if keep > 64 else ""
        else:
            reason = reason[:len(reason) // 2]


class Remote:
    """A name or object that lives in the sandbox. Calling it is a round trip; nothing else is offered."""

    __slots__ = ("_channel", "_target", "_is_class", "_label")

    def __init__(self, channel, target, is_class, label):
        self._channel, self._target, self._is_class, self._label = channel, target, is_class, label

    def __call__(self, *args, **kwargs):
        return self._channel.call(self, args, kwargs)

    def __repr__(self):
        return "<sandboxed %s>" % self._label


class Channel:
    MAX_MESSAGE = 16 << 20

    def __init__(self, proc, deadline, wall_s):
        import os

        self.proc, self.deadline, self.wall_s = proc, deadline, wall_s
        self.rfd, self.wfd = proc.stdout.fileno(), proc.stdin.fileno()
        os.set_blocking(self.rfd, False)
        self.buffer = b""
        self.faults = []
        self.handles = {}
        self.armed = False

    def arm(self):
        """From now on the deadline raises a fault wherever the judge is (and again every 50 ms)."""
        import signal
        import time

        signal.signal(signal.SIGALRM, self.on_alarm)
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, max(1e-3, self.deadline - time.monotonic()), 0.05)

    def disarm(self):
        import signal

        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    def on_alarm(self, signum, frame):
        if self.armed:
            self.fault("exceeded the %g s wall-clock limit" % self.wall_s, "timeout")

    def fault(self, reason, status="failed"):
        if not self.faults:
            self.faults.append((status, reason))
        raise Fault(reason)

    def send(self, message):
        import os

        data = dumps(message)
        try:
            while data:
                data = data[os.write(self.wfd, data):]
        except OSError:
            self.fault("the program's process ended (%s)" % self.exit_text())

    def exit_text(self):
        code = self.proc.poll()
        if code is None:
            return "still running"
        return "killed by signal %d" % -code if code < 0 else "exit code %d" % code

    def receive(self):
        import os
        import select
        import time

        while b"\n" not in self.buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.fault("exceeded the %g s wall-clock limit" % self.wall_s, "timeout")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.rfd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self.proc.wait()
                self.fault("the program's process ended (%s)" % self.exit_text())
            self.buffer += chunk
            if len(self.buffer) > self.MAX_MESSAGE:
                self.fault("the program sent more than %d bytes in one answer" % self.MAX_MESSAGE)
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return loads(line)
        except Exception as exc:
            self.fault("malformed answer from the program: %s" % type(exc).__name__)

    def handle(self, key):
        if type(key) is not int or key not in self.handles:
            self.fault("the program sent an unknown handle")
        return self.handles[key]

    def remote_handle(self, key, label):
        if type(key) is not int or key <= 0:
            self.fault("the program sent a malformed handle")
        obj = self.handles.get(key) or Remote(self, ["h", key], False, label)
        self.handles[key] = obj
        return obj

    def handle_id(self, obj):
        if type(obj) is Remote and obj._channel is self and obj._target[0] == "h":
            return obj._target[1]
        raise NotPlain("argument %r is not plain data" % (type(obj).__name__,))

    def call(self, remote, args, kwargs):
        try:
            message = {"call": remote._target, "args": encode(list(args), self.handle_id),
                       "kwargs": encode(dict(kwargs), self.handle_id)}
        except NotPlain as exc:
            self.fault("cannot send the arguments of %s: %s" % (remote._label, exc))
        self.send(message)
        answer = self.receive()
        if "value" in answer:
            try:
                return decode(answer["value"])
            except Exception as exc:
                self.fault("malformed value from %s: %s" % (remote._label, exc))
        if "raise" in answer:
            try:
                name, text = answer["raise"]
                if type(name) is not str or type(text) is not str:
                    raise TypeError
                name, text = name[:100], text[:1000]
            except Exception:
                self.fault("malformed answer from %s" % remote._label)
            cls = getattr(_builtins, name, None)
            if name in CONTROL_FLOW:
                self.fault("%s raised %s (control flow, not an error): %s" % (remote._label, name, text))
            if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
                try:
                    exc = cls(text)
                except Exception:
                    exc = RemoteError("%s: %s" % (name, text))
            elif isinstance(cls, type) and issubclass(cls, BaseException):
                self.fault("%s raised %s: %s" % (remote._label, name, text))
            else:
                exc = RemoteError("%s: %s" % (name, text))
            raise exc
        if "handle" in answer and remote._is_class:
            return self.remote_handle(answer["handle"], "%s instance" % remote._label)
        if "notplain" in answer:
            self.fault("%s returned a value that is not plain data: %s" % (remote._label,
                                                                         bounded_repr(answer["notplain"], 200)))
        self.fault("malformed answer from %s" % remote._label)


def free_names(code):
    """Names the test code reads but never binds, in the order first seen."""
    import ast

    tree = ast.parse(code)
    bound, read = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                if node.id not in read:
                    read.append(node.id)
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return [n for n in read if n not in bound]


def _confine(job):
    """Dies with the harness, joins the sample's cgroup, and resource limits, before anything else runs.

    Done here rather than between fork and exec in the harness so that the harness can start this
    process with vfork (a fork of a large scorer worker is slow). Joining the cgroup here rather than
    in the harness takes a cgroup migration (milliseconds: the kernel waits for an RCU grace period)
    off the harness's thread; the harness created the cgroup empty and names its ``cgroup.procs``.
    A judge that cannot join exits 1 without a verdict (the sample is an error, never unguarded).
    """
    import ctypes
    import os
    import resource
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != job["harness_pid"]:  # the harness died before the line above
        os._exit(1)
    if job.get("cgroup_procs"):
        try:
            with open(job["cgroup_procs"], "w") as f:
                f.write(str(os.getpid()))
        except OSError as exc:
            os.write(2, ("the judge could not join its cgroup: %s\n" % exc).encode())
            os._exit(1)
    for res, value in job["judge_rlimits"]:
        resource.setrlimit(res, (value, value))


class Output:
    """The program's output (stdout and stderr together), read by a thread: the first ``cap`` bytes and
    the total count."""

    def __init__(self, fd, cap):
        import threading

        self.fd, self.cap, self.head, self.total = fd, cap, bytearray(), 0
        self.thread = threading.Thread(target=self.drain, daemon=True)
        self.thread.start()

    def drain(self):
        import os

        while True:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return
            self.total += len(chunk)
            room = self.cap - len(self.head)
            if room > 0:
                self.head += chunk[:room]

    def text(self):
        head = bytes(self.head).decode("utf-8", "replace")
        more = self.total - len(self.head)
        return head + "\n[... %d more bytes]" % more if more > 0 else head


def write_all(fd, data):
    import os

    while data:
        data = data[os.write(fd, data):]


def trusted_scope(job):
    """The tests' scope (the trusted prefix, standard modules) and the names to look up in the program."""
    import importlib
    import sys

    trusted = {"__name__": "__judge__"}
    if job["prefix"]:
        exec(compile(job["prefix"], "<trusted prefix>", "exec"), trusted)
    remote_names = []
    for name in free_names(job["tests"]):
        if name in trusted or hasattr(_builtins, name):
            continue
        if name in sys.stdlib_module_names:  # e.g. `math.isclose` in tests that rely on the program's import
            trusted[name] = importlib.import_module(name)
            continue
        remote_names.append(name)
    entry = job["entry_point"]
    if entry and entry not in remote_names:
        remote_names.append(entry)
    return trusted, remote_names


def start_sandbox(job):
    """The sandbox process and the read end of bubblewrap's info pipe (None without one)."""
    import os
    import subprocess

    uid = job["uid_base"] + os.getpid() if job["uid_base"] else None

    def drop():  # as root: bwrap runs as a throwaway uid, which is what makes RLIMIT_NPROC hold inside
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    if job.get("zygote_fd") is not None:
        return ZygoteSandbox(job), None
    command, keep_fds, info_fd = sandbox_fds(job)
    try:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=job["cwd"], env=job["env"], start_new_session=False,
                                preexec_fn=drop if uid is not None else None, pass_fds=keep_fds)
    finally:
        for fd in keep_fds:
            os.close(fd)
    return proc, info_fd


def main(stdin=None):
    """Prepare (confine, start the sandbox, report its init), wait for the program, judge it.

    The harness may start this process ahead of need (:func:`.runner.run_batch`): everything up to
    the wait needs only the first line of stdin (the job without the program); the program arrives on
    the second line, and the wall-clock deadline starts then. The sandbox is this sample's alone.
    """
    import json
    import os
    import sys
    import time

    stdin = stdin or sys.stdin.buffer
    job = json.loads(stdin.readline())
    _confine(job)
    out = os.dup(1)
    os.dup2(2, 1)  # the tests' prints go to stderr; stdout carries only the verdict
    trusted, remote_names = trusted_scope(job)
    try:
        proc, info_fd = start_sandbox(job)
    except OSError as exc:
        write_all(out, verdict_line("error", "sandbox could not start: %s: %s" % (type(exc).__name__, exc), "",
                                    job["verdict_bytes"]))
        return
    output = Output(proc.stderr.fileno(), job["limits"]["output_bytes"])
    wall_s = job["limits"]["wall_s"]
    channel = Channel(proc, time.monotonic() + wall_s, wall_s)
    status, reason = "passed", ""
    try:
        try:
            report_sandbox(channel, proc, info_fd, out, job)
            line = stdin.readline()  # blocks while a started-ahead judge waits for its sample
            if not line:
                channel.fault("no program was sent", "error")
            job.update(json.loads(line))
            channel.deadline = time.monotonic() + wall_s
            channel.arm()
            run_tests(channel, job, trusted, remote_names, job["entry_point"])
        finally:
            channel.disarm()
    except Fault:
        pass
    except ProgramFailed as exc:
        status, reason = "failed", exc.args[0]
    except BaseException as exc:
        status, reason = "failed", exception_text(exc)
    if channel.faults:  # caught by the tests or not, a fault is final
        status, reason = channel.faults[0]
    try:
        proc.kill()
    except OSError:
        pass
    proc.wait()
    output.thread.join(1.0)
    write_all(out, verdict_line(status, reason, output.text(), job["verdict_bytes"]))


def report_sandbox(channel, proc, info_fd, out, job):
    """Before the program exists (nothing has run in the sandbox yet), under the deadline: the sandbox's
    init to the harness (bubblewrap's, or the zygote's child's child, once that child is in the cgroup)."""
    if info_fd is None and type(proc) is not ZygoteSandbox:
        return  # the weak mode: no sandbox init
    channel.arm()
    if info_fd is not None:
        report_sandbox_init(channel, info_fd, out)
    else:
        proc.start(channel, out, job["cgroup_procs"])
    channel.disarm()


def finish():
    """Exit 0 at once after the verdict (no interpreter finalization: the verdict is already written)."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


def sandbox_fds(job):
    """The sandbox command with its descriptors filled in: bubblewrap's seccomp filter (a memfd) and
    its ``--info-fd`` (a pipe). Returns (command, descriptors to pass, read end of the info pipe)."""
    import os

    command, keep, info_read = list(job["command"]), [], None
    if "@SECCOMP_FD@" in command:
        fd = os.memfd_create("seccomp", 0)
        os.write(fd, bytes.fromhex(job["seccomp"]))
        os.lseek(fd, 0, os.SEEK_SET)
        command[command.index("@SECCOMP_FD@")] = str(fd)
        keep.append(fd)
    if "@INFO_FD@" in command:
        info_read, fd = os.pipe()
        command[command.index("@INFO_FD@")] = str(fd)
        keep.append(fd)
    return command, tuple(keep), info_read


class ZygoteSandbox:
    """This sample's sandbox, forked by the zygote (``GRPO_BENCH_SANDBOX=zygote``, :mod:`.zygote`), seen like
    the ``Popen`` of bubblewrap: its pipes, ``poll``, ``wait``, ``kill``.

    Created, it asks the zygote (through the descriptor the harness passed, ``job["zygote_fd"]``) for a
    child, giving it the server's pipes and a socket of this sample's own for the answers; :meth:`start`
    moves the child into the sample's cgroup before letting it build the sandbox, then reports the
    sandbox's init (pid as the host sees it, and start time) like :func:`report_sandbox_init`.
    """

    def __init__(self, job):
        import json
        import os
        import socket

        ends = [os.pipe() for _ in range(3)]  # the server's stdin, stdout, stderr
        self.reply, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.child_fd = self.init_fd = self.server_fd = self.returncode = None
        self.killed = False
        request = json.dumps({"tmp_bytes": job["tmp_bytes"], "shm_bytes": job["shm_bytes"]}).encode()
        zygote = socket.socket(fileno=os.dup(job["zygote_fd"]))
        try:
            socket.send_fds(zygote, [request], [ends[0][0], ends[1][1], ends[2][1], theirs.fileno()])
        except OSError as exc:
            for fd in (ends[0][1], ends[1][0], ends[2][0]):
                os.close(fd)
            raise OSError("the zygote did not take the request (%s: %s)" % (type(exc).__name__, exc)) from None
        finally:
            zygote.close()
            theirs.close()
            for fd in (ends[0][0], ends[1][1], ends[2][1]):
                os.close(fd)
        self.stdin = open(ends[0][1], "wb", buffering=0)
        self.stdout, self.stderr = open(ends[1][0], "rb", buffering=0), open(ends[2][0], "rb", buffering=0)

    def _receive(self, channel, expected):
        import socket

        try:
            message, fds, _, _ = socket.recv_fds(self.reply, 64, 1)
        except Fault:  # the deadline, while the zygote or its child never answered: the sandbox's failure
            channel.faults[:] = [("error", "the zygote did not answer in time (%s)" % expected.decode())]
            raise
        while message == b"server" and len(fds) == 1 and self.server_fd is None:  # the init can be quicker
            self.server_fd = fds[0]
            message, fds, _, _ = socket.recv_fds(self.reply, 64, 1)  # (the init's message came: no wait)
        if message != expected or len(fds) != 1:
            for fd in fds:
                self._close(fd)
            self._exit_message(message)
            channel.fault("the zygote's child failed (%s, %s)" % (message[:40], channel.exit_text()), "error")
        return fds[0], pidfd_pid(fds[0])

    def start(self, channel, out, cgroup_procs):
        """Child into the cgroup, then ``go``; report the init it forks (whose parent must be that child)."""
        import json

        self.child_fd, child = self._receive(channel, b"child")
        if cgroup_procs:
            try:
                with open(cgroup_procs, "w") as f:
                    f.write(str(child))
            except OSError as exc:
                channel.fault("the sandbox could not join its cgroup: %s" % exc, "error")
            if pidfd_pid(self.child_fd) != child:  # it died (it waits for go: only with the zygote) meanwhile
                channel.fault("the zygote's child ended before it joined its cgroup", "error")
        self.reply.send(b"go")
        self.init_fd, init = self._receive(channel, b"init")
        try:
            with open("/proc/%d/stat" % init) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            channel.fault("the sandbox's init is gone (%s)" % channel.exit_text(), "error")
        if int(fields[1]) != child:
            channel.fault("the sandbox's init is not the zygote's child's child", "error")
        write_all(out, (json.dumps({"sandbox_pid": init, "start_time": int(fields[19])}) + "\n").encode())

    def _exit_message(self, message):
        if message.startswith(b"exit "):
            self.returncode = int(message[5:])

    def poll(self):
        import select

        if self.returncode is None and (self.child_fd is None or select.select([self.child_fd], [], [], 0)[0]):
            try:
                self._exit_message(self.reply.recv(64, 0x40))  # MSG_DONTWAIT: the zygote's "exit N"
            except OSError:
                pass
        return self.returncode

    def wait(self):
        """The exit status of the zygote's child (C: the init's); -1 when the zygote never says. Once
        :meth:`kill`-ed, -9 at once: the last of the sample's processes to exit tears its namespaces down
        (an RCU grace period: up to tens of ms under load), which the verdict need not wait for (the
        harness kills the init and the cgroup again; the zygote reaps)."""
        import select

        if self.killed:
            return self.poll() if self.poll() is not None else -9
        if self.child_fd is not None:
            select.select([self.child_fd], [], [], 5.0)
        self.reply.settimeout(1.0)
        while self.returncode is None:
            try:
                message = self.reply.recv(64)
            except OSError:
                message = b""
            if not message:
                self.returncode = -1
            self._exit_message(message)
        return self.returncode

    def kill(self):
        """SIGKILL to the server (if its init has told its pidfd yet: its pipes close at once), the init (and
        so its pid namespace) and the zygote's child."""
        import signal
        import socket

        self.killed = True
        self.reply.setblocking(False)  # this end only (socket.recv_fds ignores its flags argument)
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self.reply, 64, 1)
            except OSError:
                break
            if not message:
                break
            if message == b"server" and len(fds) == 1 and self.server_fd is None:
                self.server_fd = fds[0]
            else:
                for fd in fds:
                    self._close(fd)
                self._exit_message(message)
        for fd in (self.server_fd, self.init_fd, self.child_fd):
            if fd is not None:
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                except OSError:
                    pass

    @staticmethod
    def _close(fd):
        import os

        try:
            os.close(fd)
        except OSError:
            pass


def pidfd_pid(fd):
    """The pid (as this process sees it) of the process a pidfd refers to; -1 once it has exited."""
    with open("/proc/self/fdinfo/%d" % fd) as f:
        for line in f:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    return -1


def report_sandbox_init(channel, info_fd, out):
    """Read the sandbox's init pid from bubblewrap and tell the harness (pid and start time), which
    kills it at the end: the pid namespace dies with its init, whatever the program did to its parent."""
    import json
    import os

    data = b""
    while not data.endswith(b"}\n"):
        chunk = os.read(info_fd, 4096)  # the deadline's alarm interrupts a bubblewrap that never writes
        if not chunk:
            break
        data += chunk
    os.close(info_fd)
    try:
        pid = json.loads(data)["child-pid"]
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (ValueError, KeyError, TypeError, OSError):
        channel.fault("bubblewrap did not report the sandbox (%s)" % channel.exit_text(), "error")
    if int(fields[1]) != channel.proc.pid:  # its parent must be the bwrap we started
        channel.fault("the sandbox's init is not bubblewrap's child", "error")
    write_all(out, (json.dumps({"sandbox_pid": pid, "start_time": int(fields[19])}) + "\n").encode())


def run_tests(channel, job, trusted, remote_names, entry):
    """Load the program in the sandbox, bind the proxies, run the tests (raises on failure)."""
    channel.send({"program": job["program"], "setup": job["setup"], "names": remote_names, "limits": job["limits"]})
    ready = channel.receive()
    if "crash" in ready:
        crash = ready["crash"] if type(ready["crash"]) is str else "?"
        text = crash[-2000:].strip().splitlines()
        raise ProgramFailed("the program failed to load: %s" % (text[-1][:300] if text else "?"))
    if type(ready.get("ready")) is not dict:
        channel.fault("malformed first answer")
    scope = trusted  # the prefix's helpers see the proxies too
    for name in remote_names:
        desc = ready["ready"].get(name)
        kind = desc[0] if type(desc) is list and desc else None
        if kind in ("call", "class"):
            scope[name] = Remote(channel, ["name", name], kind == "class", name)
        elif kind == "value" and len(desc) == 2:
            try:
                scope[name] = decode(desc[1])
            except Exception:
                channel.fault("malformed value of %s" % name)
        elif kind == "handle" and len(desc) == 2:
            scope[name] = channel.remote_handle(desc[1], name)
        # missing: the test's own NameError tells which
    exec(compile(job["tests"], "<tests>", "exec"), scope)
    if entry and "check" in scope and job["call_check"]:
        scope["check"](scope[entry])


def serve(config):
    """The judge service: a long-lived trusted process per harness thread (bubblewrap mode) that forks one
    fresh judge per sample, so that no judge pays for an interpreter start, imports and compiling.

    It never sees a program or a test: on a request (``{"fork": directory}`` on its unix socket, with the
    new judge's stdin, stdout and stderr as descriptors) it forks; the child starts a new session, moves
    to that (empty, per-sample) directory, takes
    those descriptors as 0, 1, 2, closes every other one and runs :func:`main` exactly as a judge started
    by the harness does (its parent, for the death signal, is this service, which dies with the harness).
    ``{"reap": pid}`` (sent by the harness after it has killed the judge's group, so that the pid stays
    a zombie until then) answers the judge's exit code.
    """
    import ast  # noqa: F401 -- everything a judge imports, once: its children inherit it
    import ctypes  # noqa: F401
    import gc
    import importlib  # noqa: F401
    import json
    import os
    import resource
    import select  # noqa: F401
    import signal  # noqa: F401
    import socket
    import subprocess  # noqa: F401
    import threading  # noqa: F401
    import time  # noqa: F401
    import traceback  # noqa: F401 -- a forked judge's (it imports textwrap, re...: 3.5 ms of CPU per judge)

    _confine({"harness_pid": config["harness_pid"], "judge_rlimits": []})
    gc.freeze()  # a judge's collections skip what the service holds: no copy-on-write of its pages for them
    sock = socket.socket(fileno=config["socket_fd"])
    max_fd = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 4096, 4)  # stdin, stdout, stderr (and the zygote's socket)
        if not message:
            os._exit(0)
        request = json.loads(message)
        if "reap" in request:
            _, status = os.waitpid(int(request["reap"]), 0)
            sock.send(json.dumps({"code": os.waitstatus_to_exitcode(status)}).encode())
            continue
        pid = os.fork()
        if pid == 0:
            _forked_judge(fds, max_fd, request["fork"])
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"pid": pid}).encode())


def _forked_judge(fds, max_fd, cwd):
    """In the child of :func:`serve`: become a judge like one the harness starts; never returns."""
    import os
    import sys
    import traceback

    try:
        os.setsid()
        os.chdir(cwd)  # the sample's empty temporary directory, as for a judge the harness starts
        for target, fd in enumerate(fds):  # every fd is above 2 (the service holds 0, 1 and 2)
            os.dup2(fd, target)
        os.closerange(len(fds), max_fd)
        main(open(0, "rb", closefd=False))
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(1)
    finish()


def boot():
    """Started by the harness: a judge (the first line of stdin is its job) or the judge service."""
    import json
    import sys

    stdin = sys.stdin.buffer
    first = stdin.readline()
    config = json.loads(first)
    if "serve" in config:
        serve(config["serve"])
    main(_Prepend(first, stdin))
    finish()


class _Prepend:
    """A reader whose first line was already read."""

    def __init__(self, line, rest):
        self.line, self.rest = line, rest

    def readline(self):
        line, self.line = self.line, None
        return line if line is not None else self.rest.readline()


if __name__ == "__main__":
    boot()
