"""What each version of the synthetic factory models, for captions, the book and the controlled experiments.

**Synthetic data — not DCASE.**  ``minasd.synth`` (generator 1.2) and ``minasd.synth_machines``
(generator 2.0) each hold their machine types' sound models; the helpers here read the one of a
given version, by default the package's (:data:`minasd.config.SYNTH_GENERATOR`), so that a chapter or
a study describes the generator its data came from rather than always 1.2.

This module renders nothing: it is in no generator's fingerprint
(:data:`minasd.provenance.GENERATOR_FILES`) and in no calibration job's code hash, so editing it
neither makes a new generator nor re-measures a job.

>>> describe_machines("1.2")["fan"] == describe_machines("2.0")["fan"]
False
>>> section_params("valve", 0, "2.0")["scene"]
'ambient'
"""
from __future__ import annotations

from .config import MACHINE_TYPES, SYNTH_GENERATOR

__all__ = ["generator_of", "describe_machines", "section_params"]


def generator_of(generator: str | None = None) -> str:
    """``generator`` checked against the known versions; None: the package's default."""
    from .synth import GENERATORS

    version = SYNTH_GENERATOR if generator is None else str(generator)
    if version not in GENERATORS:
        raise ValueError(f"generator must be one of {list(GENERATORS)}, got {version!r}")
    return version


def describe_machines(generator: str | None = None) -> dict[str, str]:
    """One line per machine type: what its sound model is made of, in ``generator``.  Book: chapter 1."""
    version = generator_of(generator)
    if version == "1.2":
        from .synth import describe_machines as described

        return described()
    from .synth_machines import MODELS_V2

    return {m: MODELS_V2[m].description for m in MACHINE_TYPES}


def section_params(machine: str, section: int, generator: str | None = None) -> dict:
    """The product parameters of one section of ``machine`` in ``generator`` (a copy).

    Generator 2.0's also name the section's noise scene (``"scene"``).  Book: chapter 1;
    :func:`minasd.studies.controlled.section_param_distance`.

    Raises:
        ValueError: unknown generator, machine type or section.
    """
    version = generator_of(generator)
    if machine not in MACHINE_TYPES:
        raise ValueError(f"machine type must be one of {list(MACHINE_TYPES)}, got {machine!r}")
    if version == "1.2":
        from .synth import MODELS

        sections = MODELS[machine].sections
    else:
        from .synth_machines import MODELS_V2

        sections = MODELS_V2[machine].sections
    if not 0 <= int(section) < len(sections):
        raise ValueError(f"{machine} has sections 00-{len(sections) - 1:02d} in generator {version}, "
                         f"got {int(section):02d}")
    return dict(sections[int(section)])
