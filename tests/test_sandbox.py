"""The code sandbox against hostile programs, through the ``code_tests`` reward.

Every hostile program ends in 0.0 or None within its wall-clock limit, the harness lives on, and
nothing outside the sandbox changes. Programs are written so that a *leak makes them pass*: they
do the attack and return the right answers only if it worked, so a 1.0 is exactly a sandbox failure.
The table (:data:`CASES`) runs as the harness's user (root in CI) and as an unprivileged user
(``nobody``, created by nothing: it exists on Debian; the sandbox package is copied where it can
read it and run with the system interpreter). Run with ``-s`` to see the (case, value, seconds) table.
"""

import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from grpo_bench.benchmark import DATA_DIR, reward_columns
from grpo_bench.declared import load_declarations
from grpo_bench.plugins.benchmarks.code_data import MBPP, mbpp_entry_point
from grpo_bench.plugins.benchmarks.declared import BUNDLED
from grpo_bench.plugins.rewards.code_tests import code_tests, extract_program
from grpo_bench.sandbox import runner as sandbox
from grpo_bench.sandbox import cgroups, seccomp, wire
from grpo_bench.scoring import RewardScorer


def HumanEval():  # noqa: N802 - a fresh object each call, as when HumanEval was a class (now a declaration)
    return load_declarations([BUNDLED / "humaneval.toml"], DATA_DIR)["humaneval"]


LIMIT = 2.0  # sandbox wall-clock limit in these tests
SLACK = 3.0  # start-up, kill and clean-up on a loaded 2-core machine
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
TABLE: list[tuple[str, str, object, float]] = []
ROOT = os.geteuid() == 0
MARK = "grpo" + secrets.token_hex(6)
SECRET = "s3cr3t-" + MARK
SYSV_KEY = 0x5A000000 + secrets.randbelow(1 << 20)
MBPP_11 = next(p for p in MBPP().problems("test") if p.id == "mbpp/11")


#: the namespaced modes every test runs in (bubblewrap per sample, and the zygote that forks each sample's
#: sandbox); GRPO_BENCH_TEST_SANDBOX_MODES="zygote" runs one
MODES = os.environ.get("GRPO_BENCH_TEST_SANDBOX_MODES", "bwrap zygote").split()


def _bwrap_missing() -> str | None:
    if os.environ.pop(sandbox.MODE_ENV, None):  # these tests are about bubblewrap: never the weak mode
        pass
    try:
        sandbox.mode()
    except sandbox.SandboxUnavailable as exc:
        return str(exc)
    return None


# `make test` installs bubblewrap (CI runs as root); elsewhere these tests say what is missing
pytestmark = pytest.mark.skipif(bool(_bwrap_missing()), reason=str(_bwrap_missing()))


@pytest.fixture(scope="module", autouse=True, params=MODES)
def sandbox_mode(request):
    """Every test in each namespaced mode (a test that wants the weak mode sets it itself); the zygote's tests
    are skipped, saying why, where it does not work (the default then falls back to bubblewrap per sample)."""
    why = sandbox._probe(request.param, sandbox.sandbox_python())
    if why:
        pytest.skip(f"{request.param} mode does not work here: {why}")
    os.environ[sandbox.MODE_ENV] = request.param
    yield request.param
    os.environ.pop(sandbox.MODE_ENV, None)


def who(user: str) -> str:
    """The table's user column: the user and the mode."""
    return f"{user}/{os.environ.get(sandbox.MODE_ENV, 'bwrap')}"


@pytest.fixture(scope="module", autouse=True)
def print_table(sandbox_mode):
    yield
    print(f"\n\nsandbox: {sandbox.describe()}\n{'case':44s} {'user':14s} {'value':>6s} {'seconds':>8s}")
    for case, user, value, seconds in TABLE:
        print(f"{case:44s} {user:14s} {str(value):>6s} {seconds:8.2f}")
    TABLE.clear()


def fenced(program: str) -> str:
    return f"Here is my solution:\n```python\n{program}\n```\n"


def score(case: str, program: str, tests: str = TESTS, limit: float = LIMIT, entry_point: str = "",
          setup: str = "") -> float | None:
    """code_tests on one completion, recorded in the table; checks the time bound."""
    t0 = time.monotonic()
    value = code_tests([""], [fenced(program)], tests=[tests], time_limit_s=[limit], entry_point=[entry_point],
                       setup_code=[setup])[0]
    seconds = time.monotonic() - t0
    TABLE.append((case, who("harness"), value, seconds))
    assert seconds < limit + SLACK, f"{case} took {seconds:.1f} s"
    return value


class Host:
    """Things outside the sandbox that hostile programs go for, and the checks that they are unchanged."""

    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="grpo-host-", dir="/var/tmp"))
        self.base.chmod(0o755)
        self.open_dir = self.base / "world-writable"  # outside any scratch list
        self.open_dir.mkdir()
        self.open_dir.chmod(0o777)
        (self.open_dir / "canary").write_text("original")
        self.home = self.base / "home"
        self.home.mkdir()
        (self.home / "present").write_text("x")
        self.tmp_marker = Path(tempfile.gettempdir()) / f"{MARK}-present"
        self.tmp_marker.write_text("x")
        os.chmod(self.tmp_marker, 0o644)
        self.sock_path = str(self.base / "host.sock")
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.sock_path)
        os.chmod(self.sock_path, 0o777)
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", f"{MARK}-cmdline"])
        self.sysv_before = self.sysv()

    def chown_home(self, uid: int) -> None:
        os.chown(self.home, uid, uid)

    @staticmethod
    def sysv() -> set[str]:
        keys = set()
        for kind in ("shm", "msg", "sem"):
            try:
                lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
            except OSError:
                continue
            keys |= {f"{kind}:{int(line.split()[0]):x}" for line in lines if line.split()}
        return keys

    def check_unchanged(self) -> None:
        assert sorted(p.name for p in self.open_dir.iterdir()) == ["canary"]
        assert (self.open_dir / "canary").read_text() == "original"
        assert sorted(p.name for p in self.home.iterdir()) == ["present"]
        assert not list(Path(tempfile.gettempdir()).glob(f"pwned-{MARK}*"))
        assert not any(f"{SYSV_KEY:x}" in k for k in self.sysv() - self.sysv_before), "SysV IPC object left"
        with pytest.raises(BlockingIOError):
            self.listener.accept()
        assert self.sleeper.poll() is None, "a host process was killed"
        assert marked_processes(f"{MARK}-daemon") == [], "a sandboxed process survived"

    def close(self) -> None:
        self.sleeper.kill()
        self.sleeper.wait()
        self.listener.close()
        self.tmp_marker.unlink(missing_ok=True)
        shutil.rmtree(self.base, ignore_errors=True)


