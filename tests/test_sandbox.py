"""The code sandbox against hostile programs, through the ``code_tests`` reward.

Every hostile program ends in 0.0 or None within its wall-clock limit, the harness lives on, and
nothing outside the sandbox changes. Programs are written so that a *leak makes them pass*: they
assert that the attack worked, so a 1.0 is exactly a sandbox failure. Run with ``-s`` to see the
table of (case, value, seconds).
"""

import logging
import os
import socket
import tempfile
import time

import pytest
from grpo_bench.benchmark import reward_columns
from grpo_bench.plugins.benchmarks.code_data import MBPP, HumanEval
from grpo_bench.plugins.rewards.code_tests import (
    build_tests,
    code_tests,
    extract_program,
)
from grpo_bench.sandbox import namespaces as sandbox
from grpo_bench.scoring import RewardScorer

LIMIT = 2.0  # sandbox wall-clock limit in these tests
SLACK = 2.5  # start-up, kill and clean-up on a loaded 2-core machine
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
ISO = sandbox.isolation()
TABLE: list[tuple[str, object, float]] = []


@pytest.fixture(scope="module", autouse=True)
def print_table():
    yield
    print(f"\n\nsandbox: {ISO}\n{'case':38s} {'value':>6s} {'seconds':>8s}")
    for case, value, seconds in TABLE:
        print(f"{case:38s} {str(value):>6s} {seconds:8.2f}")


def fenced(program: str) -> str:
    return f"Here is my solution:\n```python\n{program}\n```\n"


def score(case: str, program: str, tests: str = TESTS, limit: float = LIMIT) -> float | None:
    """code_tests on one completion, recorded in the table; checks the time bound."""
    t0 = time.monotonic()
    value = code_tests([""], [fenced(program)], tests=[tests], time_limit_s=[limit])[0]
    seconds = time.monotonic() - t0
    TABLE.append((case, value, seconds))
    assert seconds < limit + SLACK, f"{case} took {seconds:.1f} s"
    return value


def own_sandbox_processes() -> list[int]:
    """Live processes under the sandbox uids this test process hands out."""
    lo = sandbox.UID_BASE + 16 * (os.getpid() % (1 << 22))
    return [pid for uid in range(lo, lo + 16) for pid in sandbox._processes(uid)]


needs_drop = pytest.mark.skipif(not ISO.drop_user, reason="the sandbox cannot switch to its own uid here")


def test_correct_solution_passes_and_wrong_one_fails():
    assert score("correct solution", GOOD) == 1.0
    assert score("wrong solution", WRONG) == 0.0
    assert score("syntax error", "def add(a, b) return") == 0.0


HOSTILE = {
    "infinite loop": GOOD + "while True:\n    pass\n",
    "ignores SIGTERM": GOOD + "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n",
    "fork bomb": GOOD + "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "daemon leaves the process group": (
        GOOD + "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
        "assert False, 'parent fails; the daemon must still be killed'\n"),
    "memory bomb (one block)": GOOD + "x = bytearray(8 * 1024 ** 3)\n",
    "memory bomb (growing)": GOOD + "a = []\nwhile True:\n    a.append(bytearray(10 ** 7))\n",
    "fill the disk (one file)": (
        GOOD + "with open('big', 'wb') as f:\n    for _ in range(2000):\n        f.write(b'0' * 2 ** 20)\n"),
    "fill the disk (many files)": (
        GOOD + "for i in range(40):\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'0' * 15 * 2 ** 20)\n"),
    "fill /tmp and /dev/shm": (
        GOOD + "for d in ('/tmp', '/dev/shm'):\n    for i in range(10):\n"
        "        with open(f'{d}/fill{i}', 'wb') as f:\n            f.write(b'0' * 15 * 2 ** 20)\n"),
    "print 100 MB": WRONG + "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10 ** 6)\n",
    "os._exit(0) before the asserts": WRONG + "import os\nos._exit(0)\n",
    "sys.exit(0) before the asserts": WRONG + "import sys\nsys.exit(0)\n",
    "os._exit(0) inside the function": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "SystemExit inside the function": "def add(a, b):\n    raise SystemExit(0)\n",
    "kill own process group": WRONG + "import os, signal\nos.killpg(0, signal.SIGKILL)\n",
    "override AssertionError": (
        WRONG + "import builtins\nclass AssertionError(Exception):\n    pass\n"
        "builtins.AssertionError = type('Fake', (BaseException,), {})\n"),
    "override builtins and os.write": (
        WRONG + "import builtins, os, sys\nbuiltins.print = lambda *a, **k: None\nbuiltins.compile = None\n"
        "builtins.exec = None\nos.write = lambda fd, data: len(data)\nos._exit = lambda code: None\n"
        "sys.excepthook = lambda *a: None\n"),
    "forge the success marker": (
        WRONG + "import os\nfor fd in range(1, 256):\n    try:\n        os.write(fd, b'PASS ' + b'0' * 32 + b'\\n')\n"
        "    except OSError:\n        pass\nprint('PASS', flush=True)\n"),
    "close every descriptor": WRONG + "import os\nos.closerange(0, 1024)\n",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_program_scores_zero(case):
    assert score(case, HOSTILE[case]) in (0.0, None)
    if ISO.drop_user:
        assert own_sandbox_processes() == [], "processes survived the sandbox"


