"""Malformed suites: a one-line error naming the file and the key, exit status 2, nothing written."""

import pytest
from grpo_bench.cli import main

GOOD = '''
[suite]
model = "tiny-random"
engine = "hf"
[train]
benchmark = "arith"
steps = 1
[eval]
benchmarks = [{ name = "arith", limit = 2 }]
[[variants]]
algorithm = "grpo"
'''

CASES = [
    ("unknown top-level key", GOOD + "\n[extra]\nx = 1\n", "extra: unknown key"),
    ("unknown key", GOOD.replace("steps = 1", "stepz = 1"), "train.stepz: unknown key"),
    ("wrong type", GOOD.replace("steps = 1", 'steps = "eight"'), "train.steps: expected int, got str"),
    ("bool is not int", GOOD.replace("steps = 1", "steps = true"), "train.steps: expected int"),
    ("unknown algorithm", GOOD.replace('algorithm = "grpo"', 'algorithm = "ppo9000"'),
     "variants[0].algorithm: unknown algorithm 'ppo9000'"),
    ("unknown reward", GOOD.replace("steps = 1", 'steps = 1\nrewards = ["nope"]'), "train.rewards[0]: unknown reward 'nope'"),
    ("unknown benchmark", GOOD.replace('benchmark = "arith"', 'benchmark = "gsm9k"'), "train.benchmark: unknown benchmark"),
    ("unknown eval split", GOOD.replace('limit = 2', 'limit = 2, split = "dev"'), "eval.benchmarks[0].split"),
    ("bad option", GOOD.replace('algorithm = "grpo"', 'algorithm = "grpo"\noptions = { eps_low = "wide" }'),
     "variants[0].options: grpo: option 'eps_low' must be float"),
    ("unknown option", GOOD.replace('algorithm = "grpo"', 'algorithm = "tic_grpo"\noptions = { length_corrected = true }'),
     "variants[0].options: tic_grpo: unknown option 'length_corrected'"),
    ("group of one", GOOD.replace("steps = 1", "steps = 1\ngroup_size = 1"), "train.group_size"),
    ("no variants", GOOD.split("[[variants]]")[0], "variants: at least one"),
    ("duplicate variant", GOOD + '\n[[variants]]\nalgorithm = "grpo"\n', "variants[1].name: duplicate"),
    ("not toml", "[suite\nmodel=", "not valid TOML"),
    ("unknown engine", GOOD.replace('engine = "hf"', 'engine = "warp"'), "suite.engine"),
    ("unknown engine option", GOOD.replace('engine = "hf"', 'engine = "hf"\nengine_options = { turbo = true }'),
     "suite.engine_options: engine 'hf': unknown option 'turbo'"),
    ("variant train key unknown", GOOD + 'train = { rewardz = 1 }\n', "variants[0].train.rewardz: unknown key"),
    ("variant train out of range", GOOD + 'train = { learning_rate = -1.0 }\n', "variants[0].train.learning_rate"),
    ("positive control not a variant", GOOD.replace('engine = "hf"', 'engine = "hf"\npositive_control = "x"'),
     "suite.positive_control"),
    ("bf16 not a choice", GOOD.replace("steps = 1", 'steps = 1\nbf16_autocast = "maybe"'), "train.bf16_autocast"),
    ("bf16 wrong type", GOOD.replace("steps = 1", 'steps = 1\nbf16_autocast = 1'), "train.bf16_autocast: expected bool or string"),
    ("fused not a choice", GOOD.replace("steps = 1", 'steps = 1\nadamw_fused = "yes"'), "train.adamw_fused"),
    ("negative token budget", GOOD.replace("steps = 1", "steps = 1\nmicro_batch_tokens = -1"), "train.micro_batch_tokens: must be >= 0"),
    ("margin out of range", GOOD.replace('engine = "hf"', 'engine = "hf"\nequivalence_margin = 3.0'),
     "suite.equivalence_margin"),
]