def marked_processes(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
                state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if marker.encode() in cmdline and state not in "ZX":
                found.append(int(name))
    return found


@pytest.fixture(scope="module")
def host():
    h = Host()
    yield h
    h.close()


# attacks on the verdict itself (issue 25): a wrong program must score exactly 0.0 (not None), a right one 1.0
VERDICT_ATTACKS = {
    "StopIteration ends map() in the tests": (
        "def add(a, b):\n    raise StopIteration\n", "assert all(map(lambda a: add(a, 1) == a + 1, [1, 2, 3]))\n"),
    "StopIteration caught by the tests": (
        "def add(a, b):\n    raise StopIteration\n",
        "for a in range(3):\n    try:\n        assert add(a, 1) == a + 1\n    except StopIteration:\n        pass\n"),
    "assert message of 10**5000": ("def add(a, b):\n    return 10 ** 5000\n", "assert add(2, 3) == 5, add(2, 3)\n"),
    "64 kB of \\x01 on stderr (wrong program)": WRONG + "import sys\nsys.stderr.write('\\x01' * 65536)\n",
    "64 kB of \\x01 on stderr (correct program)": GOOD + "import sys\nsys.stderr.write('\\x01' * 65536)\n",
    "1 MB of \\x01 and non-BMP on stderr (correct program)": (
        GOOD + "import sys\nsys.stderr.write(('\\x01' + chr(0x1F600)) * 2 ** 19)\n"),
}
EXPECTED = {name: 1.0 if "(correct program)" in name else 0.0 for name in VERDICT_ATTACKS}
SYSCALLS = seccomp.numbers()
LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
# attacks on the machine (issue 25): each program passes only if its attack worked
MACHINE_ATTACKS = {
    "ptrace the sandbox's init": GOOD + LIBC + "assert libc.ptrace(16, 1, 0, 0) == 0, 'PTRACE_ATTACH failed'\n",
    "read the init's memory (process_vm_readv)": (
        GOOD + LIBC + "buf = ctypes.create_string_buffer(8)\n"
        "class IOV(ctypes.Structure):\n    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]\n"
        "local, remote = IOV(ctypes.addressof(buf), 8), IOV(0x400000, 8)\n"
        "assert libc.process_vm_readv(1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) == 8 or "
        "ctypes.get_errno() not in (1, 13)\n"),
    "kernel keyring (add a key, read it back)": (
        GOOD + LIBC + f"key = libc.syscall({SYSCALLS['add_key']}, b'user', b'{MARK}', b'secret', 6, -3)\n"
        "assert key > 0, 'add_key failed'\nbuf = ctypes.create_string_buffer(64)\n"
        f"assert libc.syscall({SYSCALLS['keyctl']}, 11, key, buf, 64) == 6\n"),
    "new user namespace (unshare)": GOOD + LIBC + "assert libc.unshare(0x10000000) == 0\n",
    "write the root and /dev": (
        GOOD + "for d in ('/', '/dev'):\n    open(d.rstrip('/') + '/pwned', 'wb').write(b'0' * 2 ** 20)\n"),
    "fill /dev/shm past its size": (
        GOOD + "for i in range(40):\n    with open(f'/dev/shm/f{i}', 'wb') as f:\n        f.write(b'0' * 2 ** 20)\n"),
    "fill /tmp past its size (many small files)": (
        GOOD + "for i in range(100):\n    with open(f'/tmp/f{i}', 'wb') as f:\n        f.write(b'0' * 2 ** 20)\n"),
}


def acceptable(name: str, value) -> bool:
    """A hostile program scores 0.0 or None; a verdict attack exactly what its program deserves."""
    return value == EXPECTED[name] if name in EXPECTED else value in (0.0, None)


def cases(host: Host) -> dict[str, tuple[str, str, str]]:
    """case -> (program, tests, entry point). A 1.0 on any of them is a sandbox failure."""
    daemon = (f"import subprocess\nsubprocess.Popen(['/usr/bin/python3', '-c', 'import time; time.sleep(60)', "
              f"'{MARK}-daemon'], start_new_session=True)\n")
    leak = GOOD + "import os\n"
    t = {
        "infinite loop": GOOD + "while True:\n    pass\n",
        "ignores SIGTERM": GOOD + "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n",
        "fork bomb": GOOD + "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "setsid daemon": GOOD + "import os, time\nif os.fork() == 0:\n    os.setsid()\n" + "    " + daemon.replace(
            "\n", "\n    ").rstrip() + "\n    time.sleep(60)\nassert False, 'the daemon must still be killed'\n",
        "daemon outlives the sample": GOOD + daemon + "assert False\n",
        "memory bomb (one block)": GOOD + "x = bytearray(8 * 1024 ** 3)\n",
        "memory bomb (growing)": GOOD + "a = []\nwhile True:\n    a.append(bytearray(10 ** 7))\n",
        "fill the disk (one file)": (
            GOOD + "with open('big', 'wb') as f:\n    for _ in range(2000):\n        f.write(b'0' * 2 ** 20)\n"),
        "fill /tmp and /dev/shm": (
            GOOD + "for d in ('/tmp', '/dev/shm', '/dev'):\n    for i in range(10):\n"
            "        with open(f'{d}/fill{i}', 'wb') as f:\n            f.write(b'0' * 15 * 2 ** 20)\n"),
        "print 100 MB": WRONG + "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10 ** 6)\n",
        "os._exit(0) before the asserts": WRONG + "import os\nos._exit(0)\n",
        "sys.exit(0) before the asserts": WRONG + "import sys\nsys.exit(0)\n",
        "os._exit(0) inside the function": "import os\ndef add(a, b):\n    os._exit(0)\n",
        "SystemExit inside the function": "def add(a, b):\n    raise SystemExit(0)\n",
        "kill own process group": WRONG + "import os, signal\nos.killpg(0, signal.SIGKILL)\n",
        "kill(-1, SIGKILL) and the parent": (
            WRONG + "import os, signal\nfor f in (lambda: os.kill(os.getppid(), 9), lambda: os.killpg(os.getpgid("
            "os.getppid()), 9), lambda: os.kill(-1, 9)):\n    try:\n        f()\n    except OSError:\n        pass\n"),
        "override AssertionError": (
            WRONG + "import builtins\nbuiltins.AssertionError = type('Fake', (BaseException,), {})\n"),
        "override builtins and os.write": (
            WRONG + "import builtins, os, sys\nbuiltins.print = lambda *a, **k: None\nbuiltins.compile = None\n"
            "builtins.exec = None\nos.write = lambda fd, data: len(data)\nos._exit = lambda code: None\n"),
        "program writes the verdict itself": (
            WRONG + "import os\nv = b'{\"status\": \"passed\", \"reason\": \"\", \"output\": \"\"}\\n'\n"
            "for fd in range(256):\n    try:\n        os.write(fd, v + b'{\"value\": [\"i\", \"0x5\"]}\\n')\n"
            "    except OSError:\n        pass\nos._exit(0)\n"),
        "close every descriptor": WRONG + "import os\nos.closerange(0, 1024)\n",
        "always-equal object": (
            "class Any:\n    def __eq__(self, other):\n        return True\n    __ne__ = lambda s, o: False\n"
            "def add(a, b):\n    return Any()\n"),
        "rigged dunders (int subclass)": (
            "class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
            "def add(a, b):\n    return I(0)\n"),
        "rigged dunders (list subclass, __class__)": (
            "class L(list):\n    __class__ = int\n    def __eq__(self, other):\n        return True\n"
            "def add(a, b):\n    return L()\n"),
        "shadow abs": (WRONG + "import builtins\nbuiltins.abs = lambda x: 0\n",
                       "assert abs(add(2, 3) - 5) < 1e-9\n"),
        "shadow math.isclose": (WRONG + "import math\nmath.isclose = lambda *a, **k: True\n",
                                "import math\nassert math.isclose(add(2, 3), 5)\n"),
        "shadow unittest asserts": (
            WRONG + "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n",
            "import unittest\nunittest.TestCase().assertEqual(add(2, 3), 5)\n"),
        "define abs for the tests": (WRONG + "def abs(x):\n    return 0\n", "assert abs(add(2, 3) - 5) < 1e-9\n"),
        "trace hook skips the asserts": (
            WRONG + "import sys, threading\ndef tr(frame, event, arg):\n    if frame.f_code.co_filename == '<tests>' "
            "and event == 'line':\n        raise SystemExit(0)\n    return tr\nsys.settrace(tr)\nthreading.settrace(tr)\n"),
        "nonce search in memory": (
            WRONG + "import gc, os\nfound = [o for o in gc.get_objects() if isinstance(o, (str, bytes)) and "
            "(b'PASS' if isinstance(o, bytes) else 'PASS') in o]\nfor fd in range(3, 64):\n    for o in found:\n"
            "        try:\n            os.write(fd, o if isinstance(o, bytes) else o.encode())\n"
            "        except OSError:\n            pass\n"),
        "world-writable host dir": (
            leak + f"d = {str(host.open_dir)!r}\nassert os.path.exists(d + '/canary')\n"
            "with open(d + '/big', 'wb') as f:\n    f.write(b'0' * 50 * 2 ** 20)\nopen(d + '/canary', 'w').write('x')\n"),
        "SysV shm and msg queue (create)": (
            leak + "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"assert libc.shmget({SYSV_KEY}, 4096, 0o1666) >= 0 and libc.msgget({SYSV_KEY}, 0o1666) >= 0\n"
            "assert False, 'created; the next case looks for them'\n"),
        "SysV shm and msg queue (find a previous one)": (
            leak + "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"assert libc.shmget({SYSV_KEY}, 0, 0) >= 0 or libc.msgget({SYSV_KEY}, 0) >= 0\n"),
        "host AF_UNIX socket": (
            leak + f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({host.sock_path!r})\ns.send(b'x')\n"),
        "host processes' command lines": (
            leak + "seen = b''\nfor p in os.listdir('/proc'):\n    try:\n        seen += open(f'/proc/{p}/cmdline', "
            f"'rb').read()\n    except OSError:\n        pass\nassert b'{MARK}-cmdline' in seen\n"),
        "environment secret": (
            leak + "seen = ' '.join(os.environ.values())\nfor pid in ('1', str(os.getppid()), 'self'):\n    try:\n"
            "        seen += open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1')\n    except OSError:\n"
            f"        pass\nassert {SECRET!r} in seen\n"),
        "write $HOME": (leak + f"h = {str(host.home)!r}\nassert os.path.exists(h + '/present')\n"
                        f"open(h + '/pwned-{MARK}', 'w').write('x')\n"),
        "write host /tmp": (leak + f"assert os.path.exists({str(host.tmp_marker)!r})\n"
                            f"open('/tmp/pwned-{MARK}', 'w').write('x')\n"),
        "read the bundled reference solutions": (
            "import gzip, json\n" f"rows = [json.loads(l) for l in gzip.open({str(DATA_DIR / 'mbpp/mbpp.jsonl.gz')!r}, "
            "'rt')]\nexec(next(r['code'] for r in rows if r['task_id'] == 11))\n",
            MBPP_11.reward_columns()["tests"], MBPP_11.reward_columns()["entry_point"]),
    }
    t.update(VERDICT_ATTACKS)
    t.update(MACHINE_ATTACKS)
    out = {}
    for name, value in t.items():
        program, tests, entry = (value, TESTS, "") if isinstance(value, str) else (*value, "")[:3]
        out[name] = (program, tests, entry)
    return out




def test_correct_solution_passes_and_wrong_one_fails():
    assert score("correct solution", GOOD) == 1.0
    assert score("wrong solution", WRONG) == 0.0
    assert score("syntax error", "def add(a, b) return") == 0.0
    assert score("correct MBPP reference", MBPP_11.answer, MBPP_11.reward_columns()["tests"],
                 entry_point=MBPP_11.reward_columns()["entry_point"]) == 1.0


def test_hostile_programs_as_the_harness_user(host, monkeypatch):
    monkeypatch.setenv("GRPO_SECRET", SECRET)
    if ROOT:
        host.chown_home(0)
    failures = []
    for name, (program, tests, entry) in cases(host).items():
        value = score(name, program, tests, entry_point=entry)
        if not acceptable(name, value):
            failures.append(name)
    assert failures == []
    host.check_unchanged()


HELPER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from sandbox import runner
out = []
for name, program, tests, entry in json.load(open(sys.argv[2])):
    t0 = time.monotonic()
    r = runner.run_tests(program, tests, entry_point=entry or None, limits=runner.Limits(wall_s=float(sys.argv[3])))
    value = 1.0 if r.passed else (None if r.status == "error" else 0.0)
    out.append([name, value, time.monotonic() - t0, r.status, r.reason[:200], r.mode])
print(json.dumps(out))
"""


def unprivileged_prefix() -> list[str]:
    """Run as nobody when we are root; as ourselves (already unprivileged) otherwise."""
    if not ROOT:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) is needed to run as an unprivileged user")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def copy_package(base: Path) -> Path:
    """The sandbox package where an unprivileged user can read it (the harness's venv may live under /root)."""
    pkg = base / "pkg" / "sandbox"
    shutil.copytree(Path(sandbox.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True)  # the host (and so this copy) serves every mode
    for p in [base / "pkg", *pkg.parent.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return base / "pkg"


def test_hostile_programs_as_an_unprivileged_user(host):
    if not os.path.exists("/usr/bin/python3"):
        pytest.skip("no system interpreter")
    prefix = unprivileged_prefix()
    if ROOT:
        host.chown_home(65534)
    pkg = copy_package(host.base)
    jobs = host.base / "jobs.json"
    jobs.write_text(json.dumps([[n, *v] for n, v in cases(host).items()]))
    jobs.chmod(0o644)
    env = {"PATH": sandbox.SAFE_PATH, "HOME": str(host.home), "GRPO_SECRET": SECRET,
           sandbox.MODE_ENV: os.environ[sandbox.MODE_ENV]}
    proc = subprocess.run([*prefix, "/usr/bin/python3", "-I", "-c", HELPER, str(pkg), str(jobs), str(LIMIT)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout)
    user = who("nobody" if ROOT else "user")
    for name, value, seconds, status, reason, mode in rows:
        TABLE.append((name, user, value, seconds))
    assert {r[5] for r in rows} == {os.environ[sandbox.MODE_ENV]}
    assert [r[0] for r in rows if not acceptable(r[0], r[1])] == []
    assert all(r[2] < LIMIT + SLACK for r in rows), [r for r in rows if r[2] >= LIMIT + SLACK]
    host.check_unchanged()


KILLED_HARNESS = r"""
import sys
sys.path.insert(0, sys.argv[1])
from sandbox import runner
program = ("import subprocess, time\nsubprocess.Popen(['/usr/bin/python3', '-c', 'import time; time.sleep(60)', "
           "'%s'], start_new_session=True)\ndef add(a, b):\n    return a + b\nwhile True:\n    pass\n")
runner.run_tests(program % sys.argv[2][::-1], "assert add(1, 2) == 3\n", limits=runner.Limits(wall_s=60))
"""


@pytest.mark.parametrize("as_user", ["harness", "unprivileged"])
def test_nothing_outlives_a_sigkilled_harness(host, as_user):
    prefix = unprivileged_prefix() if as_user == "unprivileged" else []
    if as_user == "harness" and not ROOT:
        pytest.skip("same as the unprivileged case")
    pkg = host.base / "pkg" if (host.base / "pkg").exists() else copy_package(host.base)
    marker = f"{MARK}-killed-{as_user}"
    t0 = time.monotonic()
    harness = subprocess.Popen([*prefix, "/usr/bin/python3", "-I", "-c", KILLED_HARNESS, str(pkg), marker[::-1]],
                               env={"PATH": sandbox.SAFE_PATH, sandbox.MODE_ENV: os.environ[sandbox.MODE_ENV]})
    try:
        while not marked_processes(marker) and time.monotonic() - t0 < 20:
            time.sleep(0.1)
        assert marked_processes(marker), "the sandboxed daemon never started"
    finally:
        harness.kill()
        harness.wait()
    deadline = time.monotonic() + 5
    while marked_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    TABLE.append(("outlive a SIGKILLed harness", who(as_user), len(marked_processes(marker)), time.monotonic() - t0))
    assert marked_processes(marker) == []


def test_the_table_detects_leaks_without_bubblewrap(host, monkeypatch):
    """Positive control: in the weak mode (no namespaces) the read-only OS leaks of the table do score 1.0."""
    monkeypatch.setenv(sandbox.MODE_ENV, "weak")
    monkeypatch.setenv("GRPO_SECRET", SECRET)
    table = cases(host)
    for name in ("host processes' command lines", "read the bundled reference solutions"):
        program, tests, entry = table[name]
        result = sandbox.run_tests(program, tests, entry_point=entry or None, limits=sandbox.Limits(wall_s=LIMIT))
        assert result.passed, (name, result)


def test_output_is_capped():
    program = WRONG + "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10 ** 6)\n"
    result = sandbox.run_tests(program, TESTS, limits=sandbox.Limits(wall_s=LIMIT))
    assert result.status in ("failed", "timeout")
    assert len(result.stdout) < 2 * sandbox.Limits().output_bytes and "more bytes" in result.stdout


def test_no_network_to_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    program = (GOOD + "import socket\ns = socket.create_connection(('127.0.0.1', %d), timeout=1)\n"
               "s.sendall(b'leak')\ns.close()\n" % port)
    try:
        assert score("connect to a loopback listener", program) in (0.0, None)
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()


KILL_PARENT = WRONG + """
import os, signal
ppid = os.getppid()
os.kill(ppid, signal.SIGKILL)
os.killpg(os.getpgid(ppid), signal.SIGKILL)
os.kill(-1, signal.SIGKILL)
"""


def test_killing_the_parent_leaves_the_harness_alive():
    scorer = RewardScorer({"code_tests": code_tests}, timeout_s=10, workers=2)
    try:
        t0 = time.monotonic()
        res = scorer.score(["", ""], [fenced(KILL_PARENT), fenced(GOOD)],
                           {"tests": [TESTS, TESTS], "time_limit_s": [LIMIT, LIMIT]})
        TABLE.append(("kill the parent (scorer)", who("harness"), res.values["code_tests"][0], time.monotonic() - t0))
        assert res.values["code_tests"] == [0.0, 1.0]
        assert res.count_summary()["code_tests"]["error"] == 0
        again = scorer.score([""], [fenced(GOOD)], {"tests": [TESTS], "time_limit_s": [LIMIT]})
        assert again.values["code_tests"] == [1.0]
    finally:
        scorer.close()


def test_slow_samples_do_not_hold_the_batch():
    completions = [GOOD + "while True:\n    pass\n", GOOD, WRONG, GOOD, GOOD + "while True:\n    pass\n", GOOD,
                   WRONG, GOOD]
    scorer = RewardScorer({"code_tests": code_tests}, timeout_s=10, workers=2)
    try:
        t0 = time.monotonic()
        res = scorer.score([""] * 8, [fenced(c) for c in completions],
                           {"tests": [TESTS] * 8, "time_limit_s": [LIMIT] * 8})
        elapsed = time.monotonic() - t0
    finally:
        scorer.close()
    TABLE.append(("batch of 8, two infinite loops (2 workers)", who("harness"),
                  res.count_summary()["code_tests"]["ok"], elapsed))
    assert res.values["code_tests"] == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert res.count_summary()["code_tests"]["timeout"] == 0  # the sandbox limit fires before the scorer's
    assert elapsed < 2 * LIMIT + 2 * SLACK  # the two loops overlap on the two workers


def test_sandbox_refuses_without_bubblewrap_unless_weak_mode_is_chosen(monkeypatch, capsys):
    monkeypatch.setenv(sandbox.PYTHON_ENV, "/nonexistent/python3")
    with pytest.raises(sandbox.SandboxUnavailable, match="GRPO_BENCH_SANDBOX=weak"):
        code_tests([""], [fenced(GOOD)], tests=[TESTS])
    scorer_like = RewardScorer({"code_tests": code_tests}, timeout_s=20, workers=1)
    try:
        res = scorer_like.score([""], [fenced(GOOD)], {"tests": [TESTS]})
    finally:
        scorer_like.close()
    assert res.count_summary()["code_tests"]["error"] == 1  # refused: an error, never a score
    monkeypatch.setenv(sandbox.MODE_ENV, "weak")
    sandbox._warn_weak.cache_clear()
    assert sandbox.describe()["mode"] == "weak"
    assert "WARNING" in capsys.readouterr().err
    result = sandbox.run_tests(WRONG + "class A:\n    __eq__ = lambda s, o: True\n", TESTS)
    assert result.mode == "weak" and result.status == "failed"
    assert code_tests([""], [fenced(GOOD)], tests=[TESTS]) == [1.0]
    assert code_tests([""], [fenced("def add(a, b):\n    class A:\n        __eq__ = lambda s, o: True\n"
                                    "    return A()\n")], tests=[TESTS]) == [0.0]
    monkeypatch.setenv(sandbox.MODE_ENV, "nonsense")
    with pytest.raises(sandbox.SandboxUnavailable, match="nonsense"):
        sandbox.mode()


def test_the_default_is_the_zygote_and_falls_back_to_bubblewrap_per_sample_only_when_not_asked(monkeypatch, caplog):
    """Unset: the zygote where it works, else bubblewrap per sample with one log line; asked for: no fallback."""
    probes = []
    monkeypatch.setattr(sandbox, "_probe", lambda m, python: probes.append(m) or working.get(m))
    monkeypatch.delenv(sandbox.MODE_ENV)
    working = {"zygote": None, "bwrap": None}  # _probe: None = works, else why not
    assert sandbox.mode() == "zygote" and probes == ["zygote"]
    working["zygote"] = "error: unshare: Operation not permitted"
    sandbox._say_fallback.cache_clear()
    with caplog.at_level("WARNING", logger=sandbox.log.name):
        assert sandbox.mode() == "bwrap"
    assert probes[1:] == ["zygote", "bwrap"]
    assert [r.getMessage() for r in caplog.records if "zygote mode does not work" in r.getMessage()] != []
    monkeypatch.setenv(sandbox.MODE_ENV, "zygote")  # asked for: refused, not replaced
    with pytest.raises(sandbox.SandboxUnavailable, match="unshare: Operation not permitted"):
        sandbox.mode()
    monkeypatch.setenv(sandbox.MODE_ENV, "bwrap")
    assert sandbox.mode() == "bwrap"
    working["bwrap"] = "bwrap (bubblewrap) is not installed"
    monkeypatch.delenv(sandbox.MODE_ENV)
    with pytest.raises(sandbox.SandboxUnavailable, match="not installed"):
        sandbox.mode()


def test_benchmarks_record_the_sandbox_mode():
    assert HumanEval().describe()["code_sandbox"]["mode"] == os.environ[sandbox.MODE_ENV]
    assert MBPP().describe()["code_sandbox"]["mode"] == os.environ[sandbox.MODE_ENV]


def test_no_tests_means_the_reward_does_not_apply():
    assert code_tests(["", ""], ["x", "y"]) == [None, None]


PROTOCOL = [  # (program, tests, expected status, a word of the reason)
    ("def f(x):\n    return {1: (2.5, b'x', None, True, {3}, frozenset([4]), [1j])}\n",
     "assert f(0) == {1: (2.5, b'x', None, True, {3}, frozenset([4]), [1j])}\n", "passed", ""),
    ("def f(x):\n    return x\n", "assert f(10 ** 5000) == 10 ** 5000 and f(float('inf')) == float('inf')\n",
     "passed", ""),
    ("def f(x):\n    raise ValueError('bad ' + x)\n",
     "try:\n    f('input')\n    raise AssertionError('no error')\nexcept ValueError as e:\n    assert str(e) == 'bad input'\n",
     "passed", ""),
    ("class MyError(Exception):\n    pass\ndef f():\n    raise MyError('x')\n",
     "try:\n    f()\nexcept Exception as e:\n    assert type(e).__name__ == 'RemoteError'\n", "passed", ""),
    ("def f():\n    return (x for x in [])\n", "try:\n    f()\nexcept BaseException:\n    pass\n", "failed",
     "not plain data"),
    ("def f(g):\n    return g(1)\n", "f(lambda x: x)\n", "failed", "cannot send"),
    ("import time\ndef f():\n    time.sleep(30)\n", "f()\n", "timeout", "wall-clock"),
    ("def f(l):\n    return remove_datatype(l, int)\ndef remove_datatype(l, t):\n    return [x for x in l if "
     "not isinstance(x, t)]\n", "assert remove_datatype((1, 'a'), int) == ['a']\n", "passed", ""),
    ("class Node:\n    def __init__(self, v):\n        self.v, self.left = v, None\n"
     "def depth(n):\n    return 0 if n is None else 1 + depth(n.left)\n",
     "assert depth(root) == 2 and depth(Node(1)) == 1\n", "passed", ""),
]


@pytest.mark.parametrize("program,tests,status,word", PROTOCOL)
def test_protocol(program, tests, status, word):
    setup = "root = Node(1)\nroot.left = Node(2)\n" if "Node" in program else ""
    result = sandbox.run_tests(program, tests, setup_code=setup, limits=sandbox.Limits(wall_s=LIMIT))
    assert result.status == status, result
    assert word in result.reason


def test_wire_round_trip_and_rejects():
    value = {1: [True, None, 2.5, (3, "x")], "k": {b"\x00", frozenset({1})}, (1, 2): [float("nan"), -0.0, 2j]}
    back = wire.decode(json.loads(json.dumps(wire.encode(value))))
    assert repr(back) == repr(value)
    assert type(wire.decode(wire.encode(True))) is bool and type(wire.decode(wire.encode(1))) is int
    for bad in (object(), lambda: 1, iter([]), type("C", (), {})):
        with pytest.raises(wire.NotPlain):
            wire.encode(bad)
    for bad in (["x"], ["T", "os"], ["h", 1], ["i", 5], ["d", [[["l", []], ["n"]]]], [["n"]], "n"):
        with pytest.raises((ValueError, TypeError)):
            wire.decode(bad)
    deep = ["n"]
    for _ in range(wire.MAX_DEPTH + 5):
        deep = ["l", [deep]]
    with pytest.raises(ValueError):
        wire.decode(deep)



def test_the_servers_codec_writes_and_reads_what_json_does():
    """The sandbox's server speaks JSON without importing json (server._lean_codec): its lines are
    json.dumps's compact ASCII lines, and it reads json.dumps's lines back to the same objects."""
    from grpo_bench.sandbox import server

    value = wire.encode({1: ["\udc80 é \x00 \"q\"\n", b"\xff", 2.5, None, True, (3, 2j)], "k": frozenset({-7})})
    messages = [{"value": value}, {"raise": ["ValueError", "bad \u2603"]}, {"handle": 12}, {"ready": {}},
                {"limits": {"wall_s": 2.5, "memory_mb": 1024}, "names": ["f", "g"], "program": "x = '\\'\n"}]
    for message in messages:
        expected = (json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n").encode()
        assert server.dumps(message) == expected
        assert server.loads(expected) == message == json.loads(expected)
    for bad in (b"[1, 2]\n", b'{"a": 1} x\n', b"{\n", b'{"a": NaN}\n', b""):
        with pytest.raises(ValueError):
            server.loads(bad)


def test_the_sandbox_starts_without_importing_json():
    program = "import sys\nLOADED = sorted(m for m in ('json', 're', 'enum') if m in sys.modules)\n"
    result = sandbox.run_tests(program, "assert LOADED == []\n", limits=sandbox.Limits(wall_s=LIMIT))
    assert result.passed, result


def test_the_server_arrives_compiled_where_the_bytecode_formats_match():
    """Same magic number as the harness's interpreter: the marshalled code (one argument after -c);
    an interpreter that cannot say its format gets the source."""
    import importlib.util

    same = sandbox._bytecode_magic(sandbox.sandbox_python()) == importlib.util.MAGIC_NUMBER.hex()
    same = same or sandbox.mode() == "zygote"  # the zygote's own code is one argument, compiled once per zygote
    program = "import sys\nARGUMENTS = len(sys.argv) - 1\n"
    result = sandbox.run_tests(program, f"assert ARGUMENTS == {1 if same else 0}\n", limits=sandbox.Limits(wall_s=LIMIT))
    assert result.passed, result
    assert sandbox.server_arguments("/nonexistent/python3") == ("-c", sandbox.SERVER)

def test_extract_program():
    assert extract_program("a\n```python\nx = 1\n```\nb\n```python\nx = 2\n```\n") == "x = 2\n"
    assert extract_program("```python\nx = 1\n```\n```text\nnot code\n```") == "x = 1\n"
    assert extract_program("```\nx = 3\n```") == "x = 3\n"
    assert extract_program("x = 4") == "x = 4"
    assert extract_program("sure:\n```python\ndef f():\n    return 5") == "def f():\n    return 5"  # truncated


def test_mbpp_entry_point():
    assert mbpp_entry_point("def sum(a, b):\n    return 0\n", "assert sum(1, 2) == 0\n") == "sum"
    assert mbpp_entry_point("class Pair:\n    pass\ndef f(x):\n    pass\n", "assert f([Pair()]) == 1") == "f"
    assert mbpp_entry_point("x = 1\n", "assert len([]) == 0") == ""


def test_code_benchmarks_load_with_authors_splits():
    mbpp = MBPP()
    sizes = {split: len(mbpp.problems(split)) for split in mbpp.splits}
    assert sizes == {"train": 374, "validation": 90, "test": 500, "prompt": 10}
    assert mbpp.problems("test")[0].id == "mbpp/11" and mbpp.problems("train")[-1].id == "mbpp/974"
    he = HumanEval().problems("test")
    assert len(he) == 164 and "```python" in he[0].prompt
    for p in (he[0], mbpp.problems("test")[0]):
        assert set(p.reward_columns()) == {"answer", "solution", "ground_truth", "tests", "entry_point", "setup_code", "program_prefix"}
    assert "assert " in mbpp.problems("test")[0].prompt  # the usual MBPP spec shows the asserts


@pytest.mark.parametrize("bench,split", [("humaneval", "test"), ("mbpp", "test"), ("mbpp", "train")])
def test_reference_solutions_pass_and_empty_answers_fail(bench, split):
    problems = (HumanEval() if bench == "humaneval" else MBPP()).problems(split, limit=12)
    cols = reward_columns(problems)
    good = code_tests([p.prompt for p in problems], [fenced(p.answer) for p in problems], **cols)
    empty = code_tests([p.prompt for p in problems], ["I don't know."] * len(problems), **cols)
    assert good == [1.0] * len(problems) and empty == [0.0] * len(problems)


@pytest.mark.slow
def test_every_reference_solution_passes():
    # generous limits: this checks correctness, and a few references (e.g. MBPP 123, amicable numbers below
    # 10000) take seconds on a loaded 2-core machine
    scorer = RewardScorer({"code_tests": code_tests}, timeout_s=60, workers=2)
    try:
        for bench in (HumanEval(), MBPP()):
            for split in bench.splits:
                problems = bench.problems(split)
                cols = reward_columns(problems)
                cols["time_limit_s"] = [30.0] * len(problems)
                res = scorer.score([""] * len(problems), [fenced(p.answer) for p in problems], cols)
                failing = [p.id for p, v in zip(problems, res.values["code_tests"]) if v != 1.0]
                assert failing == [], (bench.name, split)
    finally:
        scorer.close()


@pytest.mark.parametrize("name", ["StopIteration", "StopAsyncIteration", "GeneratorExit", "KeyboardInterrupt",
                                  "SystemExit"])
def test_control_flow_exceptions_from_the_program_are_faults(name):
    """PEP 479 for the program: even a test that catches everything cannot turn these into a pass."""
    program = f"def f():\n    raise {name}\n"
    result = sandbox.run_tests(program, "try:\n    f()\nexcept BaseException:\n    pass\n",
                               limits=sandbox.Limits(wall_s=LIMIT))
    assert result.status == "failed" and name in result.reason, result


BLOCKED_SEND = """import os, signal, threading, time
def add(a, b):
    return a + b
threading.Thread(target=lambda: (time.sleep(0.3), os.kill(os.getpid(), signal.SIGSTOP)), daemon=True).start()
"""


def test_the_judges_own_deadline_covers_a_blocked_send():
    """The program stops reading (SIGSTOP); a 1 MB argument fills the pipe. The judge's timer, not the
    harness's kill at limit + 1.5 s, ends it: the judge exits 0 with a timeout verdict."""
    tests = "assert add(1, 2) == 3\nimport time\ntime.sleep(0.6)\nassert add('x' * 10 ** 6, '') == 'x' * 10 ** 6\n"
    result = sandbox.run_tests(BLOCKED_SEND, tests, limits=sandbox.Limits(wall_s=LIMIT))
    TABLE.append(("blocked send (judge's own deadline)", who("harness"), result.status, result.seconds))
    assert result.status == "timeout" and result.exit_code == 0, result
    assert "wall-clock" in result.reason


def test_the_judges_own_deadline_covers_decoding():
    program = "def add(a, b):\n    return [[]] * 1500000\n"  # ~15 MB frames of empty lists, again and again
    result = sandbox.run_tests(program, "for i in range(100):\n    assert len(add(i, 1)) > 0\n",
                               limits=sandbox.Limits(wall_s=LIMIT))
    assert result.status == "timeout" and result.exit_code == 0, result


FORGE_AND_KILL_THE_JUDGE = WRONG + """import os, signal
judge = os.getppid()
with open(f'/proc/{judge}/fd/3', 'w') as f:  # the verdict goes to a copy of its stdout, the first free fd
    f.write('{"status": "passed", "reason": "", "output": ""}\\n')
os.kill(judge, signal.SIGKILL)
"""


def test_weak_mode_rejects_the_verdict_of_a_judge_that_did_not_exit_cleanly(monkeypatch):
    monkeypatch.setenv(sandbox.MODE_ENV, "weak")
    result = sandbox.run_tests(FORGE_AND_KILL_THE_JUDGE, TESTS, limits=sandbox.Limits(wall_s=LIMIT))
    TABLE.append(("weak: forge the verdict, kill the judge", who("harness"), result.status, result.seconds))
    assert result.exit_code == -9, result  # the attack did reach the judge in this mode
    assert result.status == "failed" and "did not exit cleanly" in result.reason, result
    assert code_tests([""], [fenced(FORGE_AND_KILL_THE_JUDGE)], tests=[TESTS]) == [0.0]


def test_bounded_repr_and_exception_text():
    from grpo_bench.sandbox import judge

    assert judge.bounded_repr(10 ** 5000) == "<int of 16610 bits>"  # 10**5000 < 2**16610 (5000 * log2(10) = 16609.6)
    assert judge.bounded_repr([1, "a", (2.5, None)]) == "[1, 'a', (2.5, None)]"
    assert judge.bounded_repr("x" * 10 ** 6, 10) == "'xxxxxxxxxx'..."
    assert len(judge.bounded_repr([[10 ** 5000] * 1000] * 1000)) < 2 * judge.TEXT_LIMIT
    assert judge.bounded_repr({1: b"x"}) == "{1: b'x'}" and judge.bounded_repr(object()) == "<object>"
    assert judge.exception_text(AssertionError(10 ** 5000)) == "AssertionError: <int of 16610 bits>"
    assert judge.exception_text(ValueError("bad")) == "ValueError: bad" and judge.exception_text(KeyError()) == "KeyError"


def test_verdict_line_is_capped_by_its_encoded_size():
    from grpo_bench.sandbox import judge

    for output in ("\x01" * 65536, "\U0001F600\x01" * 65536, "plain" * 100):
        line = judge.verdict_line("passed", "\x02" * 5000, output, 20000)
        verdict = json.loads(line)
        assert len(line) <= 20000 and verdict["status"] == "passed"
    assert json.loads(judge.verdict_line("failed", "r", "short", 20000)) == {"status": "failed", "reason": "r",
                                                                           "output": "short"}


SECCOMP_PROBE = """import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def probe(numbers):
    out = {}
    for name, number in numbers.items():
        ctypes.set_errno(0)
        rc = libc.syscall(number, 0, 0, 0, 0, 0, 0)  # null arguments: harmless even without the filter
        out[name] = ctypes.get_errno() if rc == -1 else 0
    return out
"""


def test_seccomp_denies_each_listed_call_inside_the_sandbox():
    """Every call of the deny list (keyctl, so the keyring channel, included) fails with EPERM inside.
    Without the filter most of these fail differently on null arguments (EFAULT, EINVAL, EBADF) or succeed."""
    numbers = {name: n for name, n in SYSCALLS.items() if name not in ("vhangup",)}  # vhangup takes no argument
    tests = f"got = probe({numbers!r})\nassert got == {{name: 1 for name in got}}, got\n"
    result = sandbox.run_tests(SECCOMP_PROBE, tests, limits=sandbox.Limits(wall_s=10))
    assert result.passed, result.reason
    assert {"keyctl", "add_key", "request_key", "ptrace", "process_vm_readv", "process_vm_writev", "bpf",
            "perf_event_open", "userfaultfd", "mount", "umount2", "unshare", "setns", "kexec_load",
            "kexec_file_load", "init_module", "finit_module", "delete_module"} <= set(numbers)


def test_seccomp_filter_is_libseccomp_bpf():
    program = seccomp.bpf_program()
    assert len(program) % 8 == 0 and 20 < len(program) // 8 < 4096  # struct sock_filter: 8 bytes each
    code, jt, jf, k = struct.unpack_from("=HBBI", program, 0)
    assert (code, k) == (0x20, 4)  # first: load seccomp_data.arch (offset 4), libseccomp's architecture check


FAKE_JUDGE = r"""
import json, os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", sys.argv[1]], start_new_session=True)
start = int(open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[19])
print(json.dumps({"sandbox_pid": child.pid, "start_time": start + int(sys.argv[2])}), flush=True)
print(json.dumps({"status": "failed", "reason": "r", "output": ""}), flush=True)
"""


@pytest.mark.parametrize("start_offset,killed", [(0, True), (1, False)])
def test_the_harness_kills_the_sandbox_init_the_judge_reports(start_offset, killed):
    """The init pid learnt through the judge (from bwrap's --info-fd) is killed by the harness, even when
    it left the judge's session; a pid whose start time differs (recycled) is left alone."""
    marker = f"{MARK}-init-{start_offset}"
    proc = subprocess.Popen([sys.executable, "-c", FAKE_JUDGE, marker, str(start_offset)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pump = sandbox._Pump(proc, b"", 1 << 16, 1 << 16, True)
    try:
        assert pump.run_until(time.monotonic() + 20)
        pump.run_until(time.monotonic() + 1.0, stop_on_exit=False)
        assert marked_processes(marker), "the stand-in for the sandbox's init did not start"
        pump.kill_sandbox()
        proc.wait()
        deadline = time.monotonic() + 5
        while marked_processes(marker) and time.monotonic() < deadline and killed:
            time.sleep(0.05)
        assert (marked_processes(marker) == []) == killed
        assert json.loads(pump.out["stdout"].head[pump.verdict_start:])["reason"] == "r"
    finally:
        pump.close()
        for pid in marked_processes(marker):
            os.kill(pid, 9)


SETSID_DAEMON = GOOD + """import os, subprocess
subprocess.Popen(['/usr/bin/python3', '-c', 'import time; time.sleep(60)', '{marker}'], start_new_session=True)
"""


def test_a_cgroup_per_sample_kills_what_left_the_session(monkeypatch):
    """In the weak mode (no pid namespace) a setsid daemon leaves the judge's process group; where cgroup v2
    is writable the sample's cgroup (cgroup.kill) still takes it. Elsewhere this is documented as not covered."""
    if cgroups.parent() is None:
        pytest.skip(f"no writable cgroup v2 here: {cgroups.describe()}")
    monkeypatch.setenv(sandbox.MODE_ENV, "weak")
    marker = f"{MARK}-cgroup"
    before = set(cgroups.parent()[0].iterdir())
    result = sandbox.run_tests(SETSID_DAEMON.format(marker=marker), TESTS, limits=sandbox.Limits(wall_s=LIMIT))
    assert result.passed, result
    deadline = time.monotonic() + 5
    while marked_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = marked_processes(marker)
    for pid in survivors:
        os.kill(pid, 9)
    TABLE.append(("weak: setsid daemon (cgroup.kill)", who("harness"), len(survivors), result.seconds))
    assert survivors == []
    assert {p for p in cgroups.parent()[0].iterdir() if p.is_dir()} <= {p for p in before if p.is_dir()}


def test_describe_reports_the_os_limits():
    info = sandbox.describe()
    assert "EPERM" in info["seccomp"] and "read-only" in info["writable"] and info["cgroup"]


MEMORY_TOGETHER = GOOD + """import os
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = b'1' * (400 << 20)  # written, so resident
        os._exit(0)
    children.append(pid)
assert all(os.waitpid(pid, 0)[1] == 0 for pid in children), 'a child was killed'
"""


def test_memory_is_bounded_for_all_processes_together():
    """4 processes x 400 MB pass the per-process RLIMIT_AS of 1 GB; the sample's memory.max must stop them.
    Runs only where the cgroup v2 memory controller can be used (not on the hybrid development machine)."""
    found = cgroups.parent()
    if found is None or "memory" not in found[1]:
        pytest.skip(f"no cgroup v2 memory controller here: {cgroups.describe()}")
    result = sandbox.run_tests(MEMORY_TOGETHER, TESTS, limits=sandbox.Limits(wall_s=10, memory_mb=1024))
    assert not result.passed, result


def test_the_judge_reports_the_real_sandbox_init(monkeypatch):
    """With bubblewrap, the harness holds a pidfd on the sandbox's init (from --info-fd) when it kills."""
    seen = []
    original = sandbox._Pump.kill_sandbox

    def record(pump):
        seen.append(pump.sandbox_pidfd)
        original(pump)

    monkeypatch.setattr(sandbox._Pump, "kill_sandbox", record)
    # the tests take 0.5 s, so the harness reads the judge's sandbox line while the init is alive (a quick
    # sample's init may be gone by then, its namespace with it: then there is nothing left to hold or kill)
    slow_tests = TESTS + "import time\ntime.sleep(0.5)\n"
    assert sandbox.run_tests(GOOD, slow_tests, limits=sandbox.Limits(wall_s=LIMIT)).passed
    assert len(seen) == 1 and seen[0] is not None


def test_a_verdict_just_under_its_cap_is_read_whole():
    """The judge's verdict line may be as large as runner.verdict_bytes; in bubblewrap mode the sandbox line
    comes before it, and the harness must still read both (14733 control characters: a 139,250-byte line)."""
    limits = sandbox.Limits(wall_s=LIMIT)
    program = GOOD + "import sys\nsys.stderr.write('\\x01' * 14733 + 'a' * (65536 - 14733))\n"
    result = sandbox.run_tests(program, TESTS, limits=limits)
    assert result.passed, result.reason
    line = json.dumps({"status": "passed", "reason": "", "output": result.stdout}) + "\n"
    assert sandbox.verdict_bytes(limits) - 20 < len(line.encode()) <= sandbox.verdict_bytes(limits)


LEAVE = GOOD + "for path in ('/tmp/left', '/dev/shm/left'):\n    open(path, 'w').write('x')\n"
LOOK = GOOD + "import os\nassert not os.path.exists('/tmp/left') and not os.path.exists('/dev/shm/left'), 'seen'\n"


def test_each_sample_of_a_batch_gets_its_own_judge_and_sandbox(monkeypatch):
    """run_batch starts judges and sandboxes ahead of need and forks the judges from the judge service;
    still every sample has a judge process and a sandbox init of its own, and what one program leaves in
    /tmp or /dev/shm is not there for the next (while the same program in one sample does see it)."""
    seen = []
    original = sandbox._Pump.kill_sandbox

    def record(pump):
        line = bytes(pump.out["stdout"].head).split(b"\n", 1)[0]
        seen.append((pump.proc.pid, json.loads(line)["sandbox_pid"], type(pump.proc).__name__))
        original(pump)

    monkeypatch.setattr(sandbox._Pump, "kill_sandbox", record)
    same_sample = LEAVE + LOOK.replace("not os.path.exists", "os.path.exists").replace("and not", "and")
    programs = [LEAVE, LOOK, LEAVE, LOOK, same_sample]
    results = sandbox.run_batch([sandbox.Sample(p, TESTS, limits=sandbox.Limits(wall_s=LIMIT)) for p in programs])
    assert [r.status for r in results] == ["passed"] * 5, [r.reason for r in results]
    assert len({judge for judge, _, _ in seen}) == len({init for _, init, _ in seen}) == 5 == len(seen)
    assert {kind for _, _, kind in seen} == {"_ForkedJudge"}
    wrong = sandbox.run_batch([sandbox.Sample(LEAVE.replace("a + b", "a - b"), TESTS), sandbox.Sample(GOOD, TESTS)])
    assert [r.status for r in wrong] == ["failed", "passed"]


def test_the_judge_service_is_restarted_when_it_died():
    assert sandbox.run_tests(GOOD, TESTS).passed
    service = sandbox._JudgeService.mine()
    service.proc.kill()
    service.proc.wait()
    assert sandbox.run_tests(GOOD, TESTS).passed
    assert sandbox._JudgeService.mine() is not service


def test_weak_mode_starts_nothing_ahead_and_no_service(monkeypatch):
    """Without namespaces a program could reach a waiting process of the same user: the weak mode starts
    each judge itself, when its sample runs."""
    monkeypatch.setenv(sandbox.MODE_ENV, "weak")

    def refuse(*args, **kwargs):
        raise AssertionError("a judge service in the weak mode")

    monkeypatch.setattr(sandbox._JudgeService, "mine", refuse)
    results = sandbox.run_batch([sandbox.Sample(GOOD, TESTS), sandbox.Sample(WRONG, TESTS)])
    assert [r.status for r in results] == ["passed", "failed"]


def test_a_failing_judge_service_falls_back_to_a_judge_of_its_own(monkeypatch):
    def broken(service, cwd, extra_fd=None):
        raise OSError("broken on purpose")

    monkeypatch.setattr(sandbox._JudgeService, "fork", broken)
    assert [r.status for r in sandbox.run_batch([sandbox.Sample(GOOD, TESTS), sandbox.Sample(WRONG, TESTS)])] == [
        "passed", "failed"]
    monkeypatch.undo()
    assert sandbox.run_tests(GOOD, TESTS).passed  # and a new service serves the next sample


def test_a_thread_gets_its_own_judge_service():
    """The service dies with the thread that started it (its death signal): one per thread, and the
    sockets of finished threads' services are closed."""
    import threading

    results = []
    thread = threading.Thread(target=lambda: results.append(sandbox.run_tests(GOOD, TESTS)))
    thread.start()
    thread.join()
    assert results[0].passed
    assert sandbox.run_tests(GOOD, TESTS).passed
    assert all(key[1] != thread.ident for key in sandbox._JudgeService._mine)


def test_a_forked_judge_runs_the_tests_in_an_empty_directory_of_its_own():
    tests = TESTS + "import os\nassert os.path.basename(os.getcwd()).startswith('grpo-sandbox-'), os.getcwd()\n" \
                    "assert os.listdir('.') == []\n"
    assert [r.status for r in sandbox.run_batch([sandbox.Sample(GOOD, tests)] * 2)] == ["passed", "passed"]


# -- the zygote (GRPO_BENCH_SANDBOX=zygote): one long-lived sandbox per harness thread forks each sample's own


def zygote_only() -> None:
    if sandbox.mode() != "zygote":
        pytest.skip("zygote mode only")


def descendants(pid: int) -> list[int]:
    """Live processes under ``pid`` (host pids), from every process's parent in /proc."""
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] not in "ZX":
                parents[int(name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def zygote_processes() -> list[int]:
    """This thread's zygote: its bubblewrap (outer), bubblewrap's init, the zygote's own interpreter ([2]),
    then the zygote's children and theirs (level by level)."""
    outer = sandbox._Zygote.mine().proc.pid
    return [outer, *descendants(outer)]


SEE_AND_SIGNAL = GOOD + """import os, signal
PIDS = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
KILLED = []
for pid in range(1, 4096):
    if pid != os.getpid():
        try:
            os.kill(pid, 0)
            KILLED.append(pid)
        except OSError:
            pass
try:
    os.kill(-1, signal.SIGKILL)  # everything this sample can signal, i.e. nothing outside its pid namespace
except OSError:
    pass
"""


def test_a_sample_sees_and_signals_only_its_own_processes():
    """Inside, /proc lists the sample's init (1) and the server (2) only, and kill(pid, 0) reaches only the
    init; kill(-1, SIGKILL) takes nothing outside: the zygote and the next sample are untouched."""
    zygote_only()
    before = zygote_processes()
    results = sandbox.run_batch([sandbox.Sample(SEE_AND_SIGNAL, TESTS + "assert PIDS == [1, 2], PIDS\n"
                                                "assert KILLED == [1], KILLED\n", limits=sandbox.Limits(wall_s=LIMIT)),
                                 sandbox.Sample(GOOD, TESTS), sandbox.Sample(GOOD, TESTS)])
    assert [r.status for r in results] == ["passed"] * 3, [r.reason for r in results]
    assert zygote_processes()[:3] == before[:3] and sandbox._Zygote.mine().proc.poll() is None


KILL_INIT_AND_DAEMON = GOOD + """import os, signal, subprocess
subprocess.Popen(['/usr/bin/python3', '-c', 'import time; time.sleep(60)', '{marker}'], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    subprocess.Popen(['/usr/bin/python3', '-c', 'import time; time.sleep(60)', '{marker}'])
    os._exit(0)
for sig in (signal.SIGKILL, signal.SIGTERM):
    try:
        os.kill(1, sig)  # the sample's init ignores signals from inside its namespace
    except OSError:
        pass
"""


def test_daemons_and_a_killed_init_leave_nothing_behind():
    """A program that tries to kill its pid 1 and starts setsid daemons: after the sample no process of it is
    left, the zygote has no child left, and its cgroup (where one is used) is gone."""
    zygote_only()
    marker = f"{MARK}-zygote-daemon"
    parent = cgroups.parent()
    before = set(parent[0].iterdir()) if parent else set()
    result = sandbox.run_tests(KILL_INIT_AND_DAEMON.format(marker=marker), TESTS, limits=sandbox.Limits(wall_s=LIMIT))
    assert result.passed, result
    zygote = zygote_processes()
    deadline = time.monotonic() + 5
    while (marked_processes(marker) or len(zygote_processes()) > len(zygote[:3])) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = marked_processes(marker)
    for pid in survivors:
        os.kill(pid, 9)
    assert survivors == []
    assert len(zygote_processes()) == 3, "a child of the zygote outlived its sample"
    if parent:
        assert set(parent[0].iterdir()) <= before


def test_a_crashed_zygote_is_replaced():
    """The zygote killed (its interpreter, or its bubblewrap): the next sample gets a new one and passes."""
    zygote_only()
    assert sandbox.run_tests(GOOD, TESTS).passed
    first = sandbox._Zygote.mine()
    os.kill(zygote_processes()[2], 9)  # the zygote's interpreter: bubblewrap ends with it
    first.proc.wait(timeout=10)
    assert sandbox.run_tests(GOOD, TESTS).passed
    second = sandbox._Zygote.mine()
    assert second is not first
    second.proc.kill()
    second.proc.wait()
    assert sandbox.run_batch([sandbox.Sample(GOOD, TESTS), sandbox.Sample(WRONG, TESTS)])[1].status == "failed"
    assert sandbox._Zygote.mine() is not second


CGROUP_AT_LOAD = GOOD + "CGROUP = [l for l in open('/proc/self/cgroup').read().splitlines() if l.startswith('0::')]\n"


def test_the_program_runs_in_its_samples_cgroup_from_its_first_line(monkeypatch):
    """Where a cgroup is used, the program's first line runs at the root of its cgroup namespace, and the
    sandbox's init is in the sample's own cgroup (seen from the host): the namespace was made inside the
    sample's cgroup, i.e. the judge moved the zygote's child there before it built the sandbox (bubblewrap:
    the judge joined it before starting bwrap), and nothing moves a process later."""
    if cgroups.parent() is None:
        pytest.skip(f"no writable cgroup v2 here: {cgroups.describe()}")
    seen = []
    original = sandbox._Pump._watch_sandbox

    def record(pump):  # when the harness reads the judge's sandbox line (the tests keep the sandbox alive)
        original(pump)
        if pump.sandbox_pidfd is not None and not pump.sandbox_line:
            init = json.loads(bytes(pump.out["stdout"].head).split(b"\n", 1)[0])["sandbox_pid"]
            seen.append([line for line in Path(f"/proc/{init}/cgroup").read_text().splitlines() if line[:3] == "0::"])

    monkeypatch.setattr(sandbox._Pump, "_watch_sandbox", record)
    tests = TESTS + "assert CGROUP == ['0::/'], CGROUP\nimport time\ntime.sleep(0.5)\n"
    assert [r.status for r in sandbox.run_batch([sandbox.Sample(CGROUP_AT_LOAD, tests)] * 2)] == ["passed"] * 2
    assert len(seen) >= 2 and seen[-1] != seen[-2]  # (the first use of a mode also probes it with a sample)
    assert all(f"/{cgroups.PARENT_NAME}/{os.getpid()}-" in lines[0] for lines in seen), seen


def test_leftovers_of_a_dead_harness_are_swept():
    """A SIGKILLed harness leaves its empty sample cgroup and judge directories; the next harness process
    removes those whose owner is dead, and keeps a live owner's."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    tmp = Path(tempfile.gettempdir())
    stale, live = tmp / f"{sandbox.WORKDIR_PREFIX}{dead.pid}-x", tmp / f"{sandbox.WORKDIR_PREFIX}{os.getpid()}-x"
    for path in (stale, live):
        path.mkdir()
    (stale / "left").write_text("x")
    try:
        sandbox._swept_tempdir.cache_clear()
        sandbox._swept_tempdir()
        assert not stale.exists() and live.exists()
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        live.rmdir()
    parent = cgroups.parent()
    if parent is None:
        return  # no cgroups here: nothing else is left
    (parent[0] / f"{dead.pid}-0").mkdir()
    (parent[0] / f"{os.getpid()}-swept").mkdir()
    try:
        assert cgroups.sweep(parent[0]) == [f"{dead.pid}-0"]
        assert not (parent[0] / f"{dead.pid}-0").exists()
    finally:
        (parent[0] / f"{os.getpid()}-swept").rmdir()


STATUS_AT_LOAD = GOOD + """STATUS = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines())
STATUS = {k: v.strip() for k, v in STATUS.items() if k in ('CapInh', 'CapPrm', 'CapEff', 'CapAmb', 'CapBnd',
                                                          'NoNewPrivs', 'Seccomp', 'Uid')}
"""


def test_the_program_has_no_capabilities_and_its_filter():
    """No capability in any set (the zygote's sample gets a fresh user namespace, so its init drops them all,
    bounding set included), no_new_privs and a seccomp filter, uid 65534."""
    zero = "0" * 16
    tests = TESTS + (f"assert [STATUS[k] for k in ('CapInh', 'CapPrm', 'CapEff', 'CapAmb')] == [{zero!r}] * 4, STATUS\n"
                     "assert STATUS['NoNewPrivs'] == '1' and STATUS['Seccomp'] == '2', STATUS\n"
                     "assert STATUS['Uid'].split() == ['65534'] * 4, STATUS\n")
    if sandbox.mode() == "zygote":
        tests += f"assert STATUS['CapBnd'] == {zero!r}, STATUS\n"
    result = sandbox.run_tests(STATUS_AT_LOAD, tests, limits=sandbox.Limits(wall_s=LIMIT))
    assert result.passed, result.reason


def test_a_zygote_that_stops_answering_is_an_error_and_is_replaced():
    """A stopped zygote (alive, not forking): its samples are errors (reward None, never a score) naming the
    zygote, and the next sample gets a new zygote."""
    zygote_only()
    assert sandbox.run_tests(GOOD, TESTS).passed
    first = sandbox._Zygote.mine()
    os.kill(zygote_processes()[2], 19)  # SIGSTOP its interpreter
    result = sandbox.run_tests(GOOD, TESTS, limits=sandbox.Limits(wall_s=1.0))
    assert result.status == "error" and "zygote" in result.reason, result
    assert code_tests([""], [fenced(GOOD)], tests=[TESTS]) == [1.0]
    assert sandbox._Zygote.mine() is not first and first.proc.poll() is not None
