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
``minasd results``, ``minasd controlled``, the book's chapters and CI, through one
mapping: :meth:`Profile.settings` (a profile plus the options given explicitly ->
the training settings every entry point records).  Lambda: a single training
(``train``, ``demo``) uses the profile's; the experiment and everything built on
it choose it per type on sections 00-02 from :data:`DEFAULT_GRID_LAM`.

>>> get_profile("cpu").name
'cpu'
>>> get_profile("paper").label()
'profile paper (EfficientNet-B0, 300 epochs, Table I batch sizes)'
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

#: The lambda grid of the experiment (and of ``minasd results``, ``minasd controlled``'s
#: reference and the book) unless a caller gives another: Table I's two values.
DEFAULT_GRID_LAM: tuple[float, ...] = (0.1, 10.0)


@dataclass(frozen=True)
class Profile:
    """What a run costs.

    Attributes:
        name: ``"paper"``, ``"cpu"`` or ``"colab"``.
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

    def settings(self, *, epochs: int | None = None, backbone: str | None = None, batch_size: int | None = None,
                 lam: float | None = None) -> dict:
        """The training settings of this profile, with the options given explicitly (None = not given).

        Every key is always present, None keeping its meaning in :class:`minasd.train.TrainConfig`
        (backbone None: EfficientNet-B0; batch size or lambda None: Table I's per-type value), so
        that every entry point records the same settings for the same profile and options.

        >>> get_profile("cpu").settings(epochs=3)
        {'profile': 'cpu', 'backbone': 'mobilenetv3_small_050', 'epochs': 3, 'batch_size': 32, 'lam': 10.0}
        >>> get_profile("paper").settings()["backbone"] is None
        True
        """
        def pick(given, own):
            return own if given is None else given

        return {"profile": self.name, "backbone": pick(backbone, self.backbone), "epochs": int(pick(epochs, self.epochs)),
                "batch_size": pick(batch_size, self.batch_size), "lam": pick(lam, self.lam)}

    def experiment_settings(self, *, epochs: int | None = None, backbone: str | None = None,
                            batch_size: int | None = None, **extra) -> tuple[int, dict]:
        """:meth:`settings` as :func:`minasd.studies.experiment.experiment` takes them: ``(epochs, train_overrides)``.

        Lambda is left out (the experiment chooses it from its grid); ``extra`` are further
        :class:`minasd.train.TrainConfig` fields given explicitly (None = not given: left out).

        >>> get_profile("cpu").experiment_settings(max_train_clips_per_section=None)
        (20, {'profile': 'cpu', 'backbone': 'mobilenetv3_small_050', 'batch_size': 32})
        """
        s = self.settings(epochs=epochs, backbone=backbone, batch_size=batch_size)
        del s["lam"]
        epochs_ = s.pop("epochs")
        s.update({k: v for k, v in extra.items() if v is not None})
        return epochs_, s

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
    # chosen by what fits a free Colab GPU session (see COLAB_FIT), never by results
    "colab": Profile("colab", None, 100, None, None,
                     "a free Colab GPU session: EfficientNet-B0, 100 epochs, Table I batch sizes (one type's "
                     "five trainings fit one session by the estimate in minasd.profiles.COLAB_FIT)"),
}
DEFAULT_PROFILE = "paper"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error for an unknown one."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {sorted(PROFILES)}") from None
