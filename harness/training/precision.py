"""bf16 working weights with fp32 master weights (``[train] bf16_weights``).

Under bf16 autocast the weights stay fp32: every forward casts each weight (and activation) to bf16
for its matmul, and every backward casts each weight gradient back, a copy per parameter per pass.
With ``bf16_weights`` the policy itself is held in bf16 while it trains, and the optimiser owns fp32
master weights m, one per trainable parameter p:

    forward and backward      on p = bf16(m)                  (bf16 arithmetic throughout)
    after each backward       m.grad += fp32(p.grad);  p.grad = None   (summed in fp32 over micro-batches)
    clipping, AdamW, state    on m in fp32
    after each AdamW step     p <- bf16(m)                    (round to nearest even)

AdamW's small updates therefore accumulate in fp32 as before; only the forward/backward arithmetic
is bf16, the residual stream and norms included (autocast keeps some of those in fp32). A rollout
engine that runs in bf16 receives bf16(m): the numbers it gets from fp32 weights too.

For an fp32 model the master tensors are the model's own tensors (no extra fp32 copy): its
parameters get new bf16 data while training runs, and :meth:`MasterWeights.restore` gives them back,
holding the trained values (a model loaded in bf16 gets fp32 masters and is rounded back). Frozen
parameters (LoRA's base weights) also run in bf16 and get their original tensors back. Buffers
(rotary frequencies) are left as they are.
"""

from __future__ import annotations

import torch


class MasterWeights:
    """fp32 master weights for a model whose parameters run in ``dtype`` between :meth:`attach` and
    :meth:`restore` (outside that window the model is as it came)."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype = torch.bfloat16):
        params = list(model.parameters())  # tied weights appear once
        self.dtype = dtype
        self.trainable = [p for p in params if p.requires_grad]
        self.frozen = [p for p in params if not p.requires_grad]
        self.dtypes = [p.dtype for p in self.trainable]
        # what the optimiser updates: the model's own tensors when they are fp32 (shared, no copy)
        self.master = [torch.nn.Parameter(p.data.float()) for p in self.trainable]
        self._frozen_data: list[torch.Tensor] = []
        self.attached = False

    @torch.no_grad()
    def attach(self) -> None:
        """The model's parameters become ``dtype`` copies of the master values (frozen ones: of their own)."""
        if self.attached:
            return
        for p, m in zip(self.trainable, self.master):
            if p.data.data_ptr() != m.data.data_ptr():  # a model not in fp32: take its current values
                m.data.copy_(p.data)
            p.data = m.data.to(self.dtype)
            p.grad = None
        self._frozen_data = [p.data for p in self.frozen]
        for p in self.frozen:
            p.data = p.data.to(self.dtype)
        self.attached = True

    def collect_grads(self) -> None:
        """Move the model's gradients (after a backward) into the master weights' fp32 gradients."""
        for p, m in zip(self.trainable, self.master):
            if p.grad is None:
                continue
            if m.grad is None:
                m.grad = p.grad.float()
            else:
                m.grad.add_(p.grad)
            p.grad = None

    @torch.no_grad()
    def push(self) -> None:
        """Round the master weights into the model (after each optimiser step, through the trainer's
        step hook, and after a resume)."""
        for p, m in zip(self.trainable, self.master):
            p.copy_(m)

    def restore(self) -> None:
        """The model back in its own dtype, holding the master values (fp32 as trained)."""
        if not self.attached:
            return
        for p, m, dtype in zip(self.trainable, self.master, self.dtypes):
            p.data = m.data.to(dtype)  # no copy for an fp32 model: its own tensors, trained
            p.grad = None
        for p, data in zip(self.frozen, self._frozen_data):
            p.data = data
        self._frozen_data = []
        self.attached = False

    def _names(self, model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        """Each state-dict name of a trainable parameter (tied names included) -> its master."""
        index = {id(p): m for p, m in zip(self.trainable, self.master)}
        return {name: index[id(p)] for name, p in model.named_parameters(remove_duplicate=False) if id(p) in index}

    def state_dict(self, model: torch.nn.Module) -> dict:
        """The model's state dict with the fp32 master values in place of the bf16 working copies."""
        state = model.state_dict()
        for name, m in self._names(model).items():
            if name in state:
                state[name] = m.detach()
        return state

    @torch.no_grad()
    def load_state_dict(self, model: torch.nn.Module, state: dict) -> None:
        """The master values from ``state`` (as :meth:`state_dict` wrote it), pushed into the model."""
        for name, m in self._names(model).items():
            if name in state:
                m.copy_(state[name])
        self.push()


def fp32_lm_head(model: torch.nn.Module):
    """Run the model's output layer in float32 whatever the autocast or weight dtype (``[train]
    fp32_lm_head``; MiniMax-M1 did this against the training-inference mismatch): logits = x W^T with x
    and W upcast, so the logits carry no bf16 rounding (the log-softmax is float32 already, in
    policy.TokenLogProbs). The weights themselves are untouched (tied embeddings stay tied, the state
    dict keeps its keys). Returns the function that puts the layer back."""
    head = model.get_output_embeddings()

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            bias = None if head.bias is None else head.bias.float()
            return torch.nn.functional.linear(x.float(), head.weight.float(), bias)

    head.forward = forward  # an instance attribute: nn.Module calls it in place of the class's forward

    def undo() -> None:
        del head.forward

    return undo
