"""The probe policy: an MLP over a one-hot prefix, small enough to enumerate every completion.

Vocabulary: ``digits`` tokens (ids 0..digits-1, values 1..digits) plus EOS (id ``digits``). A
completion is k digits then EOS (k <= max_len - 1), or max_len digits without EOS (cut at the
length limit). Prompt x_p asks for digit sum ``targets[p]``: r = 1 if the completion ends with EOS
and its digits sum to the target, else 0.

pi_theta(a | x, prefix) = softmax(W2 tanh(W1 phi(x, prefix) + b1) + b2)[a], with phi the
concatenation of one-hots of the prompt, of the token at each prefix position and of the position.
All parameters live in one flat float64 vector theta, so cosines and perturbations are plain
vector operations.

Everything the probe needs is linear algebra over two tables at a given theta:
- ``token_logp(theta)``: log pi(a | x, prefix) for every (prompt, prefix, next token), flat ``[T]``;
- ``token_jacobian(theta)``: its Jacobian ``[T, D]``.
A completion's token t reads entry ``idx[s, t]`` of the table; a gradient of any function of the
per-token log-probs is the cotangent scattered onto the table times the Jacobian (``pullback``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import torch
from torch.func import jacrev, vmap

DTYPE = torch.float64


@dataclass(frozen=True)
class ProbeConfig:
    digits: int = 3  # non-EOS tokens (values 1..digits)
    max_len: int = 5  # most tokens in a completion, EOS included
    targets: tuple[int, ...] = (3, 4, 5, 6)  # one prompt per target digit sum
    hidden: int = 32
    init_scale: float = 1.5  # std of W1, W2 entries is init_scale / sqrt(fan_in)
    seed: int = 0
    warm_start_value: float = 0.3  # theta_old: exact gradient ascent (Adam) from the init until mean J >= this
    warm_start_lr: float = 0.03

    def as_dict(self) -> dict:
        return asdict(self) | {"targets": list(self.targets)}


@dataclass
class ProbePolicy:
    cfg: ProbeConfig
    features: torch.Tensor = field(repr=False)  # [P * nprefix, D_in]
    idx: torch.Tensor = field(repr=False)  # [S, L] index into the flat token table (0 where masked)
    mask: torch.Tensor = field(repr=False)  # [S, L] float64
    rewards: torch.Tensor = field(repr=False)  # [S]
    lengths: torch.Tensor = field(repr=False)  # [S] tokens, EOS included
    prompt: torch.Tensor = field(repr=False)  # [S] prompt index; sequences are sorted by prompt
    per_prompt: int = 0  # completions per prompt (the same for every prompt)
    shapes: list = field(default_factory=list, repr=False)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, cfg: ProbeConfig) -> "ProbePolicy":
        V, L, P = cfg.digits, cfg.max_len, len(cfg.targets)
        if V < 1 or L < 1 or P < 1 or cfg.hidden < 1:
            raise ValueError(f"probe: digits, max_len, targets and hidden must be positive, got {cfg}")
        prefixes = [p for k in range(L) for p in itertools.product(range(V), repeat=k)]
        prefix_id = {p: i for i, p in enumerate(prefixes)}
        n_pre = len(prefixes)
        d_in = P + max(L - 1, 0) * V + L
        feats = torch.zeros(P * n_pre, d_in, dtype=DTYPE)
        for x in range(P):
            for i, pre in enumerate(prefixes):
                row = feats[x * n_pre + i]
                row[x] = 1.0
                for pos, tok in enumerate(pre):
                    row[P + pos * V + tok] = 1.0
                row[P + max(L - 1, 0) * V + len(pre)] = 1.0
        completions = [c + (V,) for k in range(L) for c in itertools.product(range(V), repeat=k)]
        completions += list(itertools.product(range(V), repeat=L))  # cut at max_len, no EOS
        S = P * len(completions)
        idx = torch.zeros(S, L, dtype=torch.long)
        mask = torch.zeros(S, L, dtype=DTYPE)
        rewards = torch.zeros(S, dtype=DTYPE)
        lengths = torch.zeros(S, dtype=DTYPE)
        prompt = torch.zeros(S, dtype=torch.long)
        s = 0
        for x, target in enumerate(cfg.targets):
            for c in completions:
                for t, tok in enumerate(c):
                    idx[s, t] = (x * n_pre + prefix_id[c[:t]]) * (V + 1) + tok
                    mask[s, t] = 1.0
                ended = c[-1] == V
                digit_sum = sum(tok + 1 for tok in c if tok != V)
                rewards[s] = 1.0 if ended and digit_sum == target else 0.0
                lengths[s] = len(c)
                prompt[s] = x
                s += 1
        H = cfg.hidden
        shapes = [("W1", (H, d_in)), ("b1", (H,)), ("W2", (V + 1, H)), ("b2", (V + 1,))]
        return cls(cfg, feats, idx, mask, rewards, lengths, prompt, len(completions), shapes)

    @property
    def num_prompts(self) -> int:
        return len(self.cfg.targets)

    @property
    def table_size(self) -> int:
        return self.features.shape[0] * (self.cfg.digits + 1)

    @property
    def dim(self) -> int:
        return sum(math.prod(s) for _, s in self.shapes)

    def init_theta(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.cfg.seed)
        parts = []
        for name, shape in self.shapes:
            if name.startswith("W"):
                parts.append(torch.randn(shape, generator=gen, dtype=DTYPE) * self.cfg.init_scale / math.sqrt(shape[1]))
            else:
                parts.append(torch.zeros(shape, dtype=DTYPE))
        return torch.cat([p.reshape(-1) for p in parts])

    def old_theta(self) -> torch.Tensor:
        """theta_old: the seeded init moved by exact gradient ascent (Adam) until J >= warm_start_value, so
        rewards are neither all 0 nor all 1 (a mid-training policy). At most 2000 steps."""
        theta = self.init_theta().requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=self.cfg.warm_start_lr)
        for _ in range(2000):
            if float(self.value(theta.detach()).mean()) >= self.cfg.warm_start_value:
                break
            theta.grad = -self.exact_gradient(theta.detach())
            opt.step()
        return theta.detach().clone()

    def _unflatten(self, theta: torch.Tensor) -> list[torch.Tensor]:
        out, at = [], 0
        for _, shape in self.shapes:
            n = math.prod(shape)
            out.append(theta[at:at + n].reshape(shape))
            at += n
        return out

    # ---- the tables ---------------------------------------------------------------------------
    def _logp_rows(self, theta: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        W1, b1, W2, b2 = self._unflatten(theta)
        return torch.log_softmax(torch.tanh(feats @ W1.T + b1) @ W2.T + b2, dim=-1)

    def token_logp(self, theta: torch.Tensor) -> torch.Tensor:
        """log pi_theta(a | x, prefix), flat ``[T]`` (differentiable in theta)."""
        return self._logp_rows(theta, self.features).reshape(-1)

    def token_jacobian(self, theta: torch.Tensor) -> torch.Tensor:
        """d token_logp / d theta, ``[T, D]``, in closed form (back-propagation written out per row;
        tests check it against torch.func.jacrev)."""
        W1, b1, W2, b2 = self._unflatten(theta.detach())
        f = self.features
        h = torch.tanh(f @ W1.T + b1)  # [R, H]
        p = torch.softmax(h @ W2.T + b2, dim=-1)  # [R, A]
        A = p.shape[1]
        dlogits = torch.eye(A, dtype=DTYPE) - p.unsqueeze(1)  # [R, a, j] = delta_aj - p_j
        dW2 = dlogits.unsqueeze(-1) * h[:, None, None, :]  # [R, a, j, H]
        dz = (dlogits @ W2) * (1 - h * h).unsqueeze(1)  # [R, a, H]
        dW1 = dz.unsqueeze(-1) * f[:, None, None, :]  # [R, a, H, D_in]
        R = f.shape[0]
        jac = torch.cat([dW1.reshape(R, A, -1), dz, dW2.reshape(R, A, -1), dlogits], dim=-1)
        return jac.reshape(R * A, -1)

    def token_jacobian_autograd(self, theta: torch.Tensor) -> torch.Tensor:
        """The same Jacobian by torch.func.jacrev (slower; the reference in tests)."""
        one = jacrev(lambda th, f: self._logp_rows(th, f.unsqueeze(0))[0])
        jac = vmap(one, in_dims=(None, 0))(theta.detach(), self.features)  # [P * nprefix, V + 1, D]
        return jac.reshape(-1, jac.shape[-1])

    def seq_logp(self, table: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        idx, mask = (self.idx, self.mask) if rows is None else (self.idx[rows], self.mask[rows])
        return (table[idx] * mask).sum(-1)

    def probs(self, theta: torch.Tensor) -> torch.Tensor:
        """pi_theta(o | x), ``[P, per_prompt]`` (each row sums to 1)."""
        with torch.no_grad():
            return torch.exp(self.seq_logp(self.token_logp(theta))).view(self.num_prompts, -1)

    # ---- exact objective, gradient, KL --------------------------------------------------------
    def objective(self, theta: torch.Tensor) -> torch.Tensor:
        """J(theta) = (1/P) sum_x sum_o pi_theta(o | x) r(x, o), differentiable (for autograd checks)."""
        return (torch.exp(self.seq_logp(self.token_logp(theta))) * self.rewards).sum() / self.num_prompts

    def scatter(self, rows: torch.Tensor | None, cot: torch.Tensor) -> torch.Tensor:
        """Per-token cotangents ``[S, L]`` of completion ``rows`` summed onto the flat token table ``[T]``."""
        idx, mask = (self.idx, self.mask) if rows is None else (self.idx[rows], self.mask[rows])
        return torch.zeros(self.table_size, dtype=DTYPE).index_add_(
            0, idx.reshape(-1), (cot * mask).reshape(-1))

    def pullback(self, jac: torch.Tensor, rows: torch.Tensor | None, cot: torch.Tensor) -> torch.Tensor:
        """sum_{s,t} cot[s, t] * d logp_{s,t} / d theta: the gradient of a function of per-token log-probs."""
        return self.scatter(rows, cot) @ jac

    def exact_gradient(self, theta: torch.Tensor, jac: torch.Tensor | None = None,
                       weight: torch.Tensor | None = None) -> torch.Tensor:
        """grad J = (1/P) sum_x sum_o pi(o|x) r(x,o) sum_t grad log pi(o_t | x, o_<t), by enumeration; with
        ``weight`` kappa ``[S]`` the gradient of (1/P) sum_x E[kappa(o) r(x, o)] instead."""
        jac = self.token_jacobian(theta) if jac is None else jac
        reward = self.rewards if weight is None else self.rewards * weight
        with torch.no_grad():
            w = torch.exp(self.seq_logp(self.token_logp(theta))) * reward / self.num_prompts
        return self.pullback(jac, None, w.unsqueeze(1).expand_as(self.mask))

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """E[r | x] under pi_theta, ``[P]``."""
        return (self.probs(theta) * self.rewards.view(self.num_prompts, -1)).sum(1)

    def kl(self, theta_old: torch.Tensor, theta: torch.Tensor) -> float:
        """Exact sequence-level KL(pi_old || pi_theta), averaged over prompts."""
        with torch.no_grad():
            lo = self.seq_logp(self.token_logp(theta_old))
            lt = self.seq_logp(self.token_logp(theta))
            return float((torch.exp(lo) * (lo - lt)).sum() / self.num_prompts)

    def mean_length(self, theta: torch.Tensor) -> float:
        return float((self.probs(theta) * self.lengths.view(self.num_prompts, -1)).sum() / self.num_prompts)

    # ---- sampling -----------------------------------------------------------------------------
    def sample(self, theta: torch.Tensor, group_size: int, num_batches: int, gen: torch.Generator) -> torch.Tensor:
        """Completion rows ``[num_batches, P, G]``: G i.i.d. draws from pi_theta(. | x) per prompt and batch."""
        probs = self.probs(theta)
        draws = torch.multinomial(probs, num_batches * group_size, replacement=True, generator=gen)
        rows = draws + (torch.arange(self.num_prompts) * self.per_prompt).unsqueeze(1)
        return rows.view(self.num_prompts, num_batches, group_size).permute(1, 0, 2).contiguous()
