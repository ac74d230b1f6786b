"""The learning-rate schedule of every training loop in repdrift (demo pre-training and fine-tuning)."""

from __future__ import annotations

import math
from collections.abc import Callable


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """The factor on the base learning rate at step s (0-based), for torch's LambdaLR: linear warm-up from
    1 / warmup_steps to 1 over `warmup_steps` steps, then cosine decay to 0 at `total_steps` (and 0 after)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor
