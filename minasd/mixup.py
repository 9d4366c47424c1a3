"""Mixup within the mini-batch (Zhang et al., 2018; paper Sec. IV-A) (Book: chapter 3).

Choices this project made where the paper only says "Mixup (alpha = 0.2)":

* The model input (the log-mel spectrogram) is mixed, not the waveform: the
  paper speaks of "intermediate features between normal and pseudo-anomalous
  data", and mixing after the log-mel keeps the feature extraction per clip.
* Each sample ``i`` gets its own weight ``m_i ~ Beta(0.2, 0.2)`` and a partner
  ``perm[i]`` from one random permutation of the batch (a sample may be its own
  partner, then it is unchanged).
* Targets follow METHOD.md: mixed machine target ``m t_i + (1 - m) t_j``;
  product target ``m t_i y_i + (1 - m) t_j y_j`` (an other-type partner
  contributes a zero vector); ``has_target`` marks the samples where at least one
  partner is of the target type (Eq. 1 applies there, see ``minasd.losses``).

The function is pure: it returns new tensors and never writes into its inputs.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

#: Beta(alpha, alpha) of the paper.
MIXUP_ALPHA = 0.2


class MixedBatch(NamedTuple):
    """The output of :func:`mixup`.

    Attributes:
        x: (B, ...) mixed inputs, same dtype as the input.
        t: (B,) mixed machine target, float32.
        product_target: (B, K) mixed product target, float32.
        has_target: (B,) bool, True where at least one partner is of the target type.
        weight: (B,) the Mixup weights m of the samples themselves.
        perm: (B,) int64, the partner of each sample.
    """

    x: torch.Tensor
    t: torch.Tensor
    product_target: torch.Tensor
    has_target: torch.Tensor
    weight: torch.Tensor
    perm: torch.Tensor


def product_targets(section_class: torch.Tensor, t: torch.Tensor, n_sections: int) -> torch.Tensor:
    """One-hot product targets times t: (B,) class index, (B,) t -> (B, K) float32 (Book: chapter 3).

    Rows with ``t = 0`` (other machine types) are zero whatever their class index;
    a negative class index is allowed there.
    """
    cls = section_class.long().clamp_min(0)
    onehot = torch.nn.functional.one_hot(cls, n_sections).float()
    return onehot * t.float()[:, None]


def no_mixup(x: torch.Tensor, t: torch.Tensor, product_target: torch.Tensor) -> MixedBatch:
    """The identity in :class:`MixedBatch` form, for the "w/o Mixup" ablation and validation."""
    b = x.shape[0]
    t = t.float()
    return MixedBatch(x=x, t=t, product_target=product_target.float(), has_target=t > 0,
                      weight=torch.ones(b, device=x.device), perm=torch.arange(b, device=x.device))


def mixup(
    x: torch.Tensor,
    t: torch.Tensor,
    product_target: torch.Tensor,
    alpha: float = MIXUP_ALPHA,
    generator: torch.Generator | None = None,
) -> MixedBatch:
    """Mix each sample with a random partner of the same batch (Book: chapter 3).

    Args:
        x: (B, ...) inputs (log-mel (B, n_mels, frames) in the trainer).
        t: (B,) machine targets (1 target type, 0 other type).
        product_target: (B, K) one-hot section times t (see :func:`product_targets`).
        alpha: Beta(alpha, alpha) parameter of the weights.
        generator: torch.Generator on ``x``'s device, for reproducible draws.

    Returns:
        :class:`MixedBatch` of new tensors; the inputs are not modified.

    >>> x = torch.randn(4, 3); t = torch.tensor([1., 1., 0., 0.])
    >>> out = mixup(x, t, product_targets(torch.tensor([0, 1, -1, -1]), t, 2),
    ...             generator=torch.Generator().manual_seed(0))
    >>> bool(((out.t >= 0) & (out.t <= 1)).all())
    True
    """
    b = x.shape[0]
    device = x.device
    gen_device = generator.device if generator is not None else device
    m = beta_weights(alpha, b, generator, gen_device).to(device)  # (B,)
    perm = torch.randperm(b, generator=generator, device=gen_device).to(device)
    t = t.float()
    product_target = product_target.float()
    shape = (b,) + (1,) * (x.dim() - 1)
    mx = m.to(x.dtype).view(shape)
    x_mixed = mx * x + (1 - mx) * x[perm]
    t_mixed = m * t + (1 - m) * t[perm]
    y_mixed = m[:, None] * product_target + (1 - m[:, None]) * product_target[perm]
    has_target = (t > 0) | (t[perm] > 0)
    return MixedBatch(x=x_mixed, t=t_mixed, product_target=y_mixed, has_target=has_target, weight=m, perm=perm)


def beta_weights(alpha: float, n: int, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """n draws of Beta(alpha, alpha), float32, reproducible with ``generator`` (Book: chapter 3).

    ``torch.distributions.Beta`` takes no generator, so the draws use the identity
    Beta(a, a) = G1 / (G1 + G2), G ~ Gamma(a, 1), with ``torch._standard_gamma``
    (which does take one).  The ratio is formed in float64 because Beta(0.2, 0.2)
    puts much mass within 1e-8 of 0 and 1.  No host synchronisation on CUDA.
    """
    conc = torch.full((2, n), float(alpha), dtype=torch.float64, device=device)
    g = torch._standard_gamma(conc, generator=generator)  # (2, n)
    return (g[0] / (g[0] + g[1]).clamp_min(1e-300)).float()
