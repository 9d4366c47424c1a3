"""Tests of minasd.inlier: scores, the sign convention, save/load without pickle, errors."""
import json

import numpy as np
import pytest

from minasd.inlier import InlierModel, InlierSet, fit_inlier, section_file


@pytest.fixture
def blob():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 10, 8))  # 60 held-out clips x 10 segments x 8-d


@pytest.mark.parametrize("kind", ["gmm", "lof"])
def test_higher_score_for_outliers(kind, blob):
    h = fit_inlier(kind, 4, blob, seed=0, section=3)
    assert h.n_fit == 600 and h.dim == 8
    inl = np.zeros((1, 10, 8))
    far = np.full((1, 10, 8), 6.0)
    s_in, s_far = h.score(inl), h.score(far)
    assert s_in.shape == (1, 10)
    assert (s_far > s_in).all()  # higher = more anomalous


def test_gmm_score_is_negative_log_likelihood(blob):
    h = fit_inlier("gmm", 1, blob)
    x = blob.reshape(-1, 8)
    mu, cov = x.mean(0), np.cov(x.T, bias=True) + 1e-6 * np.eye(8)
    q = np.array([[0.3, -0.2, 0.1, 0, 0, 0.5, 1.0, -1.0]])
    d = q - mu
    nll = 0.5 * (d @ np.linalg.solve(cov, d.T)).item() + 0.5 * np.linalg.slogdet(2 * np.pi * cov)[1]
    assert h.score(q)[0] == pytest.approx(nll, rel=1e-6)


@pytest.mark.parametrize("kind", ["gmm", "lof"])
def test_save_load_equal_scores(kind, blob, tmp_path):
    h = fit_inlier(kind, 3, blob, seed=1, section=4)
    path = h.save(tmp_path / "h.npz")
    # no object arrays: loads with allow_pickle=False
    with np.load(path, allow_pickle=False) as z:
        assert str(z["kind"]) == kind
    h2 = InlierModel.load(path)
    q = np.random.default_rng(5).normal(size=(7, 10, 8)) * 2
    np.testing.assert_allclose(h2.score(q), h.score(q), rtol=1e-6, atol=1e-6)
    assert (h2.kind, h2.p, h2.section, h2.n_fit) == (kind, 3, 4, 600)
    with pytest.raises(FileExistsError, match="h.npz"):
        h.save(path)


def test_inlier_set_roundtrip(blob, tmp_path):
    rng = np.random.default_rng(1)
    by_sec = {3: blob[:30], 4: blob[30:] + 3.0}
    hs = InlierSet.fit("gmm", 2, by_sec, seed=0)
    folder = hs.save(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", section_file(3), section_file(4)]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "gmm" and manifest["p"] == 2 and manifest["sections"] == [3, 4]
    loaded = InlierSet.load(tmp_path)
    q = rng.normal(size=(5, 10, 8))
    secs = np.array([3, 4, 3, 4, 4])
    np.testing.assert_allclose(loaded.score(q, secs), hs.score(q, secs), rtol=1e-6)
    # each clip is scored by its own section's model
    np.testing.assert_allclose(hs.score(q, secs)[1], hs.model(4).score(q[1]))
    with pytest.raises(KeyError, match="section 05"):
        hs.score(q, [5, 3, 3, 3, 3])
    with pytest.raises(FileExistsError, match="manifest.json"):
        hs.save(tmp_path)


def test_errors_name_the_problem(blob, tmp_path):
    with pytest.raises(ValueError, match=r"section 02.*p=64.*got 30"):
        fit_inlier("gmm", 64, blob[:3], section=2)
    with pytest.raises(ValueError, match=r"section 01.*LOF.*p=30.*got 30"):
        fit_inlier("lof", 30, blob[:3], section=1)
    with pytest.raises(ValueError, match=r"section 00.*no held-out"):
        fit_inlier("gmm", 2, np.zeros((0, 10, 8)), section=0)
    bad = blob.copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"section 04: 1 of 600.*NaN"):
        fit_inlier("lof", 2, bad, section=4)
    with pytest.raises(ValueError, match="inlier kind"):
        fit_inlier("svm", 2, blob)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        InlierModel.load(tmp_path / "missing.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="corrupt.npz.*corrupt"):
        InlierModel.load(tmp_path / "corrupt.npz")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        InlierSet.load(tmp_path / "empty_run")
    hs = InlierSet.fit("lof", 2, {0: blob[:5], 1: blob[5:10]})
    folder = hs.save(tmp_path / "run")
    (folder / section_file(1)).unlink()
    with pytest.raises(FileNotFoundError, match="section_01.npz"):
        InlierSet.load(tmp_path / "run")
    h = fit_inlier("gmm", 1, blob)
    with pytest.raises(ValueError, match="D=4.*D=8"):
        h.score(np.zeros((2, 4)))
