"""The zygote (``GRPO_BENCH_SANDBOX=zygote``): a pre-imported server that forks each sample's sandbox.

``wire.py``'s source, ``server.py``'s and this file's, run as one program in a long-lived bubblewrap
sandbox per harness thread (:class:`.runner._Zygote`; the same read-only root, namespaces, uid 65534
and death signal as a sample's own bubblewrap sandbox, but nested user namespaces allowed and a
seccomp filter that still lets it build namespaces). It never runs program code: it only forks.
Standard library only, and without ``json``, ``re``, ``enum`` or ``socket`` (a sample starts with
what the zygote imported).

Per request (from a judge, on the descriptor the harness gave the zygote: a socketpair, never a
named or abstract socket) the zygote forks a child *C* and hands the judge a pidfd of it; C waits for
the judge's ``go`` (sent once the judge has moved C into the sample's cgroup), then builds the
sample's own sandbox, nothing of it shared with another sample:

* C: new user (uid/gid 65534 mapped to itself), mount, pid, IPC, UTS, network and cgroup namespaces;
  forks G, hands the judge a pidfd of G, then watches: when the judge goes away it kills G;
* G, the pid namespace's init: fresh tmpfs ``/tmp`` and ``/dev/shm`` of the sample's sizes, a fresh
  ``/proc`` of its pid namespace, read-only as a whole (bubblewrap makes ``sys``, ``sysrq-trigger``,
  ``irq`` and ``bus`` read-only), every capability dropped, not dumpable; forks S, reaps, exits with
  S's status
  (the namespace, and everything in it, dies with it);
* S: a new session, a fresh session keyring, ``no_new_privs``, the sample's seccomp filter (the same
  libseccomp program as bubblewrap mode, which denies ``unshare``, ``setns`` and namespace flags of
  ``clone``), every other descriptor closed, working directory ``/tmp``; then :func:`.server.main`
  (resource limits, the program, the calls) exactly as in bubblewrap mode.
"""

try:  # imported as a module (documentation, tests); in the zygote server.py's source comes first
    from .server import loads
    from .server import main as _server_main
except ImportError:
    _server_main = main  # noqa: F821 -- server.py's main, defined above in the zygote's program

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
SAMPLE_NAMESPACES = (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET
                     | CLONE_NEWCGROUP)  # the cgroup namespace's root: the sample's cgroup (the judge moved C)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REC, MS_PRIVATE = 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_SECCOMP = 1, 4, 24, 22
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
SECCOMP_MODE_FILTER, KEYCTL_JOIN_SESSION_KEYRING = 2, 1
SIGKILL = 9


class _Sys:
    """The few system calls the standard library does not offer, through ctypes."""

    def __init__(self, keyctl_number):
        import ctypes

        self.ctypes, self.keyctl_number = ctypes, keyctl_number
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                                    ctypes.c_char_p]

    def check(self, rc, what):
        if rc != 0:
            import os

            err = self.ctypes.get_errno()
            raise OSError(err, "%s: %s" % (what, os.strerror(err)))

    def prctl(self, option, value):
        self.check(self.libc.prctl(option, value, 0, 0, 0), "prctl %d" % option)

    def unshare(self, flags):
        self.check(self.libc.unshare(flags), "unshare")

    def mount(self, source, target, fstype, flags, data=None):
        enc = (lambda s: None if s is None else s.encode())
        self.check(self.libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), "mount " + target)

    def drop_capabilities(self):
        """Empty bounding, ambient, effective, permitted and inheritable sets (no exec follows to do it)."""
        ctypes = self.ctypes
        for cap in range(64):
            if self.libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                break  # past the last capability this kernel knows
        self.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        data = (ctypes.c_uint32 * 6)()
        self.check(self.libc.capset(header, data), "capset")

    def join_session_keyring(self):
        """A new anonymous session keyring (nothing of the zygote's or another sample's keyring is reachable;
        the seccomp filter then denies keyctl altogether)."""
        self.libc.syscall(self.keyctl_number, KEYCTL_JOIN_SESSION_KEYRING, None)

    def load_seccomp(self, bpf):
        ctypes = self.ctypes

        class Fprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        buffer = ctypes.create_string_buffer(bpf, len(bpf))
        program = Fprog(len(bpf) // 8, ctypes.addressof(buffer))
        self.prctl(PR_SET_NO_NEW_PRIVS, 1)
        self.check(self.libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp")


def send_fds(sock, message, fds, flags=0):
    import _socket
    import struct

    ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("%di" % len(fds), *fds))] if fds else []
    sock.sendmsg([message], ancillary, flags)