# Out-of-range and unsafe settings: each refused at load with the key and the reason, before any write.
TRAIN = "steps = 1"
RANGE_CASES = [
    ("variant name ../x", 'algorithm = "grpo"', 'algorithm = "grpo"\nname = "../x"', "variants[0].name: use letters"),
    ("variant name absolute", 'algorithm = "grpo"', 'algorithm = "grpo"\nname = "/tmp/x"', "variants[0].name"),
    ("variant name with separator", 'algorithm = "grpo"', 'algorithm = "grpo"\nname = "a/b"', "variants[0].name"),
    ("variant name ..", 'algorithm = "grpo"', 'algorithm = "grpo"\nname = ".."', "variants[0].name"),
    ("suite name ..", 'engine = "hf"', 'engine = "hf"\nname = ".."', "suite.name"),
    ("weight inf", TRAIN, 'steps = 1\nreward_weights = { math_verify = inf }', "train.reward_weights.math_verify: must be a finite number"),
    ("weight nan", TRAIN, 'steps = 1\nreward_weights = { math_verify = nan }', "train.reward_weights.math_verify"),
    ("weight 1e308", TRAIN, 'steps = 1\nreward_weights = { math_verify = 1e308 }', "|weight| <= 1e+06"),
    ("group_size 10**9", TRAIN, "steps = 1\ngroup_size = 1000000000", "train.group_size: prompts_per_step * group_size"),
    ("rollout tokens", TRAIN, "steps = 1\ngroup_size = 4096\nprompts_per_step = 16\nmax_new_tokens = 8192",
     "train.max_new_tokens: a step holds up to"),
    ("negative eval length", "[eval]", "[eval]\nmax_new_tokens = -5", "eval.max_new_tokens: must be >= 1"),
    ("zero eval batch", "[eval]", "[eval]\nbatch_size = 0", "eval.batch_size: must be >= 1"),
    ("zero micro batch", TRAIN, "steps = 1\nmicro_batch_size = 0", "train.micro_batch_size: must be >= 1"),
    ("zero generation batch", TRAIN, "steps = 1\ngeneration_batch_size = 0", "train.generation_batch_size"),
    ("beta1 = 1", TRAIN, "steps = 1\nadam_beta1 = 1.0", "train.adam_beta1: must be in [0, 1)"),
    ("beta2 < 0", TRAIN, "steps = 1\nadam_beta2 = -0.1", "train.adam_beta2: must be in [0, 1)"),
    ("nan learning rate", TRAIN, "steps = 1\nlearning_rate = nan", "train.learning_rate: must be a finite number"),
    ("inf learning rate", TRAIN, "steps = 1\nlearning_rate = inf", "train.learning_rate: must be a finite number"),
    ("inf temperature", TRAIN, "steps = 1\ntemperature = inf", "train.temperature: must be a finite number"),
    ("nan eval temperature", "[eval]", "[eval]\ntemperature = nan", "eval.temperature: must be a finite"),
    ("zero eval temperature", "[eval]", "[eval]\ntemperature = 0.0", "eval.temperature: must be a finite number > 0"),
    ("negative grad clip", TRAIN, "steps = 1\ngrad_clip = -1.0", "train.grad_clip: must be > 0"),
    ("negative weight decay", TRAIN, "steps = 1\nweight_decay = -0.1", "train.weight_decay: must be >= 0"),
    ("unknown device", 'engine = "hf"', 'engine = "hf"\ndevice = "tpu7"', "suite.device: unknown device 'tpu7'"),
    ("negative seed", 'engine = "hf"', 'engine = "hf"\nseeds = [-1]', "suite.seeds[0]: must be in [0,"),
    ("duplicate seed", 'engine = "hf"', 'engine = "hf"\nseeds = [1, 1]', "suite.seeds: duplicate seed"),
    ("negative eval samples", "[eval]", "[eval]\nsamples = -1", "eval.samples: must be in [0, 1024]"),
    ("negative checkpoint interval", TRAIN, "steps = 1\ncheckpoint_every = -1", "train.checkpoint_every: must be >= 0"),
    ("negative prompt length", TRAIN, "steps = 1\nmax_prompt_tokens = -1", "train.max_prompt_tokens: must be >= 1"),
    ("error share > 1", TRAIN, "steps = 1\nmax_reward_error_frac = 1.5", "train.max_reward_error_frac: must be in [0, 1]"),
    ("zero reward timeout", TRAIN, "steps = 1\nreward_timeout_s = 0.0", "train.reward_timeout_s: must be > 0"),
    ("unknown engine option", 'engine = "hf"', 'engine = "hf"\nengine_options = { warp_speed = 9 }',
     "suite.engine_options: engine 'hf': unknown option 'warp_speed'"),
    ("missing model path", 'model = "tiny-random"', 'model = "/nonexistent/model"',
     "suite.model: model '/nonexistent/model': no such folder"),
    ("nan algorithm option", 'algorithm = "grpo"', 'algorithm = "grpo"\noptions = { eps_low = nan }',
     "variants[0].options.eps_low: must be a finite number"),
    ("inf algorithm option", 'algorithm = "grpo"', 'algorithm = "tic_grpo"\noptions = { max_log_ratio = inf }',
     "variants[0].options.max_log_ratio: must be a finite number"),
    ("nan engine option", 'engine = "hf"', 'engine = "hf"\nengine_options = { x = nan }',
     "suite.engine_options.x: must be a finite number"),
    ("zero delta", 'algorithm = "grpo"', 'algorithm = "grpo"\noptions = { delta = 0.0 }', "option 'delta' must be > 0"),
]
CASES += [(label, GOOD.replace(old, new, 1), needle) for label, old, new, needle in RANGE_CASES]

