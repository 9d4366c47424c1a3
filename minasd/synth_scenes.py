"""Generator 2.0 noise scenes and mixing rules (Book: chapter 1).

**Synthetic data — not DCASE.**  Status: *uncalibrated* (see :mod:`minasd.synth_machines`).

Choices and their sources (keys of the design's source table, docs/factory_v2_design.md):

* **Noise recorded apart and mixed afterwards.**  MIMII's background noise was recorded in
  several real factories and mixed with the machine sounds [M-BL]; ToyADMOS2 mixes machine
  recordings with separately recorded environmental noise by ``mixer.py`` [T2-RM, T2-MX].
  Here a *scene* is a bank of :data:`BANK_SIZE` noise clips per ``(seed, type, scene)``;
  each clip draws one bank clip at random with replacement and a random circular offset,
  as the ToyADMOS2 mixer draws a noise file per clip [T2-UM §2-6, T2-MX l.139].  The bank
  size and the scenes' contents are proposals (what real factory noise contains: not
  documented beyond "factory noise").
* **Scenes**: ``ambient`` (stationary: coloured noise with a rumble peak and mains hum, the
  1.2 background without its clanks), ``hall`` (another stationary floor plus
  non-stationary events: distant clanks, forklift pass-bys, compressed-air bursts, at
  ``nonstat`` events per second), ``line`` (other machines: one or two normal renders of
  other types at -12 to -6 dB re the floor, plus half the hall's event rate) and
  ``with_pump`` (valve: a running pump, the real valve attribute ``with_pump`` / ``no_pump``
  [ANCH]).  Which real sections had which noise: not documented.  ToyADMOS2 has four noise
  recordings per toy [T2-UM §2-2]; the toys here use the same three scenes (a deviation).
* **Reference level** (both rules): the type's mean normal RMS over 6 sections x 8 fixed
  normal renders of 2 s (:func:`reference_rms`).  ToyADMOS2 averages every recording of the
  toy, normal and anomalous alike [T2-MX l.79-80, 94]; normals only here, so that moving the
  fault severities never moves the normal clips (a deviation).
* **MIMII rule** (fan, gearbox, pump, slider, valve): the scene clip is scaled so that its
  floor level is ``ref / 10^(snr/20)`` and added; the machine is not renormalised per clip.
  MIMII's SNRs are -6, 0 and +6 dB [M-SNR]; one value per type (knob ``snr``).  How MIMII
  scaled each noise file: not documented (here: by the scene's floor, so a loud event stays
  loud).  DCASE 2021's own SNRs: not documented in material read.
* **ToyADMOS2 rule** (ToyCar, ToyTrain): the mixer formula ``k = sig_rms / noise_rms /
  10^(snr/20)``, ``out = sig / (1 + k) + noise * k / (1 + k)`` [T2-MX l.67-68] with
  ``sig_rms = ref`` and ``noise_rms`` the RMS of the chosen bank clip (each bank clip has
  its own level, as recordings do).
* **Gain**: one fixed output gain per type (its ``level_db``); no per-clip random gain, so a
  louder anomalous clip stays louder, as both rules imply.  Samples beyond +-0.999 are
  clipped and counted.
"""
from __future__ import annotations

import zlib
from collections import OrderedDict
from typing import Mapping

import numpy as np

from .synth import SR, _add_events, _cycles, _harmonics, _kernel, _rms, _shaped_noise
from .synth_machines import MODELS_V2, clip_head

SCENES = ("ambient", "hall", "line", "with_pump")
BANK_SIZE = 32
#: Other machines heard in a ``line`` scene, per type (normal renders of these types).
LINE_OTHERS: dict[str, tuple[str, ...]] = {
    "fan": ("pump", "gearbox"), "gearbox": ("fan", "pump"), "pump": ("fan", "gearbox"),
    "slider": ("fan", "gearbox"), "valve": ("fan", "pump"), "ToyCar": ("fan", "gearbox"),
    "ToyTrain": ("fan", "gearbox"),
}
_NOMINAL = {"sigma": 1.0, "spread": 1.0, "duty": 1.0}  # knobs of the other machines in a scene
_BANK_CACHE: "OrderedDict[tuple, tuple[np.ndarray, float]]" = OrderedDict()
_BANK_CACHE_MAX = 96
_REF_CACHE: dict[tuple, float] = {}


