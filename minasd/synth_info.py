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

__all__ = ["generator_of", "describe_machines", "section_params", "anomaly_table", "example_anomalies",
           "gross_anomalies"]


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


def anomaly_table(generator: str | None = None) -> list[dict]:
    """One row per anomaly kind of every machine type in ``generator``, for a table.  Book: chapters 1, 10.

    Generator 1.2's kinds carry a severity class (``"class"``: subtle or gross).  Generator 2.0's
    are faults of the machine's own sound: their class comes from each clip's damage level (low and
    mid: subtle, high: gross; ``synth_machines.LEVEL_CLASS``), so a row gives the fault's time
    ``"character"`` (stationary or event) and whether a source read documents it instead.

    >>> anomaly_table("2.0")[0]["anomaly"], anomaly_table("2.0")[0]["character"]
    ('unbalance', 'stationary')
    """
    version = generator_of(generator)
    from .synth import anomaly_kinds

    rows = []
    for m, kinds in anomaly_kinds(generator=version).items():
        for k in kinds:
            if version == "1.2":
                rows.append({"machine type": m, "anomaly": k.name, "class": k.severity, "what changes": k.description})
            else:
                rows.append({"machine type": m, "anomaly": k.name, "character": k.character,
                             "documented": k.documented, "what changes": k.description})
    return rows


def _level_middle(level: str) -> float:
    from .synth_machines import LEVEL_RANGES

    lo, hi = LEVEL_RANGES[level]
    return round((lo + hi) / 2, 3)


def example_anomalies(machine: str, generator: str | None = None) -> list[tuple[str, str, float]]:
    """A subtle and a gross example anomaly of ``machine``, as ``(title, kind, severity)``.  Book: chapter 1.

    Generator 1.2: its first subtle and its first gross kind, each at severity 0.8.  Generator 2.0:
    its first fault at the middle of the low damage level and its first event-like fault (else its
    first) at the middle of the high one, the levels that make a clip subtle or gross there.

    >>> [kind for _, kind, _ in example_anomalies("valve", "1.2")]
    ['irregular_timing', 'leak']
    """
    version = generator_of(generator)
    from .synth import anomaly_kinds

    kinds = anomaly_kinds(machine, generator=version)
    if version == "1.2":
        subtle = next(k for k in kinds if k.severity == "subtle")
        gross = next(k for k in kinds if k.severity == "gross")
        return [(f"subtle: {subtle.name}", subtle.name, 0.8), (f"gross: {gross.name}", gross.name, 0.8)]
    event = next((k for k in kinds if k.character == "event"), kinds[0])
    low, high = _level_middle("low"), _level_middle("high")
    return [(f"subtle: {kinds[0].name}, low damage (severity {low})", kinds[0].name, low),
            (f"gross: {event.name}, high damage (severity {high})", event.name, high)]


def gross_anomalies(machine: str, generator: str | None = None) -> list[tuple[str, float]]:
    """``(kind, severity)`` pairs that make a gross anomaly of ``machine``, strongest setting.  Book: chapter 9.

    Generator 1.2: its gross kinds; 2.0: every fault (each is gross at a high damage level); all at
    severity 1.

    >>> gross_anomalies("fan", "2.0")[0]
    ('unbalance', 1.0)
    """
    version = generator_of(generator)
    from .synth import anomaly_kinds

    kinds = anomaly_kinds(machine, generator=version)
    return [(k.name, 1.0) for k in kinds if version != "1.2" or k.severity == "gross"]