# Benchmark versions and pre-registered claims (docs/leaderboard.md): each refused at load in one line.
TWO = GOOD + '\n[[variants]]\nalgorithm = "grpo_no_is"\n'
CLAIM = '\n[[claims]]\nvariant = "grpo_no_is"\nreference = "grpo"\n'
CASES += [
    ("unknown benchmark version", GOOD.replace("steps = 1", "steps = 1\nbenchmark_version = 9"),
     "train.benchmark_version: benchmark 'arith' has no version 9"),
    ("eval version differs from train", GOOD.replace("steps = 1", "steps = 1\nbenchmark_version = 2")
     .replace("limit = 2 }", "limit = 2, version = 1 }"), "eval.benchmarks[0].version: 1, but train.benchmark_version is 2"),
    ("claim unknown variant", TWO + CLAIM.replace('"grpo_no_is"', '"grpo_nois"') + 'kind = "difference"\n',
     "claims[0].variant: 'grpo_nois' is not a variant name"),
    ("claim unknown reference", TWO + CLAIM.replace('"grpo"\n', '"ppo"\n') + 'kind = "difference"\n',
     "claims[0].reference: 'ppo' is not a variant name"),
    ("claim against itself", TWO + CLAIM.replace('"grpo"\n', '"grpo_no_is"\n') + 'kind = "difference"\n',
     "claims[0].reference: the same variant"),
    ("claim unknown kind", TWO + CLAIM + 'kind = "superiority"\nmargin = 3\n', "claims[0].kind: expected one of"),
    ("claim without kind", TWO + CLAIM, "claims[0].kind: expected one of"),
    ("equivalence without margin", TWO + CLAIM + 'kind = "equivalence"\n', "claims[0].margin: kind 'equivalence' needs a margin"),
    ("non-inferiority negative margin", TWO + CLAIM + 'kind = "non_inferiority"\nmargin = -3\n',
     "claims[0].margin: kind 'non_inferiority' needs a margin"),
    ("difference with margin", TWO + CLAIM + 'kind = "difference"\nmargin = 3\n', "claims[0].margin: kind 'difference' uses no margin"),
    ("claim alpha", TWO + CLAIM + 'kind = "difference"\nalpha = 0.5\n', "claims[0].alpha: must be in (0, 0.5)"),
    ("claim metric", TWO + CLAIM + 'kind = "difference"\nmetric = "mean@4"\n', "claims[0].metric: expected one of pass@1"),
    ("claim target", TWO + CLAIM + 'kind = "difference"\ntarget = "gsm8k-test"\n', "claims[0].target: 'gsm8k-test' is not an eval target"),
    ("claim unknown key", TWO + CLAIM + 'kind = "difference"\nmargins = 3\n', "claims[0].margins: unknown key"),
    ("duplicate claim", TWO + (CLAIM + 'kind = "difference"\n') * 2, "claims[1].name: duplicate claim"),
]