def _key(text: str) -> int:
    return zlib.crc32(text.encode("ascii"))


def _floor(rng: np.random.Generator, n: int, hall: bool) -> np.ndarray:
    """Stationary floor, unit RMS: coloured noise with a rumble peak, mains hum."""
    if hall:  # larger room: lower, stronger rumble and a darker tilt
        peaks = [(rng.uniform(50, 120), 100, 8.0), (rng.uniform(300, 700), 400, 2.0)]
        tilt = rng.uniform(-6.0, -3.0)
    else:
        peaks = [(rng.uniform(80, 200), 150, 6.0), (rng.uniform(800, 2000), 1500, 1.0)]
        tilt = rng.uniform(-5.0, -2.0)
    x = _shaped_noise(rng, n, peaks, tilt) + _harmonics(_cycles(50.0, n), [1, 2, 3], rng.uniform(0.0, 0.3, 3), rng)
    return (x / _rms(x)).astype(np.float32)


def _events(rng: np.random.Generator, x: np.ndarray, rate: float) -> np.ndarray:
    """Add non-stationary events (clank, forklift pass-by, air burst) at ``rate`` per second."""
    n = x.shape[0]
    m = int(rng.poisson(rate * n / SR))
    for t0, kind in zip(rng.uniform(0, n / SR, m), rng.integers(0, 3, m)):
        if kind == 0:  # clank: a struck metal part far away
            k = _kernel(rng, [(rng.uniform(300, 1500), 0.05, 1.0), (rng.uniform(2000, 4000), 0.02, 0.4)], 0.25)
            _add_events(x, [t0], rng.uniform(0.5, 2.0), k)
        elif kind == 1:  # pass-by: engine harmonics under a slow bell-shaped envelope
            width = rng.uniform(1.0, 2.5)
            i0, i1 = max(int((t0 - 3 * width) * SR), 0), min(int((t0 + 3 * width) * SR), n)
            tt = np.arange(i0, i1) / SR
            eng = _harmonics(_cycles(rng.uniform(25, 45), i1 - i0), [1, 2, 3, 4, 5, 6],
                             [1.0, 0.7, 0.5, 0.35, 0.25, 0.15], rng)
            x[i0:i1] += rng.uniform(0.3, 1.0) * eng * np.exp(-0.5 * ((tt - t0) / width) ** 2).astype(np.float32)
        else:  # compressed-air burst: high-band hiss with fast attack and decay
            m_len = int(rng.uniform(0.2, 0.6) * SR)
            burst = _shaped_noise(rng, m_len, [(rng.uniform(3000, 7000), 3000, 4.0)], 0.0, floor=0.1)
            env = np.minimum(1.0, np.arange(m_len) / (0.01 * SR)) * np.exp(-np.arange(m_len) / (0.5 * m_len))
            _add_events(x, [t0], rng.uniform(0.5, 1.5), (burst * env).astype(np.float32))
    return x


