"""Single source of truth for the facts every module shares.

Machine types, sections, audio and feature settings, the Zenodo records of
DCASE 2021 Task 2, and the paper's Table I (per-machine-type hyperparameters,
shipped as ``table1.yaml`` beside this file and loaded into a frozen
dataclass).  Nothing else in the package hard-codes these values.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping

import yaml

# --- data set facts --------------------------------------------------------

#: The seven DCASE 2021 Task 2 machine types, in the paper's Table I order.
MACHINE_TYPES: tuple[str, ...] = ("fan", "gearbox", "pump", "valve", "slider", "ToyCar", "ToyTrain")
#: Sections of the development set (validation in the paper) and of the evaluation set (test).
DEV_SECTIONS: tuple[int, ...] = (0, 1, 2)
EVAL_SECTIONS: tuple[int, ...] = (3, 4, 5)
SECTIONS: tuple[int, ...] = DEV_SECTIONS + EVAL_SECTIONS

#: The synthetic factory's version behind every synthetic set the book, ``minasd demo`` and
#: ``minasd results`` make (``data.synthetic_set``): 1.2 until generator 2.0 is calibrated and
#: frozen (issue 23; ``minasd/synth_frozen.json``), then 2.0.
SYNTH_GENERATOR = "1.2"

SAMPLE_RATE = 16_000  # Hz, every DCASE Task 2 clip
CLIP_SECONDS = 10.0  # DCASE 2021 clip length
SEGMENT_SECONDS = 2.0  # T in the paper: training crop and inference segment length
N_SEGMENTS = 10  # S in the paper: segments per clip at inference
MIN_CLIP_SECONDS = SEGMENT_SECONDS  # a clip shorter than one segment cannot be scored

#: Zenodo records of DCASE 2021 Task 2 (METHOD.md; ../shared/data/README.md).
ZENODO_RECORDS: Mapping[str, str] = {
    "dev": "4562016",  # development set, sections 00-02
    "add": "4660992",  # additional training set, sections 03-05 train
    "eval": "4884786",  # evaluation set, sections 03-05 test, anonymised
    "ground_truth": "5257674",  # labels of the evaluation set
}


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel settings of the paper (Sec. IV-A): 128 ms Hann window, 16 ms hop,
    224 mel bins over 50-7800 Hz, log of mel power plus a small floor."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048  # 128 ms at 16 kHz
    win_length: int = 2048
    hop_length: int = 256  # 16 ms
    n_mels: int = 224
    f_min: float = 50.0
    f_max: float = 7800.0
    log_floor: float = 1e-8  # added to the mel power before the log

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` with centred framing."""
        return n_samples // self.hop_length + 1


FEATURES = FeatureConfig()


# --- Table I ---------------------------------------------------------------


@dataclass(frozen=True)
class TypeHParams:
    """Per-machine-type hyperparameters of the paper's Table I.

    Attributes:
        lr: max learning rate of OneCycleLR.
        batch_size: crops per batch (half target type, half other types).
        lam: weight lambda of the product loss, Eq. 3.
        inlier: inlier model h, ``"gmm"`` or ``"lof"``.
        p: GMM components or LOF neighbours.
        epochs: training epochs (the paper: 300).
    """

    lr: float
    batch_size: int
    lam: float
    inlier: str
    p: int
    epochs: int = 300

    def replace(self, **changes) -> "TypeHParams":
        """A copy with some fields changed; unknown names raise TypeError."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_table1(path: str | Path | None = None) -> dict[str, TypeHParams]:
    """Load Table I (the shipped ``table1.yaml`` unless ``path`` names another file).

    >>> load_table1()["fan"].batch_size
    32
    """
    if path is None:
        text = resources.files("minasd").joinpath("table1.yaml").read_text()
        source = "minasd/table1.yaml"
    else:
        text = Path(path).read_text()
        source = str(path)
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping of machine type to hyperparameters")
    table = {}
    for machine, fields in raw.items():
        try:
            hp = TypeHParams(**fields)
        except TypeError as err:
            raise ValueError(f"{source}: machine type {machine!r}: {err}") from None
        if hp.inlier not in ("gmm", "lof"):
            raise ValueError(f"{source}: machine type {machine!r}: inlier must be 'gmm' or 'lof', got {hp.inlier!r}")
        table[machine] = hp
    return table


#: The row of a machine type outside Table I (one's own recordings, ``minasd prepare``): the
#: values most of the paper's seven rows share (lr 0.001, batch 128, lambda 10 and a GMM: five
#: of seven each; p = 16, the middle of the GMM rows' 2-64).  ``minasd experiment`` chooses
#: lambda and the inlier model on the development sections anyway; this row is its fallback
#: and the training settings of such a type.
OTHER_TYPE_HPARAMS = TypeHParams(lr=0.001, batch_size=128, lam=10.0, inlier="gmm", p=16, epochs=300)


def hparams_for(machine: str, overrides: Mapping | None = None, table_path: str | Path | None = None) -> TypeHParams:
    """Table I row for ``machine``, with optional overrides (e.g. ``{"epochs": 5}``).

    A type that Table I does not list gets :data:`OTHER_TYPE_HPARAMS`, with a warning that
    names it.
    """
    table = load_table1(table_path)
    if machine in table:
        hp = table[machine]
    else:
        warnings.warn(f"machine type {machine!r} is not in Table I (it lists {sorted(table)}): using the row for "
                      f"other types, {OTHER_TYPE_HPARAMS.to_dict()} (minasd.config.OTHER_TYPE_HPARAMS)", stacklevel=2)
        hp = OTHER_TYPE_HPARAMS
    if overrides:
        hp = hp.replace(**{k: v for k, v in overrides.items() if v is not None})
    return hp
