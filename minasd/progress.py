"""Progress bars: tqdm's notebook widget where ipywidgets is installed, plain text elsewhere.

``tqdm.auto`` warns ("IProgress not found") in a notebook without ipywidgets;
importing :func:`tqdm` from here avoids that warning in the book and in Colab
alike. ``TQDM_DISABLE=1`` in the environment silences every bar, also those a
caller asked for explicitly with ``disable=False`` (the book's CI sets it).
"""
from __future__ import annotations

import importlib.util
import os

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm as _tqdm
else:
    from tqdm import tqdm as _tqdm


def tqdm(*args, **kwargs):
    """``tqdm.tqdm`` with the environment's ``TQDM_DISABLE`` taking precedence."""
    if os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes"):
        kwargs["disable"] = True
    return _tqdm(*args, **kwargs)


__all__ = ["tqdm"]