def _normal_render(machine: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """A normal clip of another machine type (nominal knobs), unit RMS: part of a scene."""
    section = int(rng.integers(0, 6))
    knobs = dict(_NOMINAL, nonstat=0.0)
    _, op, _, _ = clip_head(machine, section, None, None, 0, rng)
    r1, r2 = rng.spawn(2)
    model = MODELS_V2[machine]
    x = model.render(r1, r2, model.sections[section], op, n, None, 0.0, knobs, None)
    return (x / _rms(x)).astype(np.float32)


def bank_clip(seed: int, machine: str, scene: str, j: int, n: int, nonstat: float) -> tuple[np.ndarray, float]:
    """Clip ``j`` of the noise bank of ``(seed, machine, scene)``, ``n`` samples.

    Deterministic (seeded by its content), cached per process.  Returns ``(noise, floor)``:
    the clip, whose stationary floor has RMS ``floor`` (the clip's own level, 0 to -6 dB;
    events come on top).
    """
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; known: {list(SCENES)}")
    key = (int(seed), machine, scene, int(j), int(n), round(float(nonstat), 6))
    hit = _BANK_CACHE.get(key)
    if hit is not None:
        _BANK_CACHE.move_to_end(key)
        return hit
    rng = np.random.default_rng([int(seed), _key(machine), _key(scene), int(j), 777])
    level = 10 ** (rng.uniform(-6.0, 0.0) / 20.0)
    x = _floor(rng, n, hall=scene == "hall")
    if scene == "line":
        for other in LINE_OTHERS[machine][: int(rng.integers(1, 3))]:
            x += 10 ** (rng.uniform(-12.0, -6.0) / 20.0) * _normal_render(other, rng, n)
    elif scene == "with_pump":
        x += 10 ** (rng.uniform(-3.0, 3.0) / 20.0) * _normal_render("pump", rng, n)
    if scene in ("hall", "line"):
        x = _events(rng, x, float(nonstat) * (1.0 if scene == "hall" else 0.5))
    out = ((x * level).astype(np.float32), float(level))
    _BANK_CACHE[key] = out
    while len(_BANK_CACHE) > _BANK_CACHE_MAX:
        _BANK_CACHE.popitem(last=False)
    return out


def reference_rms(machine: str, knobs_t: Mapping) -> float:
    """The type's reference level: mean RMS of 6 sections x 8 fixed normal 2 s renders."""
    key = (machine, float(knobs_t["spread"]), float(knobs_t.get("duty", 1.0)))
    if key not in _REF_CACHE:
        model = MODELS_V2[machine]
        vals = []
        for sec in range(len(model.sections)):
            for r in range(8):
                rng = np.random.default_rng([_key(machine), sec, r, 54321])
                _, op, _, _ = clip_head(machine, sec, None, None, 0, rng)
                r1, r2 = rng.spawn(2)
                vals.append(_rms(model.render(r1, r2, model.sections[sec], op, 2 * SR, None, 0.0, knobs_t, None)))
        _REF_CACHE[key] = float(np.mean(vals))
    return _REF_CACHE[key]


def output_gain(machine: str, knobs_t: Mapping) -> float:
    """The type's fixed output gain: a normal clip's machine part at its ``level_db`` dBFS."""
    model = MODELS_V2[machine]
    ref = reference_rms(machine, knobs_t)
    g = 10 ** (model.level_db / 20.0) / ref
    if model.rule == "toyadmos2":  # undo the mixer's 1 / (1 + k) at a nominal noise level of 1
        g *= 1.0 + 10 ** (-float(knobs_t["snr"]) / 20.0)
    return float(g)


def mix(x: np.ndarray, machine: str, section: int, seed: int, knobs_t: Mapping,
        rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Mix a machine signal with its section's scene and apply the type's fixed gain.

    Args:
        x: machine part, shape (n,).
        machine, section, seed: pick the scene and its bank.
        knobs_t: the type's knobs (``snr``, ``nonstat``, ``spread``, ``duty``).
        rng: the clip's scene generator (bank clip and circular offset).

    Returns:
        ``(wave, info)``: float32 in [-0.999, 0.999]; info has ``scene``, ``snr_db``,
        ``noise_clip`` and ``clipped`` (number of clipped samples).
    """
    model = MODELS_V2[machine]
    scene = model.sections[section]["scene"]
    n = x.shape[0]
    j = int(rng.integers(0, BANK_SIZE))
    shift = int(rng.integers(0, n))
    noise, floor = bank_clip(seed, machine, scene, j, n, float(knobs_t["nonstat"]))
    noise = np.roll(noise, shift)
    ref = reference_rms(machine, knobs_t)
    snr = float(knobs_t["snr"])
    if model.rule == "mimii":
        y = x + noise * np.float32(ref / floor / 10 ** (snr / 20.0))
    else:  # ToyADMOS2 mixer.py l.67-68, sig_rms = the type's reference
        k = ref / _rms(noise) / 10 ** (snr / 20.0)
        y = (x + noise * np.float32(k)) * np.float32(1.0 / (1.0 + k))
    y = y * np.float32(output_gain(machine, knobs_t))
    clipped = int(np.count_nonzero(np.abs(y) > 0.999))
    wave = np.clip(y, -0.999, 0.999).astype(np.float32)
    return wave, {"scene": scene, "snr_db": snr, "noise_clip": j, "clipped": clipped}
