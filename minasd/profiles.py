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
    # chosen by what fits a free Colab GPU session (colab_estimate), never by results: the paper's 300
    # epochs make one type's four trainings about 4.4 h on a T4 by that estimate, 100 epochs about 1.5 h
    "colab": Profile("colab", None, 100, None, None,
                     "a free Colab GPU session: EfficientNet-B0, 100 epochs, Table I batch sizes (one type's four "
                     "trainings in about 1.5 h on a T4 by the estimate of minasd.profiles.colab_estimate)"),
}
DEFAULT_PROFILE = "paper"

#: The estimate that sized the ``colab`` profile: an estimate from published figures, not a
#: measurement (no T4 was ever lent to this project).  A T4's training rate of EfficientNet-B0
#: is published nowhere we found, so it is scaled from a V100's by the T4 / V100 ratio the same
#: source publishes for another convolutional network, then by our input's size.
COLAB_FIT: dict = {
    "b0_v100_amp_img_s": 1301.0,
    "t4_amp_img_s_resnet50": 1198.0,
    "v100_amp_img_s_resnet50": 3382.0,
    "input_pixels": 224 * 126,  # 224 mel bins x 126 frames (a 2 s crop at a 16 ms hop)
    "image_pixels": 224 * 224,
    "train_clips": 5400,  # a DCASE 2021 type: about 1,000 source clips per section x 6, less 10 % validation
    "trainings_per_type": 4,  # minasd experiment: lambda 0.1 and 10, no_mixup, product_only (wo_h trains nothing)
    "sources": (
        "EfficientNet-B0 training, 1x V100 16GB, mixed precision, 224x224: 1301 img/s; NVIDIA "
        "DeepLearningExamples, PyTorch/Classification/ConvNets/efficientnet/README.md, 'Training performance: "
        "NVIDIA DGX-1 (8x V100 16GB)'",
        "ResNet-50 v1.5 inference, mixed precision, batch 256: T4 1198 img/s, V100 16GB 3382 img/s; same "
        "repository, PyTorch/Classification/ConvNets/resnet50v1.5/README.md, 'Inference performance: NVIDIA T4' "
        "and 'NVIDIA DGX-1 (1x V100 16GB)'",
    ),
    "assumptions": ("a T4 trains B0 at the T4/V100 ratio of ResNet-50 inference; the cost of a crop scales with "
                    "its pixels; validation, evaluation and data loading are not counted"),
}


def colab_estimate(epochs: int, fit: dict = COLAB_FIT) -> dict:
    """GPU time of one DCASE 2021 type on a T4 by :data:`COLAB_FIT` (an estimate; labelled so wherever shown).

    An epoch shows every training clip of the type once with as many negatives (1:1), so it
    is ``2 x train_clips`` crops.

    >>> e = colab_estimate(100)
    >>> round(e["crops_per_s"]), round(e["s_per_epoch"]), round(e["min_per_training"]), round(e["h_per_type"], 1)
    (819, 13, 22, 1.5)
    """
    t4_b0 = fit["b0_v100_amp_img_s"] * fit["t4_amp_img_s_resnet50"] / fit["v100_amp_img_s_resnet50"]
    crops_per_s = t4_b0 * fit["image_pixels"] / fit["input_pixels"]
    s_per_epoch = 2 * fit["train_clips"] / crops_per_s
    per_training = s_per_epoch * epochs / 60
    return {"t4_b0_img_s": t4_b0, "crops_per_s": crops_per_s, "s_per_epoch": s_per_epoch,
            "min_per_training": per_training, "h_per_type": per_training * fit["trainings_per_type"] / 60,
            "epochs": epochs}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error for an unknown one."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {sorted(PROFILES)}") from None
