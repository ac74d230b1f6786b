"""The one learning-rate schedule: linear warm-up, then cosine decay to zero, worked by hand."""

import math

import pytest
import torch

from repdrift.training.lr_schedule import warmup_cosine


def test_warmup_then_cosine_by_hand():
    factor = warmup_cosine(total_steps=10, warmup_steps=2)
    assert [factor(s) for s in (0, 1)] == [0.5, 1.0]
    # After warm-up: progress (s - 2) / 8, factor (1 + cos(pi * progress)) / 2.
    assert factor(2) == pytest.approx(1.0)
    assert factor(6) == pytest.approx(0.5)  # halfway: cos(pi / 2) = 0
    assert factor(4) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert factor(10) == pytest.approx(0.0) and factor(50) == pytest.approx(0.0)


def test_no_warmup_and_a_single_step():
    assert warmup_cosine(5, 0)(0) == 1.0
    assert warmup_cosine(1, 1)(0) == 1.0


def test_drives_torch_lambda_lr():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(4, 1))
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx(
        [0.1, 0.1, 0.1 * (1 + math.cos(math.pi / 3)) / 2, 0.1 * (1 + math.cos(2 * math.pi / 3)) / 2]
    )
