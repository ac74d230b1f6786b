"""DINO self-distillation parts (Caron et al. 2021): projection head, loss with centering, teacher EMA."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DinoHead(nn.Module):
    """MLP -> L2-normalised bottleneck -> prototypes with unit-norm weights (DINO's weight-normed last layer,
    its gain fixed at 1)."""

    def __init__(self, in_dim: int, out_dim: int = 256, hidden_dim: int = 256, bottleneck_dim: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        nn.init.trunc_normal_(self.prototypes, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(self.mlp(x), dim=-1), F.normalize(self.prototypes, dim=-1))


class DinoLoss(nn.Module):
    """Cross-entropy between the sharpened, centred teacher distribution of one global view and the student
    distribution of every other view; the centre is an EMA of the teacher's batch mean (prevents collapse)."""

    def __init__(
        self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04, center_momentum: float = 0.9
    ):
        super().__init__()
        self.student_temp, self.teacher_temp, self.center_momentum = student_temp, teacher_temp, center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
        """student: logits per view (globals first); teacher: logits per global view."""
        targets = [F.softmax((t - self.center) / self.teacher_temp, dim=-1) for t in teacher]
        log_probs = [F.log_softmax(s / self.student_temp, dim=-1) for s in student]
        terms = [
            -(q * log_p).sum(dim=-1).mean()
            for i, q in enumerate(targets)
            for j, log_p in enumerate(log_probs)
            if i != j
        ]
        self._update_center(torch.cat(teacher))
        return torch.stack(terms).mean()

    @torch.no_grad()
    def _update_center(self, teacher: torch.Tensor) -> None:
        self.center.mul_(self.center_momentum).add_(teacher.mean(dim=0, keepdim=True), alpha=1 - self.center_momentum)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)


def teacher_momentum(progress: float, base: float) -> float:
    """DINO's cosine schedule from `base` at the start to 1 at the end (progress in [0, 1])."""
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2
