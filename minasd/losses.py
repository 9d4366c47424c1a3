"""The two binary cross-entropies of the paper, Eq. 1-3 (Book: chapter 3).

Notation: a batch of N (possibly mixed) samples; ``t`` (N,) is the machine-type
target (1 = target machine type, 0 = another type; with Mixup the mixed value
in [0, 1]); ``product_target`` (N, K) is the product (section) target; K is the
number of sections of the target type.

* Eq. 2, ``L_machine``: BCE-with-logits of the machine logit against ``t``,
  averaged over the N samples.
* Eq. 1, ``L_product``: BCE-with-logits of each of the K product logits against
  ``product_target``, summed over K and over the samples, each sample weighted
  by its ``t``, divided by ``K * sum(t)``.  Samples of other machine types
  (``t = 0``) contribute nothing.
* Eq. 3: ``L = L_machine + lam * L_product``.

Mixup semantics (METHOD.md; the choice this project made where the paper only
says "each sample applies Eq. 1 if the target machine type is included"):
a sample mixed from partners ``i`` and ``j`` with weight ``m`` has machine
target ``t = m t_i + (1 - m) t_j`` and product target ``m t_i y_i + (1 - m) t_j
y_j`` (an other-type partner contributes a zero vector).  Eq. 1 applies to it
iff at least one partner is of the target type (``has_target``); Eq. 1's
factor ``t_i`` becomes the mixed ``t`` in both the sum and the normaliser, so
the product loss is the ``t``-weighted mean over those samples of the per-sample
BCE averaged over K.  Without Mixup ``t`` is 0 or 1 and this is Eq. 1 exactly.

When no sample of the batch involves the target type (``sum(t) = 0`` over the
applicable samples) Eq. 1 is 0/0; we define ``L_product = 0`` then (no gradient
from the product head), so a batch of negatives only trains ``L_machine``.

The "only product-ID classification" ablation (paper Table III) drops Eq. 2:
``L = lam * L_product`` (``machine_loss=False``); ``L_machine`` is still
computed and reported, without gradient.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossParts(NamedTuple):
    """The total loss and its parts (scalars, float32).

    Attributes:
        total: the loss that is minimised, Eq. 3 (or ``lam * product`` in the
            product-only ablation).
        machine: L_machine, Eq. 2.
        product: L_product, Eq. 1 (0 when no sample involves the target type).
        n_target: sum of ``t`` over the samples Eq. 1 applies to (its normaliser / K).
    """

    total: torch.Tensor
    machine: torch.Tensor
    product: torch.Tensor
    n_target: torch.Tensor


def machine_loss(machine_logit: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Eq. 2: mean BCE of the machine logit (N,) against the machine target t (N,) (Book: chapter 3)."""
    return F.binary_cross_entropy_with_logits(machine_logit.float(), t.float(), reduction="mean")


def product_loss(
    product_logits: torch.Tensor,
    t: torch.Tensor,
    product_target: torch.Tensor,
    has_target: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1 with the Mixup semantics of the module docstring (Book: chapter 3).

    Args:
        product_logits: (N, K) logits of g_product.
        t: (N,) machine target in [0, 1] (mixed or not).
        product_target: (N, K) product target, already weighted by each partner's t.
        has_target: (N,) bool, True where at least one Mixup partner is of the
            target type; default ``t > 0``.

    Returns:
        ``(L_product, normaliser)`` with ``normaliser = sum(t[has_target])``;
        ``L_product = 0`` when the normaliser is 0.
    """
    logits = product_logits.float()
    n, k = logits.shape
    t = t.float()
    if has_target is None:
        has_target = t > 0
    weight = torch.where(has_target, t, torch.zeros_like(t))  # (N,)
    bce = F.binary_cross_entropy_with_logits(logits, product_target.float(), reduction="none")  # (N, K)
    numerator = (weight[:, None] * bce).sum()
    normaliser = weight.sum()
    # clamp keeps the division finite; the where() makes the 0/0 case exactly 0 with zero gradient
    loss = torch.where(normaliser > 0, numerator / (k * normaliser.clamp_min(1e-12)), numerator * 0.0)
    return loss, normaliser


def two_bce_loss(
    machine_logit: torch.Tensor,
    product_logits: torch.Tensor,
    t: torch.Tensor,
    product_target: torch.Tensor,
    lam: float,
    has_target: torch.Tensor | None = None,
    use_machine_loss: bool = True,
) -> LossParts:
    """Eq. 3: ``L = L_machine + lam * L_product`` (Book: chapter 3).

    Args:
        machine_logit: (N,) output of g_affine.
        product_logits: (N, K) output of g_product.
        t: (N,) machine target (1 target type, 0 other; mixed values with Mixup).
        product_target: (N, K) one-hot section times t (mixed with Mixup).
        lam: lambda of Eq. 3 (Table I).
        has_target: (N,) bool, where Eq. 1 applies; default ``t > 0``.
        use_machine_loss: False for the "product loss only" ablation (``L = lam * L_product``).

    Returns:
        :class:`LossParts` (total, machine, product, n_target).

    >>> t = torch.tensor([1.0, 0.0])
    >>> y = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    >>> parts = two_bce_loss(torch.zeros(2), torch.zeros(2, 2), t, y, lam=1.0)
    >>> round(parts.total.item(), 4)  # log 2 + log 2
    1.3863
    """
    l_machine = machine_loss(machine_logit, t)
    l_product, normaliser = product_loss(product_logits, t, product_target, has_target)
    if use_machine_loss:
        total = l_machine + lam * l_product
    else:
        total = lam * l_product
        l_machine = l_machine.detach()
    return LossParts(total=total, machine=l_machine, product=l_product, n_target=normaliser.detach())
