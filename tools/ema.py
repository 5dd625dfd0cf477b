"""WeightEma: an exponential moving average of a model's weights, kept beside training.

Why: in the one-hour recipe the joint stage's seed alone moved precision@10 by 0.04 overall and
0.10 held out (docs/models.md), and ITM, which re-ranks, is the noisiest part. Averaging the
weights of the last few hundred steps (Polyak averaging; BLIP's momentum models are the same
average, used there as a distillation teacher) is a cheap way to take the noise out of where the
run ends. It is kept in float32 beside the trained weights and never feeds back into training,
so one run gives both ends to compare.
"""
from __future__ import annotations

from pathlib import Path

import torch


class WeightEma:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay {decay}: between 0 and 1")
        self.decay = decay
        self.updates = 0
        # named_parameters lists a tensor shared by several modules once (the bundle's three tasks
        # share one vision encoder), so each shared weight is averaged once
        self.params = [p for p in model.parameters()]
        self.average = [p.detach().float().clone() for p in self.params]

    def rate(self) -> float:
        """This update's decay: short at first, so the random start does not linger in the average."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        d = self.rate()
        self.updates += 1
        torch._foreach_mul_(self.average, d)
        torch._foreach_add_(self.average, [p.detach().float() for p in self.params], alpha=1.0 - d)

    def state_dict(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with every parameter replaced by its average (under every key
        that shares it); buffers as they are now. Same keys and dtypes as model.state_dict()."""
        by_id = {id(p): a for p, a in zip(self.params, self.average)}
        return {k: (by_id[id(v)].to(v.dtype) if id(v) in by_id else v.detach()).cpu().clone()
                for k, v in model.state_dict(keep_vars=True).items()}


def ema_path(out: str | Path) -> Path:
    """Where a run saving OUT saves its average: NAME.ema.pt beside it."""
    out = Path(out)
    return out.with_name(out.stem + ".ema" + out.suffix)
