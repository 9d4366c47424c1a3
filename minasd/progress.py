"""Progress bars: tqdm's notebook widget where ipywidgets is installed, plain text elsewhere.

``tqdm.auto`` warns ("IProgress not found") in a notebook without ipywidgets;
importing :data:`tqdm` from here avoids that warning in the book and in Colab
alike. Set ``TQDM_DISABLE=1`` to silence every bar (the book's CI does).
"""
from __future__ import annotations

import importlib.util

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm
else:
    from tqdm import tqdm

__all__ = ["tqdm"]
