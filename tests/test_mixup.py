"""Mixup: Beta(0.2, 0.2) weights, METHOD.md target semantics, purity, seeding."""
import torch

from minasd.mixup import beta_weights, mixup, no_mixup, product_targets


def _inputs(b=12, k=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 224, 8, generator=g)
    t = torch.tensor([1.0] * (b // 2) + [0.0] * (b - b // 2))
    sections = torch.randint(0, k, (b,), generator=g)
    sections[t == 0] = -1
    return x, t, product_targets(sections, t, k)


def test_does_not_modify_inputs():
    x, t, y = _inputs()
    x0, t0, y0 = x.clone(), t.clone(), y.clone()
    out = mixup(x, t, y, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, x0) and torch.equal(t, t0) and torch.equal(y, y0)
    assert out.x.data_ptr() != x.data_ptr()


def test_targets_follow_method_semantics():
    x, t, y = _inputs(b=16)
    out = mixup(x, t, y, generator=torch.Generator().manual_seed(2))
    m, j = out.weight, out.perm
    torch.testing.assert_close(out.x, m[:, None, None] * x + (1 - m[:, None, None]) * x[j])
    torch.testing.assert_close(out.t, m * t + (1 - m) * t[j])
    # product target: each partner's one-hot weighted by its own t (other type -> zero vector)
    torch.testing.assert_close(out.product_target, m[:, None] * y * t[:, None] + (1 - m[:, None]) * y[j] * t[j, None])
    assert torch.equal(out.has_target, (t > 0) | (t[j] > 0))
    # rows mixed only from other types have no product target at all
    both_other = (t == 0) & (t[j] == 0)
    assert (out.product_target[both_other] == 0).all() and (out.t[both_other] == 0).all()
    # the product target sums to the mixed t
    torch.testing.assert_close(out.product_target.sum(1), out.t)


def test_seeded_and_reproducible():
    x, t, y = _inputs()
    a = mixup(x, t, y, generator=torch.Generator().manual_seed(3))
    b = mixup(x, t, y, generator=torch.Generator().manual_seed(3))
    c = mixup(x, t, y, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.x, b.x) and torch.equal(a.perm, b.perm)
    assert not torch.equal(a.weight, c.weight)


def test_beta_weights_distribution():
    w = beta_weights(0.2, 20000, torch.Generator().manual_seed(0))
    assert w.min() >= 0 and w.max() <= 1
    # Beta(0.2, 0.2): mean 1/2, variance a^2 / ((2a)^2 (2a + 1)) = 1 / (4 * 1.4) = 0.1786
    assert abs(w.mean().item() - 0.5) < 0.01
    assert abs(w.var().item() - 1 / 5.6) < 0.01
    # U-shaped: most mass near 0 and 1
    assert ((w < 0.1) | (w > 0.9)).float().mean() > 0.5


def test_no_mixup_is_identity():
    x, t, y = _inputs()
    out = no_mixup(x, t, y)
    assert torch.equal(out.x, x) and torch.equal(out.t, t) and torch.equal(out.product_target, y)
    assert torch.equal(out.has_target, t > 0)
