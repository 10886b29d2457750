"""The gradient-bias probe, checked exactly by enumeration in float64 (docs/gradient-bias.md).

The reference values are independent of the code under test: grad J by autograd through the MLP's exact
J(theta) = sum_o pi(o) r(o), against the probe's closed-form token Jacobian and the plugins' losses."""

from __future__ import annotations

import json

import pytest
import torch
from grpo_bench.algorithm import Algorithm, PolicyBatch, Stats
from grpo_bench.cli import main
from grpo_bench.probe.estimators import (
    NO_CLIP,
    Estimator,
    Point,
    VariantSpec,
    default_specs,
)
from grpo_bench.probe.gradient_bias import Context, real_run_kl
from grpo_bench.probe.policy import DTYPE, ProbeConfig, ProbePolicy
from grpo_bench.registry import default_registry

CFG = ProbeConfig(digits=2, max_len=4, targets=(2, 3, 4), hidden=8, seed=3, warm_start_value=0.3)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def probe():
    return ProbePolicy.build(CFG)


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def autograd_grad_J(probe, theta):
    th = theta.detach().clone().requires_grad_(True)
    return torch.autograd.grad(probe.objective(th), th)[0]


def random_theta(probe, theta, scale, seed):
    d = torch.randn(probe.dim, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    return theta + scale * d / d.norm()


def test_enumeration_is_complete_and_the_reward_is_the_digit_sum(probe):
    # 2 digits, up to 4 tokens: 1 + 2 + 4 + 8 EOS-terminated + 16 cut = 31 completions per prompt
    assert probe.per_prompt == 31 and probe.idx.shape == (3 * 31, 4)
    theta = probe.init_theta()
    assert torch.allclose(probe.probs(theta).sum(1), torch.ones(3, dtype=DTYPE), atol=1e-12)
    # prompt 0 asks for sum 2: "2 EOS" and "1 1 EOS" (digit values 1, 2; EOS is id 2)
    winners = {tuple(int(t) for t in probe.idx[s][: int(probe.lengths[s])] % 3)
               for s in range(31) if probe.rewards[s] == 1}
    assert winners == {(1, 2), (0, 0, 2)}


def test_exact_gradient_matches_autograd_of_exact_J(probe):
    for seed, theta in enumerate((probe.init_theta(), probe.old_theta())):
        theta = random_theta(probe, theta, 0.7, seed)
        jac = probe.token_jacobian(theta)
        assert torch.allclose(jac, probe.token_jacobian_autograd(theta), atol=1e-12)
        g = probe.exact_gradient(theta, jac)
        ref = autograd_grad_J(probe, theta)
        assert float(ref.norm()) > 1e-3
        assert torch.allclose(g, ref, rtol=1e-10, atol=1e-14)
    # and grad J is the derivative of J: a central difference along a direction
    theta, d = probe.old_theta(), random_theta(probe, torch.zeros(probe.dim, dtype=DTYPE), 1.0, 9)
    h = 1e-5
    fd = (probe.objective(theta + h * d) - probe.objective(theta - h * d)) / (2 * h)
    assert abs(float(fd) - float(probe.exact_gradient(theta) @ d)) < 1e-9


def est(probe, registry, name, **options):
    return Estimator(probe, VariantSpec(name, tuple(sorted(options.items())), "raw"), registry)


def test_trajectory_ratio_expectation_is_grad_J_at_theta_k(probe, registry):
    """A = r, no clip, no length normalisation: E_old[w(o) r(o) grad log pi_k(o)] = grad J(theta_k) for any theta_k."""
    tic = est(probe, registry, "tic_grpo", eps_high=NO_CLIP, advantage="group", max_log_ratio=1e3)
    theta_old = probe.old_theta()
    old = Point.at(probe, theta_old)
    assert tic.exact_available(old)
    for seed, scale in enumerate((0.0, 0.05, 0.5, 8.0)):
        theta_k = random_theta(probe, theta_old, scale, seed)
        mean = tic.exact_expectation(torch.zeros(3, dtype=DTYPE), old, Point.at(probe, theta_k), probe.rewards)
        ref = autograd_grad_J(probe, theta_k)
        assert torch.allclose(mean, ref, rtol=1e-9, atol=1e-13 * float(ref.norm())), scale
    assert probe.kl(theta_old, random_theta(probe, theta_old, 8.0, 3)) > 0.5  # the far point is far


def test_token_ratio_expectation_is_grad_J_at_theta_old_and_first_order_off_at_theta_k(probe, registry):
    """grpo's loss averages over a completion's tokens; A = r * |o| undoes that 1/|o| exactly, leaving
    E_old[r(o) sum_t rho_t grad log pi_k(o_t | o_<t)] with no length normalisation."""
    grpo = est(probe, registry, "grpo", eps_low=NO_CLIP, eps_high=NO_CLIP)
    theta_old = probe.old_theta()
    old = Point.at(probe, theta_old)
    adv = probe.rewards * probe.lengths
    zero = torch.zeros(3, dtype=DTYPE)
    at_old = grpo.exact_expectation(zero, old, old, adv)
    assert torch.allclose(at_old, autograd_grad_J(probe, theta_old), rtol=1e-10, atol=1e-15)
    d = random_theta(probe, torch.zeros(probe.dim, dtype=DTYPE), 1.0, 11)
    errs = []
    for eps in (0.04, 0.02, 0.01, 0.005):
        theta = theta_old + eps * d
        mean = grpo.exact_expectation(zero, old, Point.at(probe, theta), adv)
        errs.append(float((mean - autograd_grad_J(probe, theta)).norm()))
    ratios = [a / b for a, b in zip(errs, errs[1:])]
    assert errs[-1] > 1e-6 * float(at_old.norm())  # it does differ away from theta_old ...
    assert all(abs(r - 2.0) < 0.1 for r in ratios), ratios  # ... by O(||theta_k - theta_old||): first order
    assert abs(ratios[-1] - 2.0) < abs(ratios[0] - 2.0) + 1e-9  # and the rate sharpens as eps -> 0


def test_no_is_expectation_is_grad_J_at_theta_old_wherever_theta_k_is(probe, registry):
    nois = est(probe, registry, "grpo_no_is")
    assert nois.reuse
    theta_old = probe.old_theta()
    old = Point.at(probe, theta_old)
    ref = autograd_grad_J(probe, theta_old)
    for seed, scale in enumerate((0.0, 0.3, 3.0)):
        at = Point.at(probe, random_theta(probe, theta_old, scale, seed))
        mean = nois.exact_expectation(torch.zeros(3, dtype=DTYPE), old, at, probe.rewards * probe.lengths)
        assert torch.allclose(mean, ref, rtol=1e-10, atol=1e-15)


def test_monte_carlo_mean_converges_to_the_exact_expectation(probe, registry):
    grpo = Estimator(probe, VariantSpec("grpo", (), "raw"), registry)
    theta_old = probe.old_theta()
    old = Point.at(probe, theta_old)
    at = Point.at(probe, random_theta(probe, theta_old, 0.5, 2))
    b = probe.value(theta_old)
    exact = grpo.exact_expectation(b, old, at)
    U = grpo.updates(probe.sample(theta_old, 8, 3000, torch.Generator().manual_seed(0)), b, old, at)
    se = (U.var(0).sum() / U.shape[0]).sqrt()
    # ||mean - exact|| is about sqrt(tr Cov / B); 3 standard errors is a loose, seeded bound
    assert float((U.mean(0) - exact).norm()) < 3 * float(se)
    assert float(exact.norm()) > 5 * float(se)


class TokenNormalised(Algorithm):
    """A real (if unregistered) variant whose loss divides by the batch's token count: not separable."""

    name = "token_normalised"

    def loss(self, batch: PolicyBatch, stats: Stats) -> torch.Tensor:
        return -(batch.advantages.unsqueeze(1) * batch.logp * batch.mask).sum() / batch.mask.sum()


class OneAlgorithm:
    def __init__(self, cls):
        self.cls = cls

    def get(self, kind, name):
        assert kind == "algorithms" and name == self.cls.name
        return self.cls


def test_exact_expectation_only_where_it_exists(probe, registry):
    old = Point.at(probe, probe.old_theta())
    assert not Estimator(probe, VariantSpec("grpo", (), "group"), registry).exact_available(old)
    assert Estimator(probe, VariantSpec("grpo", (), "raw"), registry).exact_available(old)
    odd = Estimator(probe, VariantSpec("token_normalised", (), "raw"), OneAlgorithm(TokenNormalised))
    assert not odd.exact_available(old)
    assert odd.exact_expectation(probe.value(old.theta), old, old) is None


def test_every_registered_algorithm_is_probed_with_a_noclip_ablation_where_it_clips(registry):
    specs = default_specs(registry)
    assert {s.algorithm for s in specs} == set(registry.names("algorithms"))
    labels = {s.label for s in specs}
    assert {"grpo", "grpo[raw]", "grpo[sum]", "grpo[noclip]", "tic_grpo[noclip][raw]", "grpo_no_is"} <= labels
    assert "grpo_no_is[noclip]" not in labels  # it has no eps option


def test_perturbation_hits_the_exact_kl():
    ctx = Context(CFG, seed=0)
    for target in (0.01, 0.5):
        theta = ctx.perturbed(target)
        assert abs(ctx.probe.kl(ctx.theta_old, theta) - target) < 1e-6 * target
    assert ctx.probe.kl(ctx.theta_old, ctx.theta_old) == 0.0


def test_real_run_kl_reads_the_logged_column_or_derives_it(tmp_path):
    run = tmp_path / "suite" / "runs" / "grpo" / "seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"config": {"train": {"mu": 2}}}))
    rows = [{"step": 0, "log_ratio_traj_mean": -0.5}, {"step": 1, "kl_old_k3_seq": 3.0, "log_ratio_traj_mean": -9.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    band = real_run_kl(tmp_path)
    assert band["steps"] == 2 and band["median"] == pytest.approx(2.0)  # 0.5 * 2 / 1 = 1.0 and 3.0
    assert real_run_kl(tmp_path / "nothing") is None


def test_cli_writes_table_plots_and_config(tmp_path, capsys):
    out = tmp_path / "gb"
    rc = main(["probe", "gradient-bias", "--out", str(out), "--digits", "2", "--max-len", "3", "--targets", "2,3",
               "--hidden", "8", "--kls", "0,0.2", "--group-sizes", "2", "--max-lens", "2", "--opt-steps", "1",
               "--batches", "20", "--bootstrap", "20", "--runs-root", str(tmp_path / "none")])
    assert rc == 0
    for name in ("table.md", "table.csv", "table.json", "config.json", "plots/cosine_vs_kl.png",
                 "plots/cosine_vs_kl_optsteps.png", "plots/group_size_length.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "table.json").read_text())
    algos = set(default_registry().names("algorithms"))
    assert {r["algorithm"] for r in data["rows"]} == algos
    assert {r["sweep"] for r in data["rows"]} == {"kl", "group_size", "length", "opt_steps"}
    for r in data["rows"]:
        assert -1 <= r["cos_k"] <= 1 and r["cos_k_lo"] <= r["cos_k_hi"]
        if r["advantage"] != "group" and r["staleness"] == "kl=0":
            assert r["exact_cos_k"] == pytest.approx(r["exact_cos_old"])
    assert "not yet measured" in (out / "table.md").read_text()
    assert json.loads((out / "config.json").read_text())["provenance"]["git_commit"]


def test_cli_rejects_bad_options(tmp_path, capsys):
    assert main(["probe", "gradient-bias", "--out", str(tmp_path), "--kls", "0,-1"]) == 2
    assert main(["probe", "gradient-bias", "--out", str(tmp_path), "--variants", "nope"]) == 2
    assert main(["probe", "gradient-bias", "--out", str(tmp_path), "--group-sizes", "1"]) == 2
    assert "error" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_sum_advantages_remove_the_length_normalisation(probe, registry):
    """'sum' divides A by the plugin's own per-token weight (1/|o| for grpo, 1 for tic_grpo), so with the true
    value baseline every variant's exact expectation at theta_old is grad J(theta_old) itself, and the
    reuse-gradient variant's stays there wherever theta_k is."""
    theta_old = probe.old_theta()
    old = Point.at(probe, theta_old)
    b = probe.value(theta_old)
    ref = autograd_grad_J(probe, theta_old)
    far = Point.at(probe, random_theta(probe, theta_old, 3.0, 5))
    for name in ("grpo", "tic_grpo", "grpo_no_is"):
        e = Estimator(probe, VariantSpec(name, (), "sum"), registry)
        assert torch.allclose(e.exact_expectation(b, old, old), ref, rtol=1e-10, atol=1e-15), name
    e = Estimator(probe, VariantSpec("grpo", (), "sum"), registry)
    e.prepare(old)
    assert torch.allclose(e._weights, 1 / probe.lengths)
    nois = Estimator(probe, VariantSpec("grpo_no_is", (), "sum"), registry)
    assert torch.allclose(nois.exact_expectation(b, old, far), ref, rtol=1e-10, atol=1e-15)
    tic = Estimator(probe, VariantSpec("tic_grpo", (("eps_high", NO_CLIP),), "sum"), registry)
    assert torch.allclose(tic.exact_expectation(b, old, far), autograd_grad_J(probe, far.theta), rtol=1e-9,
                          atol=1e-13)
