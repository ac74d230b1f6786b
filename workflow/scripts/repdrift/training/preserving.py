"""Similarity-preserving fine-tuning: methods that try to keep the pre-trained representation while fitting the task.

The paper (Zu et al. 2025) ends on "models achieving both high similarity and accuracy"; these methods are the
candidates, run by the same rules and measured by every measurement of the study.

What each method changes against Full fine-tuning:
- `l2sp`: alpha/2 ||w - w0||^2 on the backbone (w0 the pre-trained weights) and beta/2 ||w||^2 on the head, instead
  of weight decay. Li et al. 2018, "Explicit inductive bias for transfer learning with convolutional networks". Its
  scope is the weight matrices (`l2sp_scope`: linear and convolution kernels, open_clip's in_proj_weight included),
  as Li et al.'s code regularises only variables named weights (and the new head's weights by beta): biases, norm
  scales, position embeddings and class tokens get neither penalty, and no weight decay (Full's AdamW decays every
  parameter). Li et al. set alpha = 0.1 and beta = 0.01 with SGD; under AdamW the penalty's gradient is rescaled per
  parameter, so the published values are a starting point, not the same strength.
- `lpft`: the study's Linear probe (train.linear_probe's epochs and lr; the same run as the Linear run of its seed),
  then Full fine-tuning from that head for Full's whole budget (train.epochs) at `lr_scale` x train.lr, each phase
  with its own warm-up and cosine schedule. Kumar et al. 2022, "Fine-tuning can distort pretrained features and
  underperform out-of-distribution". Their probe is a logistic regression trained to convergence with its L2
  strength chosen on validation data; this one is the study's Linear probe (AdamW, fixed epochs). They sweep LP-FT's
  fine-tuning rate on its own and found it far smaller than fine-tuning's (3e-7 against 1e-3 in one reply of
  theirs); `lr_scale` 0.1 is this study's fixed choice.
- `rift`: + strength * ||Z Q - Z0||_F^2 / ||Z0||_F^2 on each batch, Q orthogonal. The idea of Zu et al. 2025,
  arXiv 2503.07399 (RepSim in v1, RIFT in v3), in our own words and code, not their implementation: Z and Z0 are
  not centred, so the penalty also pulls on mean shifts and scale, which CKA ignores.
- `feature_cka`: + strength * (1 - linear CKA(Z, Z0)) on each batch: the paper's own measure as a loss
  (Kornblith et al. 2019, biased estimator on the batch).
- `wiseft`: no training; (1 - a) theta0 + a theta1 of whole models, head included: theta0 a seed's Linear probe,
  theta1 the LP-FT run started from it (repdrift.training.wiseft). Wortsman et al. 2022, "Robust fine-tuning of
  zero-shot models".

Z is the batch's final representation (what the head reads) of the model being trained, Z0 that of the frozen
pre-trained backbone on the same augmented images. RIFT's Q is solved in closed form on every batch (orthogonal
Procrustes: Q = U V^T for U S V^T = svd(Z^T Z0)) rather than learned: it is exact and cheap for a batch of 32 and
D = 768, needs no extra parameters or learning rate, and since Q minimises the penalty, its gradient with Q held fixed
is the gradient of the minimum (the envelope theorem), so Q is detached.

To add a trained method: its entry in repdrift.study.METHODS (kind `trained`, its option names), its options under
`preserving:` in the config schema (a test checks they match the entry), and here a penalty class
(`__call__(model, z, images) -> tensor`) with its branch in `make_penalty`, or a phase rule (`phases`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from repdrift.errors import ConfigError


def procrustes_penalty(z: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    """min over orthogonal Q of ||Z Q - Z0||_F^2 / ||Z0||_F^2 (rows: samples); Q = U V^T, svd(Z^T Z0) = U S V^T."""
    z, z0 = z.float(), z0.float()
    u, _, vh = torch.linalg.svd((z.T @ z0).detach())
    q = u @ vh
    return (z @ q - z0).pow(2).sum() / z0.pow(2).sum().clamp_min(1e-12)


def batch_cka(z: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
    """Linear CKA of a batch, biased estimator (Kornblith et al. 2019, Eq. 1 with linear kernels); 1 when fewer
    than two samples (nothing to compare)."""
    if z.shape[0] < 2:
        return z.new_ones(())
    z, z0 = z.float() - z.float().mean(0), z0.float() - z0.float().mean(0)
    cross = (z.T @ z0).pow(2).sum()
    return cross / ((z.T @ z).pow(2).sum().sqrt() * (z0.T @ z0).pow(2).sum().sqrt()).clamp_min(1e-12)


def l2sp_scope(module: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters L2-SP regularises: weight matrices (a `...weight` of 2 or more dimensions), by name."""
    return {name: p for name, p in module.named_parameters() if name.endswith("weight") and p.ndim >= 2}