def test_workdir_removed_and_disk_untouched(monkeypatch):
    made = []
    real = tempfile.mkdtemp

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", spy)
    free = sandbox.shutil.disk_usage(tempfile.gettempdir()).free
    assert score("fill the disk, then check", HOSTILE["fill the disk (many files)"]) in (0.0, None)
    assert made and not any(os.path.exists(d) for d in made)
    assert free - sandbox.shutil.disk_usage(tempfile.gettempdir()).free < 200 * 2 ** 20


def test_output_is_capped():
    result = sandbox.run_tests(HOSTILE["print 100 MB"], TESTS, sandbox.Limits(wall_s=LIMIT))
    assert result.status == "failed"
    assert len(result.stdout) < 2 * sandbox.Limits().output_bytes and "more bytes" in result.stdout


WRITE_OUTSIDE = """
import os
def add(a, b):
    return a + b
done = []
for attempt in (lambda: open(CANARY, "w").write("pwned"), lambda: os.remove(CANARY),
                lambda: open(os.path.join(os.path.dirname(CANARY), "new.txt"), "w").write("x"),
                lambda: os.chmod(CANARY, 0o777)):
    try:
        attempt()
        done.append(1)
    except OSError:
        pass
assert done, "no attack worked"
"""


def _without_mount_namespace():
    return sandbox.Isolation(ISO.python, ISO.drop_user, ISO.net_namespace, False)


@pytest.mark.parametrize("layer", ["all layers", "without mount namespace"])
def test_cannot_write_or_delete_outside(tmp_path, monkeypatch, layer):
    if layer != "all layers":
        if not ISO.mount_namespace or not ISO.drop_user:
            pytest.skip("the same configuration as 'all layers'")
        monkeypatch.setattr(sandbox, "isolation", _without_mount_namespace)
    elif not (ISO.drop_user or ISO.mount_namespace):
        pytest.skip("neither a separate uid nor a mount namespace is available here")
    canary = tmp_path / "canary.txt"
    canary.write_text("original")
    before = canary.stat()
    program = f"CANARY = {str(canary)!r}\n" + WRITE_OUTSIDE
    assert score(f"write/delete outside ({layer})", program) in (0.0, None)
    assert canary.read_text() == "original" and canary.stat().st_mode == before.st_mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt"]


SECRET = "s3cr3t-4f1d2e"
READ_SECRET = f"""
import os
def add(a, b):
    return a + b
seen = os.environ.get("GRPO_SECRET", "") + " ".join(os.environ.values())
for pid in ("1", str(os.getppid()), "self"):
    try:
        seen += open(f"/proc/{{pid}}/environ", "rb").read().decode("latin-1")
    except OSError:
        pass
print(seen)
assert {SECRET!r} in seen, "secret not visible"
"""


