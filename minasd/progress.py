"""Progress bars: tqdm's notebook widget where ipywidgets is installed, plain text elsewhere.

``tqdm.auto`` warns ("IProgress not found") in a notebook without ipywidgets;
importing :func:`tqdm` from here avoids that warning in the book and in Colab
alike. Libraries that import ``tqdm.auto`` themselves (timm, through
huggingface_hub) would still print it into a chapter: without ipywidgets this
module imports ``tqdm.auto`` once, with that warning silenced, so that their
import finds it loaded (and falls back to the text bar) without a word; import
this module before them (:mod:`minasd.model` does, before timm).
``TQDM_DISABLE=1`` in the environment silences every bar, also those a caller
asked for explicitly with ``disable=False`` (the book's CI sets it).
"""
from __future__ import annotations

import importlib.util
import os
import warnings

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm as _tqdm
else:
    from tqdm import TqdmWarning
    from tqdm import tqdm as _tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        importlib.import_module("tqdm.auto")  # loaded quietly for the libraries that import it


def tqdm(*args, **kwargs):
    """``tqdm.tqdm`` with the environment's ``TQDM_DISABLE`` taking precedence."""
    if os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes"):
        kwargs["disable"] = True
    return _tqdm(*args, **kwargs)


__all__ = ["tqdm"]
