"""Third-party plugins: a throwaway package registers a reward and an algorithm through the
``grpo_bench`` entry-point group (no change to this repo) and both are used in a tiny run."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from grpo_bench.registry import Registry, load_entry_points

PLUGIN = '''
"""A third-party plugin: a reward and an algorithm."""
from grpo_bench import hookimpl
from grpo_bench.algorithm import Algorithm, seq_mean


def shortness(prompts, completions, **columns):
    return [1.0 / (1 + len(c)) for c in completions]


class PlainPG(Algorithm):
    """REINFORCE with group-normalised advantages: -(1/N) sum_i A_i mean_t logp."""
    name = "plain_pg"

    def loss(self, batch, stats):
        stats.mean("plain_pg_adv_abs", batch.advantages.abs())
        return -(seq_mean(batch.logp, batch.mask) * batch.advantages).sum() / batch.num_completions


@hookimpl
def grpo_bench_rewards():
    return {"shortness": shortness}


@hookimpl
def grpo_bench_algorithms():
    return {"plain_pg": PlainPG}
'''


def make_dist(site: Path, dist: str, module: str, source: str) -> None:
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[grpo_bench]\n{module} = {module}\n")


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    make_dist(site, "thirdparty-plug", "thirdparty_plug", PLUGIN)
    make_dist(site, "broken-plug", "broken_plug", "raise ImportError('this plugin is broken')\n")
    make_dist(site, "raising-plug", "raising_plug", textwrap.dedent('''
        from grpo_bench import hookimpl

        @hookimpl
        def grpo_bench_rewards():
            raise RuntimeError("hook exploded")
    '''))
    return site


def env_with(site: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return env


def test_registry_loads_third_party_and_reports_broken(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    reg = Registry()
    load_entry_points(reg)
    assert reg.get("rewards", "shortness")([""], ["ab"]) == [1 / 3]
    assert reg.get("algorithms", "plain_pg").name == "plain_pg"
    assert "thirdparty-plug 0.1" in reg.tables["rewards"]["shortness"].source
    assert "grpo-bench" in reg.tables["algorithms"]["grpo"].source  # built-ins: the same path
    assert any("broken_plug" in e and "this plugin is broken" in e for e in reg.errors)
    assert any("raising_plug" in e and "hook exploded" in e for e in reg.errors)


def test_cli_plugins_lists_origin(site):
    out = subprocess.run([sys.executable, "-m", "grpo_bench.cli", "plugins"], env=env_with(site),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "shortness" in out.stdout and "thirdparty-plug 0.1" in out.stdout
    assert "math_verify" in out.stdout and "plugin errors:" in out.stdout


def test_third_party_reward_and_algorithm_in_a_tiny_run(site, tmp_path):
    suite = tmp_path / "plug.toml"
    suite.write_text(textwrap.dedent('''
        [suite]
        model = "tiny-random"
        engine = "hf"
        [train]
        benchmark = "arith"
        steps = 2
        prompts_per_step = 2
        group_size = 3
        max_new_tokens = 8
        learning_rate = 1e-3
        mu = 1
        rewards = ["shortness"]
        [eval]
        benchmarks = [{ name = "arith", limit = 3 }]
        max_new_tokens = 8
        [[variants]]
        algorithm = "plain_pg"
    '''))
    out = subprocess.run([sys.executable, "-m", "grpo_bench.cli", "run", str(suite), "--results-dir", str(tmp_path / "r")],
                         env=env_with(site), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "r" / "plug" / "runs" / "plain_pg" / "seed0"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and "plain_pg_adv_abs" in rows[0] and "reward/shortness" in rows[0]
    assert rows[0]["reward/shortness"] > 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["algorithm"]["algorithm"] == "plain_pg"
    assert "plain_pg" in (tmp_path / "r" / "plug" / "leaderboard.md").read_text()


# --- register where you define: decorators, checks, plain modules named by a suite -------------------

DECORATED = '''
"""A plain module (no packaging) named by a suite: a reward and an algorithm, each named once."""
from grpo_bench import register_algorithm, register_reward
from grpo_bench.algorithm import Algorithm, seq_mean


@register_reward("dots")
def dots(prompts, completions, **columns):
    return [float(c.count(".")) for c in completions]


@register_algorithm("plain_pg2")
class PlainPG2(Algorithm):
    def loss(self, batch, stats):
        stats.mean("plain_pg2_adv_abs", batch.advantages.abs())
        return -(seq_mean(batch.logp, batch.mask) * batch.advantages).sum() / batch.num_completions
'''

TINY = '''
[suite]
model = "tiny-random"
engine = "hf"
plugins = ["{module}"]
[train]
benchmark = "arith"
steps = 1
prompts_per_step = 2
group_size = 2
max_new_tokens = 6
mu = 1
rewards = ["{reward}"]
[eval]
benchmarks = [{{ name = "arith", limit = 2 }}]
max_new_tokens = 6
[[variants]]
algorithm = "{algorithm}"
'''


def module_object(name: str, source: str):
    import types

    module = types.ModuleType(name)
    exec(compile(source, name, "exec"), module.__dict__)  # noqa: S102 - test fixture source
    return module


def test_decorator_names_once_and_fills_the_table():
    from grpo_bench.registry import default_registry

    reg = default_registry()
    cls = reg.get("algorithms", "grpo")
    assert cls.name == "grpo" and "name" in vars(cls)  # set by @register_algorithm, not written in the class
    src = (Path(__file__).parent.parent / "plugins" / "algorithms" / "grpo.py").read_text()
    assert src.count('"grpo"') == 1 and "def grpo_bench_algorithms" not in src
    assert reg.get("rewards", "math_verify").__name__ == "math_verify"
    assert reg.tables["rewards"]["format"].obj.__name__ == "boxed_format"  # a name other than the function's


def test_decorator_refuses_a_second_name():
    from grpo_bench import register_algorithm
    from grpo_bench.algorithm import Algorithm

    with pytest.raises(TypeError, match="already says name = 'a'"):
        @register_algorithm("b")
        class Twice(Algorithm):
            name = "a"


def test_misspelled_hook_is_one_line_with_the_nearest_hook():
    reg = Registry()
    mod = module_object("typo_plug", "from grpo_bench import hookimpl\n\n@hookimpl\ndef grpo_bench_reward():\n"
                                     "    return {'x': lambda prompts, completions, **k: [0.0]}\n")
    errors = reg.add_plugin(mod)
    assert errors == ["module typo_plug: unknown hook 'grpo_bench_reward'; did you mean 'grpo_bench_rewards'?"]
    assert reg.names("rewards") == []
    # the manager stays clean: a good plugin added afterwards loads and check_pending passes
    good = module_object("good_plug", DECORATED)
    assert reg.add_plugin(good) == [] and reg.names("rewards") == ["dots"]
    reg.pm.check_pending()


def test_unmarked_hook_function_is_reported():
    reg = Registry()
    mod = module_object("unmarked_plug", "def grpo_bench_rewards():\n    return {}\n")
    assert reg.add_plugin(mod) == ["module unmarked_plug: grpo_bench_rewards is not marked @hookimpl "
                                   "(from grpo_bench import hookimpl)"]


@pytest.mark.parametrize("kind,obj,needle", [
    ("algorithms", "int", "algorithm 'bad' must be a subclass of grpo_bench.algorithm.Algorithm"),
    ("engines", "object", "engine 'bad' must be a subclass of grpo_bench.engine.RolloutEngine"),
    ("executors", "dict", "executor 'bad' must be a subclass of grpo_bench.execute.executors.Executor"),
    ("rewards", "3", "reward 'bad' must be a function"),
    ("benchmarks", "object", "benchmark 'bad' must be an instance of grpo_bench.benchmark.Benchmark"),
])
def test_wrong_type_from_a_hook_is_one_line(kind, obj, needle):
    reg = Registry()
    mod = module_object("wrong_plug", f"from grpo_bench import hookimpl\n\n@hookimpl\ndef grpo_bench_{kind}():\n"
                                      f"    return {{'bad': {obj}}}\n")
    errors = reg.add_plugin(mod)
    assert len(errors) == 1 and errors[0].startswith("module wrong_plug: ") and needle in errors[0], errors
    assert reg.names(kind) == []


def test_hook_tables_and_decorators_mix_in_one_module():
    reg = Registry()
    mod = module_object("mixed_plug", DECORATED + "\nfrom grpo_bench import hookimpl\n\n@hookimpl\n"
                                                   "def grpo_bench_rewards():\n    return {'commas': dots}\n")
    assert reg.add_plugin(mod) == []
    assert reg.names("rewards") == ["commas", "dots"] and reg.names("algorithms") == ["plain_pg2"]


def test_builtin_executors_and_advantages_are_registries():
    from grpo_bench.algorithm import ADVANTAGES
    from grpo_bench.execute.executors import LocalExecutor
    from grpo_bench.execute.ray_executor import RayExecutor
    from grpo_bench.registry import default_registry

    reg = default_registry()
    assert set(reg.names("advantages")) >= set(ADVANTAGES) == {"group", "group_mean", "length_corrected", "batch_std"}
    assert reg.get("executors", "local") is LocalExecutor and reg.get("executors", "ray") is RayExecutor
    assert LocalExecutor.name == "local" and RayExecutor.name == "ray"


def test_executor_flags_are_checked_against_the_executor(tmp_path, capsys):
    from grpo_bench.cli import main

    suite = tmp_path / "s.toml"
    suite.write_text(TINY.replace('plugins = ["{module}"]\n', "").format(reward="format", algorithm="grpo"))
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r"), "--address", "auto"]) == 2
    err = capsys.readouterr().err
    assert "--address is not an option of --executor local" in err and "executors that take it: ray" in err
    assert main(["run", str(suite), "--results-dir", str(tmp_path / "r"), "--executor", "rey"]) == 2
    assert "unknown executor 'rey'; did you mean 'ray'?" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_plain_module_named_by_a_suite_registers_and_runs(tmp_path):
    """The module sits next to the suite (not installed, not on the workers' path): the reward reaches the
    reward workers by value, the algorithm trains, and the default registry is left as it was."""
    (tmp_path / "my_plugs.py").write_text(DECORATED)
    suite = tmp_path / "plug2.toml"
    suite.write_text(TINY.format(module="my_plugs", reward="dots", algorithm="plain_pg2"))
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "grpo_bench.cli", "run", str(suite), "--results-dir", str(tmp_path / "r")],
                         env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "r" / "plug2" / "runs" / "plain_pg2" / "seed0"
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert "plain_pg2_adv_abs" in row and "reward/dots" in row and row.get("reward_error/dots", 0) == 0
    config = json.loads((run / "summary.json").read_text())["config"]
    assert config["suite"]["plugins"] == ["my_plugs"]


@pytest.mark.parametrize("source,needle", [
    ("from grpo_bench import hookimpl\n\n@hookimpl\ndef grpo_bench_algorithm():\n    return {}\n",
     "suite.plugins[0]: module bad_plug: unknown hook 'grpo_bench_algorithm'; did you mean 'grpo_bench_algorithms'?"),
    ("from grpo_bench import register_algorithm\n\n@register_algorithm('plain_pg2')\nclass NotAnAlgorithm:\n    pass\n",
     "suite.plugins[0]: module bad_plug: algorithm 'plain_pg2' must be a subclass of grpo_bench.algorithm.Algorithm"),
    ("from grpo_bench import register_reward\n\n@register_reward('format')\ndef f(prompts, completions, **k):\n"
     "    return [0.0]\n", "suite.plugins[0]: module bad_plug: reward 'format' already registered by entry point"),
    ("import no_such_module_here\n", "suite.plugins[0]: cannot import 'bad_plug': ModuleNotFoundError"),
])
def test_a_bad_suite_plugin_is_one_line_and_exit_2(tmp_path, capsys, source, needle):
    from grpo_bench.cli import main

    (tmp_path / "bad_plug.py").write_text(source)
    suite = tmp_path / "s.toml"
    suite.write_text(TINY.format(module="bad_plug", reward="format", algorithm="grpo"))
    try:
        assert main(["run", str(suite), "--results-dir", str(tmp_path / "r"), "--dry-run"]) == 2
    finally:
        sys.modules.pop("bad_plug", None)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_suite_plugins_stay_out_of_the_config_hash(tmp_path):
    from grpo_bench.config import load_suite
    from grpo_bench.execute.plan import make_plan
    from grpo_bench.registry import default_registry

    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "empty_plug.py").write_text("")
    plain, named = tmp_path / "a" / "s.toml", tmp_path / "b" / "s.toml"
    plain.write_text(TINY.replace('plugins = ["{module}"]\n', "").format(reward="format", algorithm="grpo"))
    named.write_text(TINY.format(module="empty_plug", reward="format", algorithm="grpo"))
    reg = default_registry().copy()
    a, b = (make_plan(load_suite(p, reg), reg, tmp_path / "r").record for p in (plain, named))
    assert "plugins" not in a["config"]["suite"] and b["config"]["suite"]["plugins"] == ["empty_plug"]
    assert a["config_hash"] == b["config_hash"]


def test_a_decorated_benchmark_class_becomes_its_instance_and_plain_objects_join_a_copy():
    from grpo_bench.benchmark import Benchmark, Problem
    from grpo_bench.registry import default_registry, with_objects

    reg = Registry()
    mod = module_object("bench_plug", "from grpo_bench import register_benchmark\n"
                                      "from grpo_bench.benchmark import Benchmark, Problem\n\n"
                                      "@register_benchmark('echo')\nclass Echo(Benchmark):\n"
                                      "    splits = ('test',)\n    eval_reward = 'format'\n"
                                      "    def load_split(self, split):\n        return [Problem('e/0', 'say 1', '1')]\n")
    assert reg.add_plugin(mod) == []
    bench = reg.get("benchmarks", "echo")
    assert isinstance(bench, Benchmark) and bench.name == "echo" and bench.problems("test")[0].answer == "1"

    class Plain(Benchmark):  # no decorator, no name: run_suite(benchmarks=...) names it
        splits = ("test",)

        def load_split(self, split):
            return [Problem("p/0", "q", "a")]

    copy = with_objects(default_registry(), "run_suite()", benchmarks={"plain_bench": Plain})
    assert copy.get("benchmarks", "plain_bench").name == "plain_bench"
    assert "plain_bench" not in default_registry().names("benchmarks")


def test_a_decorated_advantage_estimator_is_an_algorithm_option():
    import torch
    from grpo_bench.algorithm import compute_advantages
    from grpo_bench.errors import UserError
    from grpo_bench.plugins.algorithms.grpo import GRPO

    with pytest.raises(UserError, match="option 'advantage': unknown advantage 'rank_test'"):
        GRPO(advantage="rank_test")
    reg = Registry()
    assert reg.add_plugin(module_object("adv_plug", '''
from grpo_bench import register_advantage

@register_advantage("rank_test")
def rank_advantage(rewards, lengths, *, delta, std):
    g = rewards.shape[1]
    return (rewards.argsort(dim=1).argsort(dim=1).to(rewards.dtype) - (g - 1) / 2) / g
''')) == [] and reg.names("advantages") == ["rank_test"]
    algo = GRPO(advantage="rank_test")
    rewards = torch.tensor([[0.0, 2.0, 1.0], [5.0, 4.0, 3.0]], dtype=torch.float64)
    out = algo.advantages(rewards, torch.ones_like(rewards))
    assert out.tolist() == [[-1 / 3, 1 / 3, 0.0], [1 / 3, 0.0, -1 / 3]]  # (rank - 1) / 3, worked by hand
    assert torch.equal(compute_advantages(rewards, torch.ones_like(rewards), "rank_test", 1e-4), out)