def test_environment_secret_is_not_visible(monkeypatch):
    monkeypatch.setenv("GRPO_SECRET", SECRET)
    result = sandbox.run_tests(READ_SECRET, TESTS, sandbox.Limits(wall_s=LIMIT))
    assert result.status == "failed" and SECRET not in result.stdout + result.stderr.replace(repr(SECRET), "")
    assert score("read an environment secret", READ_SECRET) in (0.0, None)
    # a worker started now has the secret in its own /proc/<pid>/environ; the program must not read it
    scorer = RewardScorer({"code_tests": code_tests}, timeout_s=10, workers=1)
    try:
        t0 = time.monotonic()
        res = scorer.score([""], [fenced(READ_SECRET)], {"tests": [TESTS], "time_limit_s": [LIMIT]})
        TABLE.append(("read the worker's secret (scorer)", res.values["code_tests"][0], time.monotonic() - t0))
    finally:
        scorer.close()
    assert res.values["code_tests"] == [0.0]


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
        TABLE.append(("kill the parent (scorer)", res.values["code_tests"][0], time.monotonic() - t0))
        assert res.values["code_tests"][0] in (0.0, None) and res.values["code_tests"][1] == 1.0
        if ISO.drop_user:  # the kill is refused: the worker lives and the program simply fails
            assert res.count_summary()["code_tests"]["error"] == 0
        again = scorer.score([""], [fenced(GOOD)], {"tests": [TESTS], "time_limit_s": [LIMIT]})
        assert again.values["code_tests"] == [1.0]
    finally:
        scorer.close()


@needs_drop
def test_killing_the_parent_directly():
    assert score("kill the parent (direct)", KILL_PARENT) == 0.0  # pytest itself is the parent here


def test_slow_samples_do_not_hold_the_batch():
    completions = [HOSTILE["infinite loop"], GOOD, WRONG, GOOD, HOSTILE["infinite loop"], GOOD, WRONG, GOOD]
    scorer = RewardScorer({"code_tests": code_tests}, timeout_s=10, workers=2)
    try:
        t0 = time.monotonic()
        res = scorer.score([""] * 8, [fenced(c) for c in completions],
                           {"tests": [TESTS] * 8, "time_limit_s": [LIMIT] * 8})
        elapsed = time.monotonic() - t0
    finally:
        scorer.close()
    TABLE.append(("batch of 8, two infinite loops (2 workers)", res.count_summary()["code_tests"]["ok"], elapsed))
    assert res.values["code_tests"] == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    assert res.count_summary()["code_tests"]["timeout"] == 0  # the sandbox limit fires before the scorer's
    assert elapsed < 2 * LIMIT + 2 * SLACK  # the two loops overlap on the two workers


def test_sandbox_failure_is_none_with_a_logged_reason(monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "isolation", lambda: sandbox.Isolation("/nonexistent/python3", False, False, False))
    with caplog.at_level(logging.WARNING):
        assert code_tests([""], [fenced(GOOD)], tests=[TESTS]) == [None]
    assert "sandbox" in caplog.text and "nonexistent" in caplog.text


def test_no_tests_means_the_reward_does_not_apply():
    assert code_tests(["", ""], ["x", "y"]) == [None, None]


@pytest.mark.xfail(strict=True, reason="known limit: the program shares the runner's interpreter, so a "
                                       "return value whose __eq__ is always True passes ==-style asserts")
def test_known_limit_always_equal_object():
    program = "class Any:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Any()\n"
    assert score("always-equal object (known limit)", program) == 0.0


def test_extract_program():
    assert extract_program("a\n```python\nx = 1\n```\nb\n```python\nx = 2\n```\n") == "x = 2\n"
    assert extract_program("```python\nx = 1\n```\n```text\nnot code\n```") == "x = 1\n"
    assert extract_program("```\nx = 3\n```") == "x = 3\n"
    assert extract_program("x = 4") == "x = 4"
    assert extract_program("sure:\n```python\ndef f():\n    return 5") == "def f():\n    return 5"  # truncated
    assert build_tests("def check(c):\n    assert c(1)\n", "f").endswith("check(f)\n")
    assert "check(" not in build_tests("assert f(1)\n", "f")


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
