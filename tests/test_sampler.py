"""BalancedBatchSampler: 1:1 batches, negatives spread evenly, every positive once, len, seeds."""
from collections import Counter

import numpy as np
import pytest

from minasd.sampler import BalancedBatchSampler

TYPES = ["fan"] * 103 + ["pump"] * 40 + ["valve"] * 25 + ["slider"] * 60


def _types_of(batch):
    return [TYPES[i] for i in batch]


@pytest.mark.parametrize("batch_size", [8, 32, 128])
def test_every_target_clip_exactly_once_and_len_matches(batch_size):
    s = BalancedBatchSampler(TYPES, "fan", batch_size, seed=0)
    batches = list(s)
    # guards against a counter advanced twice per batch (half the positives per epoch)
    assert len(batches) == len(s) == int(np.ceil(103 / (batch_size // 2)))
    positives = [i for b in batches for i in b if TYPES[i] == "fan"]
    assert sorted(positives) == [i for i, m in enumerate(TYPES) if m == "fan"]
    # a second pass over the same epoch yields the same number again
    assert len(list(s)) == len(s)


def test_batches_are_one_to_one():
    s = BalancedBatchSampler(TYPES, "fan", 16, seed=1)
    for b in s:
        kinds = _types_of(b)
        n_pos = sum(k == "fan" for k in kinds)
        assert n_pos == len(b) - n_pos
        assert all(k == "fan" for k in kinds[:n_pos])  # positives first


def test_negatives_spread_evenly_over_other_types():
    s = BalancedBatchSampler(TYPES, "fan", 16, seed=2)  # 8 negatives over 3 types per batch
    totals = Counter()
    for b in s:
        c = Counter(k for k in _types_of(b) if k != "fan")
        assert set(c) <= {"pump", "valve", "slider"}
        full = len(b) == 16
        if full:  # 8 // 3 = 2 each, plus the remainder 2 handed round-robin
            assert sorted(c.values()) in ([2, 3, 3],)
        totals.update(c)
    assert max(totals.values()) - min(totals.values()) <= 2
    # within one type, clips are drawn without replacement until exhausted
    # (the first batches holding <= 25 valve clips in total hold no valve clip twice)
    valve = []
    for b in s:
        drawn = [i for i in b if TYPES[i] == "valve"]
        if len(valve) + len(drawn) > 25:
            break
        valve += drawn
    assert len(valve) > 20 and len(set(valve)) == len(valve)


def test_deterministic_by_seed_and_epoch():
    a = BalancedBatchSampler(TYPES, "fan", 16, seed=5)
    b = BalancedBatchSampler(TYPES, "fan", 16, seed=5)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    c = BalancedBatchSampler(TYPES, "fan", 16, seed=6)
    assert list(c) != list(BalancedBatchSampler(TYPES, "fan", 16, seed=5))


def test_resume_mid_epoch_from_state():
    s = BalancedBatchSampler(TYPES, "fan", 16, seed=7)
    s.set_epoch(3)
    full = list(s)
    it = iter(s)
    first = [next(it) for _ in range(3)]
    state = s.state_dict()
    assert state == {"seed": 7, "epoch": 3, "batches_done": 3}
    r = BalancedBatchSampler(TYPES, "fan", 16, seed=0)
    r.load_state_dict(state)
    assert first + list(r) == full


def test_clear_errors():
    with pytest.raises(ValueError, match="even"):
        BalancedBatchSampler(TYPES, "fan", 7)
    with pytest.raises(ValueError, match="other than 'fan'"):
        BalancedBatchSampler(["fan"] * 4, "fan", 4)
    with pytest.raises(ValueError, match="no clips of the target"):
        BalancedBatchSampler(TYPES, "ToyCar", 4)
