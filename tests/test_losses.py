"""Eq. 1-3 against a direct per-sample float64 reference (loops and math.log)."""
import math

import pytest
import torch

from minasd.losses import machine_loss, product_loss, two_bce_loss
from minasd.mixup import mixup, product_targets


def _log_sigmoid(z):
    # stable log(sigmoid(z)) in float64
    return -math.log1p(math.exp(-z)) if z >= 0 else z - math.log1p(math.exp(z))


def _bce(z, target):
    return -(target * _log_sigmoid(z) + (1 - target) * _log_sigmoid(-z))


def reference(machine_logit, product_logits, t, product_target, has_target, lam, use_machine=True):
    """Eq. 1-3 written out sample by sample in Python floats."""
    n, k = product_logits.shape
    l_machine = sum(_bce(float(machine_logit[i]), float(t[i])) for i in range(n)) / n
    num, den = 0.0, 0.0
    for i in range(n):
        if not bool(has_target[i]):
            continue
        ti = float(t[i])
        for j in range(k):
            num += ti * _bce(float(product_logits[i, j]), float(product_target[i, j]))
        den += ti
    l_product = num / (k * den) if den > 0 else 0.0
    total = (l_machine if use_machine else 0.0) + lam * l_product
    return total, l_machine, l_product


def _batch(n, k, n_target, seed):
    g = torch.Generator().manual_seed(seed)
    machine_logit = torch.randn(n, generator=g) * 3
    product_logits = torch.randn(n, k, generator=g) * 3
    t = torch.zeros(n)
    t[torch.randperm(n, generator=g)[:n_target]] = 1.0
    sections = torch.randint(0, k, (n,), generator=g)
    sections[t == 0] = -1
    return machine_logit, product_logits, t, product_targets(sections, t, k), g


@pytest.mark.parametrize("n_target", [8, 1, 0, 16])
@pytest.mark.parametrize("use_mixup", [False, True])
@pytest.mark.parametrize("use_machine", [True, False])
def test_matches_float64_reference(n_target, use_mixup, use_machine):
    n, k, lam = 16, 6, 10.0
    ml, pl, t, y, g = _batch(n, k, n_target, seed=n_target * 7 + use_mixup)
    if use_mixup:
        mixed = mixup(torch.zeros(n, 1), t, y, generator=g)
        t_in, y_in, has = mixed.t, mixed.product_target, mixed.has_target
    else:
        t_in, y_in, has = t, y, t > 0
    parts = two_bce_loss(ml, pl, t_in, y_in, lam=lam, has_target=has, use_machine_loss=use_machine)
    ref_total, ref_m, ref_p = reference(ml.double(), pl.double(), t_in.double(), y_in.double(), has, lam, use_machine)
    assert parts.machine.item() == pytest.approx(ref_m, rel=1e-5, abs=1e-6)
    assert parts.product.item() == pytest.approx(ref_p, rel=1e-5, abs=1e-6)
    assert parts.total.item() == pytest.approx(ref_total, rel=1e-5, abs=1e-6)


def test_no_target_rows_gives_zero_product_loss_and_finite_gradient():
    n, k = 8, 6
    ml, pl, t, y, _ = _batch(n, k, 0, seed=3)
    pl.requires_grad_(True)
    loss, norm = product_loss(pl, t, y)
    assert loss.item() == 0.0 and norm.item() == 0.0
    loss.backward()
    assert torch.isfinite(pl.grad).all() and (pl.grad == 0).all()


def test_other_type_rows_do_not_affect_product_loss():
    n, k = 8, 4
    ml, pl, t, y, _ = _batch(n, k, 3, seed=5)
    base, _ = product_loss(pl, t, y)
    changed = pl.clone()
    changed[t == 0] += 100.0  # other machine types: whatever their product logits, no effect
    assert product_loss(changed, t, y)[0].item() == pytest.approx(base.item(), rel=1e-6)


def test_eq1_normaliser_is_k_times_number_of_targets():
    # all product logits 0 -> each BCE term is log 2; Eq. 1 is then exactly log 2
    n, k = 10, 6
    t = torch.tensor([1.0] * 3 + [0.0] * 7)
    y = product_targets(torch.tensor([0, 1, 2] + [-1] * 7), t, k)
    loss, norm = product_loss(torch.zeros(n, k), t, y)
    assert norm.item() == 3.0
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_machine_loss_is_mean_over_batch():
    logits = torch.tensor([0.0, 2.0, -1.0])
    t = torch.tensor([1.0, 0.0, 1.0])
    expected = (math.log(2) + _bce(2.0, 0.0) + _bce(-1.0, 1.0)) / 3
    assert machine_loss(logits, t).item() == pytest.approx(expected, rel=1e-6)


def test_product_only_ablation_has_no_machine_gradient():
    ml, pl, t, y, _ = _batch(8, 6, 4, seed=1)
    ml.requires_grad_(True)
    pl.requires_grad_(True)
    parts = two_bce_loss(ml, pl, t, y, lam=0.1, use_machine_loss=False)
    g_ml, g_pl = torch.autograd.grad(parts.total, (ml, pl), allow_unused=True)
    assert g_ml is None or (g_ml == 0).all()
    assert g_pl.abs().sum() > 0
    assert parts.total.item() == pytest.approx(0.1 * parts.product.item(), rel=1e-6)
