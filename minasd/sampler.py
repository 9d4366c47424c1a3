"""Balanced batch sampler: half target machine type, half other types (Book: chapter 3).

The paper: "When creating mini-batches, we use a batch sampler so that the
value of t is 1:1."  This sampler's contract (each point is tested):

1. Every batch holds ``n_pos`` target-type clips and as many other-type clips
   (``n_pos = batch_size // 2``; the last batch of an epoch may hold fewer of
   each, still 1:1).
2. The other-type half is spread evenly over every other machine type present:
   each batch gives each type ``n_pos // n_types`` clips and hands the remainder
   out round-robin, rotating from batch to batch, so over an epoch the counts
   per type differ by at most one batch's remainder.  Within a type, clips come
   from a shuffled stream without replacement (reshuffled when exhausted).
3. Every target-type clip appears exactly once per epoch, so the epoch has
   ``ceil(n_target / n_pos)`` batches and ``len()`` is that number.  The counter
   of yielded batches advances once per batch (one public sampler of this family
   advanced it twice and saw about half the positives per epoch).
4. Deterministic by ``seed`` and epoch: the batches of epoch ``e`` depend only on
   ``(seed, e)``; call :meth:`set_epoch` before each epoch so epochs differ.
   :meth:`state_dict` / :meth:`load_state_dict` resume in the middle of an epoch.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np


class BalancedBatchSampler:
    """Batches of dataset indices, half target machine type, half other types (Book: chapter 3).

    Args:
        machine_types: machine type of every dataset item (length N).
        target_type: the machine type whose model is trained (t = 1).
        batch_size: items per full batch (even; half positives, half negatives).
        seed: base seed; batches of epoch e depend only on (seed, e).

    Yields:
        lists of ``batch_size`` (or fewer, in the last batch) int indices; the
        first half are target-type items, the second half other-type items.

    >>> s = BalancedBatchSampler(["fan"] * 5 + ["pump"] * 3 + ["valve"] * 3, "fan", batch_size=4)
    >>> len(s), [len(b) for b in s]
    (3, [4, 4, 2])
    """

    def __init__(self, machine_types: Sequence[str], target_type: str, batch_size: int, seed: int = 0):
        if batch_size < 2 or batch_size % 2:
            raise ValueError(f"batch_size must be even and >= 2 (half target, half other types), got {batch_size}")
        types = np.asarray([str(m) for m in machine_types])
        self.target_type = target_type
        self.batch_size = int(batch_size)
        self.n_pos = self.batch_size // 2
        self.seed = int(seed)
        self.positives = np.flatnonzero(types == target_type)
        if self.positives.size == 0:
            raise ValueError(f"no clips of the target machine type {target_type!r} among the {len(types)} items")
        self.other_types = sorted(set(types.tolist()) - {target_type})
        if not self.other_types:
            raise ValueError(
                f"outlier exposure needs clips of at least one machine type other than {target_type!r}; "
                "the data hold only the target type"
            )
        self.negatives = {m: np.flatnonzero(types == m) for m in self.other_types}
        self.epoch = 0
        self._batches_done = 0  # batches of the current epoch already yielded

    def __len__(self) -> int:
        return math.ceil(self.positives.size / self.n_pos)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields (restarts it)."""
        self.epoch = int(epoch)
        self._batches_done = 0

    def epoch_batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """All batches of ``epoch`` (default: the current one) as int64 arrays, a pure function of (seed, epoch)."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch])
        pos = rng.permutation(self.positives)
        n_types = len(self.other_types)
        streams = {m: _Stream(self.negatives[m], rng) for m in self.other_types}
        batches = []
        for b in range(len(self)):
            p = pos[b * self.n_pos:(b + 1) * self.n_pos]
            n_neg = p.size  # 1:1, also in a short last batch
            counts = np.full(n_types, n_neg // n_types)
            # the remainder goes round-robin, starting at a type that rotates per batch
            extra = n_neg % n_types
            start = (b * extra) % n_types if extra else 0
            counts[(start + np.arange(extra)) % n_types] += 1
            neg = np.concatenate([streams[m].take(int(c)) for m, c in zip(self.other_types, counts)])
            neg = rng.permutation(neg)
            batches.append(np.concatenate([p, neg]).astype(np.int64))
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches()
        while self._batches_done < len(batches):
            batch = batches[self._batches_done]
            self._batches_done += 1  # once per yielded batch, never elsewhere
            yield batch.tolist()
        # a finished epoch leaves the sampler ready for the same epoch again
        self._batches_done = 0

    def state_dict(self) -> dict:
        """Seed, epoch and the batches already yielded in it (for resuming)."""
        return {"seed": self.seed, "epoch": self.epoch, "batches_done": self._batches_done}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self._batches_done = int(state.get("batches_done", 0))


class _Stream:
    """Endless draws without replacement from ``items``, reshuffled whenever exhausted."""

    def __init__(self, items: np.ndarray, rng: np.random.Generator):
        self.items = items
        self.rng = rng
        self.order = rng.permutation(items)
        self.pos = 0

    def take(self, n: int) -> np.ndarray:
        out = []
        while n > 0:
            if self.pos == self.order.size:
                self.order = self.rng.permutation(self.items)
                self.pos = 0
            k = min(n, self.order.size - self.pos)
            out.append(self.order[self.pos:self.pos + k])
            self.pos += k
            n -= k
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)
