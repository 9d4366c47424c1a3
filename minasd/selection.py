"""The protocol's one rule for choosing settings: on the development sections only (book chapter 5).

Every choice of this package (the proposed method's lambda, inlier kind and p in
:mod:`minasd.studies.experiment`, TWFR-GMM's pooling r and components in :mod:`minasd.twfr`)
compares candidates by the harmonic mean of the AUCs and pAUCs of sections 00-02 and never
reads sections 03-05, which are only reported.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from .config import DEV_SECTIONS
from .metrics import hmean_or_none


def select_on_dev(rows: Sequence[Mapping], keys: Sequence[str] = ("lam", "kind", "p"),
                  dev_sections: Iterable[int] = DEV_SECTIONS) -> tuple[dict, list[dict]]:
    """Choose the candidate with the best development-section score; rows of other sections are ignored.

    Args:
        rows: one dict per (candidate, section) with the ``keys``, ``section``, ``auc``,
            ``pauc`` and optionally ``skipped`` (a reason: the candidate is invalid).
        keys: the fields that identify a candidate.
        dev_sections: the sections selection may look at (00-02).

    Returns:
        ``(chosen, table)``: the chosen candidate's key values, and one row per candidate
        with ``dev_hmean`` (harmonic mean of its dev AUCs and pAUCs; None if invalid),
        ``n_dev_sections``, ``skipped`` and ``chosen``.  Book: chapter 6.

    Raises:
        ValueError: no candidate has a score on every development section.

    >>> rows = [dict(p=1, section=0, auc=.9, pauc=.8), dict(p=1, section=3, auc=.1, pauc=.1),
    ...         dict(p=2, section=0, auc=.6, pauc=.6), dict(p=2, section=3, auc=1., pauc=1.)]
    >>> select_on_dev(rows, keys=("p",))[0]
    {'p': 1}
    """
    dev = {int(s) for s in dev_sections}
    order: list[tuple] = []
    groups: dict[tuple, list[Mapping]] = {}
    for r in rows:
        k = tuple(r[key] for key in keys)
        if k not in groups:
            groups[k] = []
            order.append(k)
        if int(r["section"]) in dev:
            groups[k].append(r)
    table, best, best_val = [], None, -np.inf
    for k in order:
        g = groups[k]
        skipped = next((r.get("skipped") for r in g if r.get("skipped")), None)
        vals = [v for r in g for v in (r.get("auc"), r.get("pauc"))]
        # hmean_or_none: an AUC or pAUC of 0 (possible on small sections) is the worst score, not invalid
        score = hmean_or_none(vals) if g and not skipped else None
        if not g:
            skipped = skipped or "no development-section rows"
        elif score is None and not skipped:
            skipped = "a development section has no AUC (labels missing?)"
        table.append({**dict(zip(keys, k)), "dev_hmean": score, "n_dev_sections": len(g), "skipped": skipped,
                      "chosen": False})
        if score is not None and score > best_val:
            best, best_val = k, score
    if best is None:
        raise ValueError(f"no candidate has AUC and pAUC on every development section {sorted(dev)}; "
                         f"candidates: {[dict(zip(keys, k)) for k in order][:5]}")
    for row in table:
        row["chosen"] = tuple(row[key] for key in keys) == best
    return dict(zip(keys, best)), table