#: a typo of a known name: the error names the nearest one
DID_YOU_MEAN = [
    ("algorithm", GOOD.replace('algorithm = "grpo"', 'algorithm = "grpo_no_iss"'),
     "variants[0].algorithm: unknown algorithm 'grpo_no_iss'; did you mean 'grpo_no_is'?"),
    ("reward", GOOD.replace("steps = 1", 'steps = 1\nrewards = ["math_verfy"]'),
     "train.rewards[0]: unknown reward 'math_verfy'; did you mean 'math_verify'?"),
    ("benchmark", GOOD.replace('benchmark = "arith"', 'benchmark = "gsm8"'),
     "train.benchmark: unknown benchmark 'gsm8'; did you mean 'gsm8k'?"),
    ("engine", GOOD.replace('engine = "hf"', 'engine = "vlm"'), "suite.engine: unknown engine 'vlm'; did you mean 'vllm'?"),
    ("eval benchmark", GOOD.replace('name = "arith"', 'name = "arith_hard"'),
     "eval.benchmarks[0].name: unknown benchmark 'arith_hard'; did you mean 'arith-hard'"),
    ("advantage", GOOD.replace('algorithm = "grpo"', 'algorithm = "grpo"\noptions = { advantage = "grup" }'),
     "variants[0].options: grpo: option 'advantage': unknown advantage 'grup'; did you mean 'group'"),
    ("section", GOOD.replace("[train]", "[trian]"), "trian: unknown key; did you mean 'train'"),
    ("key", GOOD.replace("steps = 1", "setps = 1"), "train.setps: unknown key; did you mean 'steps'?"),
]
CASES += [(f"did you mean {label}", text, needle) for label, text, needle in DID_YOU_MEAN]