class L2SP:
    """alpha/2 ||w - w0||^2 over the backbone's weight matrices (`l2sp_scope`; w0: their values when this is made,
    i.e. the pre-trained weights) plus beta/2 ||w||^2 over the head's."""

    def __init__(self, model: nn.Module, alpha: float, beta: float):
        self.alpha, self.beta = alpha, beta
        self.start = {name: p.detach().clone() for name, p in l2sp_scope(model.backbone).items()}

    def __call__(self, model: nn.Module, z: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        drift = sum((p - self.start[name]).pow(2).sum() for name, p in l2sp_scope(model.backbone).items())
        head = sum(p.pow(2).sum() for p in l2sp_scope(model.head).values())
        return self.alpha / 2 * drift + self.beta / 2 * head


class _ToPretrained:
    """A penalty on the batch's final representation against the frozen pre-trained backbone's."""

    def __init__(self, reference: nn.Module, pool: str, strength: float):
        self.reference, self.pool, self.strength = reference.eval().requires_grad_(False), pool, strength

    def __call__(self, model: nn.Module, z: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z0 = self.reference(images, self.pool)
        with torch.autocast(z.device.type, enabled=False):  # SVD and the sums in float32
            return self.strength * self.value(z, z0)

    def value(self, z: torch.Tensor, z0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class RIFT(_ToPretrained):
    def value(self, z, z0):
        return procrustes_penalty(z, z0)


class FeatureCKA(_ToPretrained):
    def value(self, z, z0):
        return 1 - batch_cka(z, z0)


class Phase(NamedTuple):
    kind: str  # `probe` trains the head on a frozen backbone, `full` everything
    epochs: int
    lr: float  # peak learning rate of its own warm-up and cosine schedule


def phases(method: str, epochs: int, lr: float, options: dict) -> list[Phase]:
    """The training phases. The parameter-efficient methods: Full's, at `lr_scale` x `lr`. LP-FT: its probe
    (`probe_epochs` at `probe_lr`: the study's Linear probe recipe, so that it is exactly the Linear run of the same
    seed), then Full fine-tuning for the recipe's `epochs` at `lr_scale` x `lr` (Kumar et al. 2022 tune LP-FT's
    fine-tuning rate on its own, smaller than fine-tuning's)."""
    if method == "linear":
        return [Phase("probe", epochs, lr)]
    if method == "lpft":
        if options["probe_epochs"] < 1:
            raise ConfigError(f"LP-FT's probe needs an epoch or more, got {options['probe_epochs']}")
        return [
            Phase("probe", options["probe_epochs"], options["probe_lr"]),
            Phase("full", epochs, options["lr_scale"] * lr),
        ]
    if method in ("lora", "bitfit", "partial"):  # repdrift.training.parameter_efficient: Full's recipe, own rate
        return [Phase("full", epochs, options["lr_scale"] * lr)]
    return [Phase("full", epochs, lr)]


def make_penalty(method: str, options: dict, model: nn.Module, reference_builder) -> object | None:
    """The method's penalty on the training loss, or None. `reference_builder()` returns the frozen pre-trained
    backbone (built only for the methods that need it)."""
    if method == "l2sp":
        return L2SP(model, options["alpha"], options["beta"])
    if method in ("rift", "feature_cka"):
        kind = RIFT if method == "rift" else FeatureCKA
        return kind(reference_builder(), model.pool, options["strength"])
    return None