def recv_fds(sock, max_fds, flags=0):
    """One message and the descriptors that came with it (a truncated set is closed, not returned)."""
    import _socket
    import os
    import struct

    message, ancillary, msg_flags, _ = sock.recvmsg(65536, _socket.CMSG_SPACE(4 * max_fds), flags)
    fds = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += struct.unpack("%di" % (len(data) // 4), data[:len(data) - len(data) % 4])
    if len(fds) > max_fds or msg_flags & _socket.MSG_CTRUNC:
        for fd in fds:
            os.close(fd)
        fds = []
    return message, fds


def serve(config):
    """The zygote's loop: fork a child per request, reap children, tell each judge its child's exit."""
    import _socket
    import os
    import select

    import gc
    import resource  # noqa: F401 -- the server's limits: imported once here, not in every sample

    system = _Sys(config["keyctl"])
    system.prctl(PR_SET_DUMPABLE, 0)  # nothing in a sample can read or write the zygote's memory
    gc.freeze()  # a sample's collections skip the zygote's objects: no copy-on-write of their pages for that
    sock = _socket.socket(fileno=config["socket_fd"])
    poller, children = select.poll(), {}  # pidfd -> (pid, reply socket)
    poller.register(sock.fileno(), select.POLLIN)
    while True:
        for fd, _ in poller.poll():
            if fd != sock.fileno():
                pid, reply = children.pop(fd)
                poller.unregister(fd)
                _, status = os.waitpid(pid, 0)
                _tell(reply, b"exit %d" % os.waitstatus_to_exitcode(status))
                os.close(fd)
                continue
            message, fds = recv_fds(sock, 4)
            if not message:  # the harness side is gone
                os._exit(0)
            if len(fds) != 4:
                for extra in fds:
                    os.close(extra)
                continue
            pid = os.fork()
            if pid == 0:
                _sample_child(system, config, loads(message), fds)
            for extra in fds[:3]:
                os.close(extra)
            reply = _socket.socket(fileno=fds[3])
            pidfd = os.pidfd_open(pid)
            _tell(reply, b"child", pidfd)
            children[pidfd] = (pid, reply)
            poller.register(pidfd, select.POLLIN)


def _tell(reply, message, fd=None):
    """A message to a judge that may be gone (never blocks the zygote; not through O_NONBLOCK, which the
    child's copy of the socket would share)."""
    import _socket

    try:
        send_fds(reply, message, [fd] if fd is not None else [], _socket.MSG_DONTWAIT)
    except OSError:
        pass
    if fd is None:
        reply.close()


def _sample_child(system, config, request, fds):
    """C: wait for the judge's go, build the sample's namespaces, fork its init, watch; never returns."""
    import _socket
    import os

    code = 127
    try:
        for target, fd in enumerate(fds):  # stdin, stdout, stderr of the server; the reply socket as 3
            os.dup2(fd, target)
        os.closerange(4, 1 << 16)  # the zygote's socket and other samples' reply sockets
        system.prctl(PR_SET_DUMPABLE, 1)  # its own uid_map must be writable by itself
        reply = _socket.socket(fileno=3)
        if reply.recv(16) != b"go":  # the judge moves this process into the sample's cgroup first
            os._exit(code)
        uid, gid = os.getuid(), os.getgid()
        system.unshare(SAMPLE_NAMESPACES)
        for name, text in (("setgroups", "deny"), ("uid_map", "%d %d 1" % (uid, uid)),
                           ("gid_map", "%d %d 1" % (gid, gid))):
            with open("/proc/self/" + name, "w") as f:
                f.write(text)
        init = os.fork()
        if init == 0:
            _sample_init(system, config, request)
        _blank_stdio()
        pidfd = os.pidfd_open(init)
        send_fds(reply, b"init", [pidfd])
        code = _watch(reply, pidfd, init)
    except BaseException as exc:
        _report(exc)
    os._exit(code)


def _report(exc):
    """Why the sandbox could not be built, on descriptor 2 (the server's stderr until it is blanked; the
    judge keeps it as the program's output)."""
    import os

    try:
        os.write(2, ("zygote: %s: %s\n" % (type(exc).__name__, exc)).encode())
    except BaseException:
        pass


def _blank_stdio():
    """0, 1 and 2 to /dev/null: only the server holds the pipes, so the judge sees them close with it."""
    import os

    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _watch(reply, pidfd, pid):
    """In C: until the init exits (its status, as an exit code) or the judge goes away (then kill it)."""
    import os
    import select
    import signal

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(reply.fileno(), select.POLLIN)
    while True:
        ready = [fd for fd, _ in poller.poll()]
        if pidfd not in ready:
            try:
                if reply.recv(16):
                    continue
            except OSError:
                pass
            signal.pidfd_send_signal(pidfd, SIGKILL)  # the judge is gone: so is its sample
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        return code if code >= 0 else 128 - code


def _sample_init(system, config, request):
    """G, pid 1 of the sample's pid namespace: mounts, no capabilities, fork the server, reap; never returns."""
    import os

    code = 127
    try:
        system.prctl(PR_SET_PDEATHSIG, SIGKILL)  # dies with C (and so with the judge)
        system.mount(None, "/", None, MS_REC | MS_PRIVATE)
        flags = MS_NOSUID | MS_NODEV
        system.mount("tmpfs", "/tmp", "tmpfs", flags, "size=%d,mode=0755" % request["tmp_bytes"])
        system.mount("tmpfs", "/dev/shm", "tmpfs", flags, "size=%d,mode=0755" % request["shm_bytes"])
        system.mount("proc", "/proc", "proc", flags | MS_NOEXEC | MS_RDONLY)  # all of it read-only
        system.drop_capabilities()
        system.prctl(PR_SET_DUMPABLE, 0)
        server = os.fork()
        if server == 0:
            _sample_server(system, config)
        _tell_server(server)
        _blank_stdio()
        os.closerange(3, 1 << 16)
        while True:
            pid, status = os.wait()
            if pid == server:
                code = os.waitstatus_to_exitcode(status)
                code = code if code >= 0 else 128 - code
                break
    except BaseException as exc:
        _report(exc)
    os._exit(code)


def _tell_server(pid):
    """In G: a pidfd of the server to the judge (on the reply socket, still descriptor 3), which kills it
    directly at the end: its pipes then close at once, without waiting for the namespace's teardown."""
    import _socket
    import os

    reply = _socket.socket(fileno=3)
    try:
        pidfd = os.pidfd_open(pid)
        send_fds(reply, b"server", [pidfd], _socket.MSG_DONTWAIT)
        os.close(pidfd)
    except OSError as exc:
        _report(exc)
    reply.detach()


def _sample_server(system, config):
    """S: the sample's own session, keyring and seccomp filter, then the server; never returns."""
    import os
    import sys

    code = 1
    try:
        os.setsid()
        system.prctl(PR_SET_DUMPABLE, 1)
        system.join_session_keyring()
        os.chdir("/tmp")
        system.load_seccomp(bytes.fromhex(config["bpf"]))
        os.closerange(3, 1 << 16)  # the reply socket, ctypes' and anything else of C and G
        _server_main()
        code = 0
    except BaseException as exc:
        _report(exc)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code)


def boot():
    """Started by the harness in bubblewrap: the configuration is the first line of stdin."""
    import os
    import sys

    config = loads(sys.stdin.buffer.readline())
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    serve(config)


if __name__ == "__zygote__":
    boot()
