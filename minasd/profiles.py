"""Named training profiles: the paper's settings and the CPU's (Book: chapter 4).

A profile fixes what a run costs and what a single training uses: the encoder,
the number of epochs, the batch size and (``cpu`` only) lambda.  Everything else
(learning rate, the inlier model) comes from the paper's Table I in both
profiles, and an explicit option (``--epochs``, ``--backbone``, ``--batch-size``,
``--lam``) overrides the profile's value.  ``minasd experiment`` chooses lambda
on sections 00-02 from its grid whatever the profile says.

* ``paper``: the paper's configuration: EfficientNet-B0, 224 mel bins, Table I's
  batch sizes, 300 epochs.  A GPU's work (days on a CPU).
* ``cpu``: the configuration that learned best per CPU minute in the study
  ``benchmarks/cpu_profile_study.py`` (sections 00-02 only, committed as
  ``benchmarks/results/cpu_profile_study.txt``).  Its encoder is not the paper's:
  every result made with it says ``profile cpu`` and names the encoder.

One definition, used by ``minasd train``, ``minasd experiment``, ``minasd demo``,
the book's chapters and CI.

>>> get_profile("cpu").name
'cpu'
>>> get_profile("paper").label()
'profile paper (EfficientNet-B0, 300 epochs, Table I batch sizes)'
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import hparams_for


@dataclass(frozen=True)
class Profile:
    """What a run costs.

    Attributes:
        name: ``"paper"`` or ``"cpu"``.
        backbone: timm encoder name; None = the paper's EfficientNet-B0 (``efficientnet_b0``, or
            ``tf_efficientnet_b0`` with Noisy Student weights: :class:`minasd.train.TrainConfig`).
        epochs: training epochs.
        batch_size: crops per batch for every type; None = Table I's per-type value.
        lam: lambda of Eq. 3 for every type; None = Table I's per-type value.
        summary: one line for captions and logs.
    """

    name: str
    backbone: str | None
    epochs: int
    batch_size: int | None
    lam: float | None
    summary: str

    def batch_size_for(self, machine_type: str) -> int:
        """The batch size a run of ``machine_type`` uses under this profile."""
        return self.batch_size if self.batch_size is not None else hparams_for(machine_type).batch_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def label(self) -> str:
        """Short label for captions: ``profile cpu (mobilenetv3_small_050, 40 epochs, batch 32)``."""
        batch = f"batch {self.batch_size}" if self.batch_size is not None else "Table I batch sizes"
        lam = f", lambda {self.lam:g}" if self.lam is not None else ""
        return f"profile {self.name} ({self.backbone or 'EfficientNet-B0'}, {self.epochs} epochs, {batch}{lam})"


PROFILES: dict[str, Profile] = {
    "paper": Profile("paper", None, 300, None, None,
                     "the paper: EfficientNet-B0, 300 epochs, Table I batch sizes (a GPU's work)"),
    # chosen by benchmarks/cpu_profile_study.py on sections 00-02 (see its committed table)
    "cpu": Profile("cpu", "mobilenetv3_small_050", 20, 32, 10.0,
                   "CPU: MobileNetV3-Small 0.5x, 20 epochs, batch 32, lambda 10 (learned best per CPU minute "
                   "on sections 00-02; not the paper's encoder)"),
}
DEFAULT_PROFILE = "paper"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error for an unknown one."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {sorted(PROFILES)}") from None