@pytest.mark.parametrize("label,text,needle", CASES, ids=[c[0] for c in CASES])
def test_malformed_suite(tmp_path, capsys, label, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    results = tmp_path / "results"
    assert main(["run", str(path), "--results-dir", str(results)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and needle in err, err
    assert not results.exists()


def test_missing_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml"), "--results-dir", str(tmp_path / "r")]) == 2
    assert "nope.toml: file not found" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_good_suite_parses_and_resolves_every_option(tmp_path):
    from grpo_bench.config import load_suite
    from grpo_bench.registry import default_registry

    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    suite = load_suite(path, default_registry())
    assert suite.suite.name == "good"
    assert suite.variants[0].options == {"beta": 0.0, "delta": 1e-4, "std": "unbiased", "advantage": "group",
                                         "aggregation": "seq_mean", "ratio_level": "token", "clip": "two_sided",
                                         "eps_low": 0.2, "eps_high": 0.2, "dual_clip": 0.0, "max_log_ratio": 20.0}


def test_claims_and_versions_parse_and_stay_out_of_the_hash(tmp_path):
    """[[claims]] and a benchmark version load resolved; claims never change the config hash, version 1
    (what published folders were made with) hashes as if the key did not exist, version 2 changes it."""
    from grpo_bench.config import load_suite
    from grpo_bench.config.suite import config_hash
    from grpo_bench.execute.plan import shared_config
    from grpo_bench.registry import default_registry

    def digest(text):
        path = tmp_path / "s.toml"
        path.write_text(text)
        suite = load_suite(path, default_registry())
        return suite, config_hash(shared_config(suite.resolved()))

    plain, h_plain = digest(TWO)
    assert plain.train.benchmark_version == 1 and plain.eval.benchmarks[0].version == 1
    claimed, h_claimed = digest(TWO + CLAIM + 'kind = "equivalence"\nmargin = 3\n')
    (c,) = claimed.claims
    assert (c.kind, c.margin, c.metric, c.target, c.alpha, c.name) == (
        "equivalence", 3.0, "pass@1", "arith-test", 0.05, "grpo_no_is equivalence grpo")
    v2, h_v2 = digest(TWO.replace("steps = 1", "steps = 1\nbenchmark_version = 2"))
    assert v2.eval.benchmarks[0].version == 2  # the eval target of the train benchmark follows it
    pinned, h_pinned = digest(TWO.replace("steps = 1", "steps = 1\nbenchmark_version = 1"))
    assert h_plain == h_claimed == h_pinned != h_v2


def test_variant_train_overrides_reach_the_trainer(tmp_path):
    """A positive control at a tenth of the learning rate: only that variant's runs train with it."""
    import json

    text = GOOD.replace("steps = 1", "steps = 1\nprompts_per_step = 1\ngroup_size = 2\nmax_new_tokens = 4\nlearning_rate = 1e-3")
    text += '\n[[variants]]\nname = "grpo_lr_tenth"\nalgorithm = "grpo"\ntrain = { learning_rate = 1e-4 }\n'
    text = text.replace('engine = "hf"', 'engine = "hf"\npositive_control = "grpo_lr_tenth"\nkeep_checkpoints = true')
    path = tmp_path / "ctl.toml"
    path.write_text(text.replace("limit = 2", "limit = 1"))
    assert main(["run", str(path), "--results-dir", str(tmp_path / "r")]) == 0
    cfg = json.loads((tmp_path / "r" / "ctl" / "runs" / "grpo_lr_tenth" / "seed0" / "config.json").read_text())
    control = next(v for v in cfg["config"]["variants"] if v["name"] == "grpo_lr_tenth")
    assert control["train"] == {"learning_rate": 1e-4}
    # the trainer's optimizer was built with each variant's own rate (read back from the kept checkpoints)
    import torch

    for name, lr in (("grpo", 1e-3), ("grpo_lr_tenth", 1e-4)):
        state = torch.load(tmp_path / "r" / "ctl" / "runs" / name / "seed0" / "checkpoint" / "state.pt",
                           weights_only=False)
        assert state["optimizer"]["param_groups"][0]["lr"] == lr


def test_bf16_auto_resolves_from_the_cpu_flags(tmp_path, monkeypatch):
    from grpo_bench import provenance
    from grpo_bench.config import load_suite
    from grpo_bench.registry import default_registry

    path = tmp_path / "auto.toml"
    no_ratios = GOOD.replace('engine = "hf"', 'engine = "hf"\ndevice = "cpu"').replace('"grpo"', '"grpo_no_is"')
    path.write_text(no_ratios)
    for flags, expected in (({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True), ({"avx2", "fma"}, False)):
        monkeypatch.setattr(provenance, "cpu_flags", lambda flags=flags: set(flags))
        assert load_suite(path, default_registry()).train.bf16_autocast is expected
    # a suite that compares importance ratios between inner passes (grpo, mu = 4 by default) gets the ratio
    # numerics on any CPU (config.suite.RATIO_NUMERICS: fp32, from benchmarks/perf/ratio_noise.py) ...
    monkeypatch.setattr(provenance, "cpu_flags", lambda: {"amx_bf16"})
    path.write_text(no_ratios + '\n[[variants]]\nalgorithm = "grpo"\n')
    loaded = load_suite(path, default_registry())
    assert (loaded.train.bf16_autocast, loaded.train.bf16_weights) == (False, False)
    # ... but not with mu = 1 (every ratio is 1 at the only pass), nor for a variant override that sets mu = 1
    path.write_text(no_ratios.replace("steps = 1", "steps = 1\nmu = 1") + '\n[[variants]]\nalgorithm = "grpo"\n')
    assert load_suite(path, default_registry()).train.bf16_autocast is True
    path.write_text(no_ratios + '\n[[variants]]\nalgorithm = "grpo"\ntrain = { mu = 1 }\n')
    assert load_suite(path, default_registry()).train.bf16_autocast is True
    path.write_text(GOOD.replace("steps = 1", "steps = 1\nbf16_autocast = false"))
    assert load_suite(path, default_registry()).train.bf16_autocast is False


def test_adamw_fused_auto_resolves_from_torch(tmp_path, monkeypatch):
    from grpo_bench import provenance
    from grpo_bench.config import load_suite
    from grpo_bench.registry import default_registry

    path = tmp_path / "auto.toml"
    path.write_text(GOOD.replace('engine = "hf"', 'engine = "hf"\ndevice = "cpu"'))
    assert load_suite(path, default_registry()).train.adamw_fused is provenance.fused_adamw_support("cpu")
    monkeypatch.setattr(provenance, "fused_adamw_support", lambda device: False)
    assert load_suite(path, default_registry()).train.adamw_fused is False
    path.write_text(GOOD.replace("steps = 1", "steps = 1\nadamw_fused = true"))
    assert load_suite(path, default_registry()).train.adamw_fused is True


def test_keep_freed_memory_auto_resolves_from_the_c_library(tmp_path, monkeypatch):
    from grpo_bench import provenance
    from grpo_bench.config import load_suite
    from grpo_bench.errors import UserError
    from grpo_bench.registry import default_registry

    path = tmp_path / "auto.toml"
    path.write_text(GOOD)
    for libc, expected in ((("glibc", "2.36"), True), (("", ""), False)):
        monkeypatch.setattr(provenance.platform, "libc_ver", lambda libc=libc: libc)
        assert load_suite(path, default_registry()).train.keep_freed_memory is expected
    path.write_text(GOOD.replace("steps = 1", "steps = 1\nkeep_freed_memory = \"yes\""))
    with pytest.raises(UserError, match="keep_freed_memory"):
        load_suite(path, default_registry())
