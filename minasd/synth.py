"""Synthetic machine sounds in the DCASE 2021 Task 2 layout (Book: chapter 1).

The real DCASE 2021 Task 2 data cannot reach the machines this project is built on, so
this module manufactures a stand-in: seven machine types named after the DCASE ones, six
sections (products) each, normal training clips and labelled test clips with anomalies of
two kinds, written with the exact DCASE 2021 folder layout and file names so that every
later stage reads real and synthetic data through the same :func:`minasd.data.index`.

**Synthetic data — not DCASE.**  Numbers measured on it say how the method behaves on
this factory's sounds; they are never a reproduction of the paper's numbers.

How a clip is made (all numpy, vectorised over samples):

1. The section's *product* parameters (speeds, blade / tooth / vane counts, resonances,
   rhythm) come from a fixed table per type; some sections are deliberately close to
   another (they differ by a few per cent of speed or one resonance).
2. A per-clip random generator, seeded from ``(seed, type, section, split, index)``,
   draws the operating point (an attribute value such as ``strength_2`` or ``vel_6``
   that moves the speed), jitter of every parameter, slow speed drift, noise colour, gain
   and timing.  The same arguments therefore give identical bytes, whatever the number of
   worker processes and whether the run was resumed.
3. The type's sound model renders the machine: harmonic stacks on a time-varying phase
   (rotation, blade pass, gear mesh with sidebands, motor commutation), impacts as
   impulse trains filtered by decaying resonances (valve strokes, rail joints, slide
   ends), broadband flow / friction noise shaped by resonances and amplitude-modulated.
4. An anomaly, for anomalous test clips, changes the model: *subtle* ones stay close to
   normal or to another section (a small speed or resonance shift, a faint extra tone, a
   slightly irregular rhythm, a little more friction), *gross* ones are far from it
   (rattles, scraping, knocks, cavitation, a missing component).  Severity is drawn per
   clip, so subtle and gross overlap a little at their edges.
5. Factory background noise (coloured noise, rumble, mains hum, distant clanks) is added
   at a per-clip SNR, then the clip gets a microphone gain and is written as 16-bit PCM.

Layout written under ``root`` (DCASE 2021 names; section 00-02 = development set,
03-05 = additional training set + evaluation set)::

    dev_data/<type>/train/section_00_source_train_normal_0000_<attrs>.wav
    dev_data/<type>/source_test/section_00_source_test_anomaly_0000_<attrs>.wav
    eval_data/<type>/train/section_03_source_train_normal_0000_<attrs>.wav
    eval_data/<type>/source_test/section_03_source_test_0000.wav        (anonymised, shuffled)
    ground_truth/ground_truth_<type>_section_03_source_test.csv          (official format)
    minasd_synth_labels.csv   (every test clip: label, anomaly kind, severity)
    minasd_synth.json         (manifest; written last)

Only the source domain is generated (the paper uses the source domain only).

**Generator 2.0** (issue 23, ``docs/factory_v2_design.md``) lives beside 1.2 and is chosen
per call (``make_dataset(..., generator="2.0")``, ``render_clip(..., generator="2.0")``,
``minasd synth --generator 2.0``): faults as changes of the machine's own sound at graded
damage levels (:mod:`minasd.synth_machines`), noise scenes mixed by the documented MIMII and
ToyADMOS2 rules (:mod:`minasd.synth_scenes`), calibration knobs in ``synth_knobs.json``.  It
is *uncalibrated* and not the default: :data:`GENERATOR_VERSION` stays 1.2 until the
calibration freezes 2.0, and every 1.2 clip is unchanged, byte for byte.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time
import zlib
from dataclasses import dataclass, asdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .config import DEV_SECTIONS, EVAL_SECTIONS, MACHINE_TYPES, SAMPLE_RATE, SECTIONS
from .io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text

#: Bump when the sound of any clip changes: a rerun into a root made by another version refuses.
GENERATOR_VERSION = "1.2"
#: Generator versions this module can write ("2.0": uncalibrated, see synth_machines).
GENERATORS = ("1.2", "2.0")
MANIFEST_NAME = "minasd_synth.json"
PARTIAL_NAME = "minasd_synth.partial.json"
LABELS_NAME = "minasd_synth_labels.csv"
GROUND_TRUTH_DIR = "ground_truth"
SYNTH_NOTE = "synthetic data — not DCASE"

SR = SAMPLE_RATE
TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class SizeSpec:
    """Clip counts of one named size, per section.

    Attributes:
        n_train: normal training clips per section.
        n_test_normal: normal source-test clips per section.
        n_test_anomaly: anomalous source-test clips per section.
        seconds: clip duration in seconds.
    """

    n_train: int
    n_test_normal: int
    n_test_anomaly: int
    seconds: float


#: Named sizes.  ``tiny`` (tests) uses 3 s clips to stay within seconds of CPU time: a 3 s
#: clip still holds one 2 s segment, and every sound model is stationary or periodic on that
#: scale.  ``medium`` exists for quick difficulty checks; ``full`` has the paper's counts; ``protocol`` has
#: the paper's test counts and 60 training clips per section (the committed results set).
SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec(8, 3, 3, 3.0),
    "small": SizeSpec(60, 20, 20, 10.0),
    "medium": SizeSpec(200, 50, 50, 10.0),
    "full": SizeSpec(1000, 100, 100, 10.0),
    # the committed results set (`minasd results`): test sections at the paper's size, so that one
    # AUC means something; training clips as many as the CPU budget of the protocol allows
    "protocol": SizeSpec(60, 100, 100, 10.0),
    # calibration of generator 2.0 only (issue 23): views of its first n training clips are
    # exact subsets, since clip i is the same clip whatever the size
    "sweep": SizeSpec(500, 100, 100, 10.0),
}


# --------------------------------------------------------------------------------------
# Signal building blocks (all return float32 arrays of n samples)
# --------------------------------------------------------------------------------------


def _t(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / SR


def _drift(rng: np.random.Generator, n: int, depth: float, fmax: float = 0.4) -> np.ndarray:
    """Slow random relative speed drift, 1 + sum of three slow sines, shape (n,)."""
    t = np.arange(n, dtype=np.float32) * np.float32(TWO_PI / SR)
    out = np.ones(n, np.float32)
    for _ in range(3):
        f = rng.uniform(0.03, fmax)
        out += np.float32(depth / 3 * rng.standard_normal()) * np.sin(np.float32(f) * t + np.float32(rng.uniform(0, TWO_PI)))
    return out


def _cycles(freq: np.ndarray | float, n: int) -> np.ndarray:
    """Fractional cycle count of an instantaneous frequency (Hz), float32 in [0, 1).

    The running phase is accumulated in float64 and wrapped before conversion, so the
    float32 harmonics below keep their precision over 10 s.
    """
    if np.isscalar(freq):
        c = np.arange(n, dtype=np.float64) * (float(freq) / SR)
    else:
        c = np.cumsum(np.asarray(freq, dtype=np.float64) / SR)
    return (c % 1.0).astype(np.float32)


def _harmonics(cyc: np.ndarray, orders: Sequence[float], amps: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Sum of a_k cos(2 pi (k * cycles + random phase)) over the given orders, shape (n,)."""
    orders = np.asarray(orders, dtype=np.float32)
    amps = np.asarray(amps, dtype=np.float32)
    keep = (amps > 0) & (orders * 1.0 > 0)
    if not keep.any():
        return np.zeros(cyc.shape[0], np.float32)
    orders, amps = orders[keep], amps[keep]
    ph = rng.uniform(0, 1, size=len(orders)).astype(np.float32)
    arg = orders[:, None] * cyc[None, :] + ph[:, None]  # (K, n) cycles
    return (amps @ np.cos(np.float32(TWO_PI) * arg)).astype(np.float32)


def _shaped_noise(rng: np.random.Generator, n: int, peaks: Iterable[tuple[float, float, float]] = (),
                  tilt_db_oct: float = 0.0, floor: float = 1.0, lowcut: float = 30.0, highcut: float = 7900.0) -> np.ndarray:
    """Gaussian noise with a spectral envelope, unit RMS, shape (n,).

    The envelope (amplitude) is ``floor`` plus Lorentzian resonance peaks ``(centre Hz,
    bandwidth Hz, gain)``, times a spectral tilt in dB per octave (re 1 kHz), band-limited
    to [lowcut, highcut].  Drawn directly in the frequency domain (one inverse FFT).
    """
    nf = n // 2 + 1
    f = np.arange(nf, dtype=np.float32) * np.float32(SR / n)
    env = np.full(nf, floor, dtype=np.float32)
    for fc, bw, g in peaks:
        env += np.float32(g) / (1.0 + np.square((f - np.float32(fc)) * np.float32(2.0 / bw)))
    if tilt_db_oct:
        env *= (np.maximum(f, 20.0) * np.float32(1e-3)) ** np.float32(tilt_db_oct / 6.0206)
    env[(f < lowcut) | (f > highcut)] = 0.0
    spec = np.empty(nf, np.complex64)
    spec.real = rng.standard_normal(nf, dtype=np.float32) * env
    spec.imag = rng.standard_normal(nf, dtype=np.float32) * env
    x = np.fft.irfft(spec, n)
    return (x / (x.std() + 1e-12)).astype(np.float32)


def _kernel(rng: np.random.Generator, modes: Sequence[tuple[float, float, float]], seconds: float = 0.06) -> np.ndarray:
    """Impact response: sum of decaying sines ``(freq Hz, decay s, amp)`` plus a short noise burst."""
    m = int(seconds * SR)
    t = np.arange(m) / SR
    k = np.zeros(m)
    for f, tau, a in modes:
        k += a * np.exp(-t / tau) * np.sin(TWO_PI * f * t + rng.uniform(0, TWO_PI))
    k += 0.3 * rng.standard_normal(m) * np.exp(-t / 0.002)
    return (k / (np.abs(k).max() + 1e-12)).astype(np.float32)


def _add_events(out: np.ndarray, times: np.ndarray, amps: np.ndarray | float, kernel: np.ndarray) -> np.ndarray:
    """Add ``kernel`` scaled by ``amps`` at each event time (s), in place; returns ``out``."""
    n = out.shape[0]
    amps = np.broadcast_to(np.asarray(amps, dtype=np.float32), np.shape(times))
    for t0, a in zip(np.asarray(times), amps):
        i = int(round(t0 * SR))
        if i >= n or i + kernel.shape[0] <= 0:
            continue
        lo = max(i, 0)
        hi = min(i + kernel.shape[0], n)
        out[lo:hi] += a * kernel[lo - i:hi - i]
    return out


def _periodic_times(rng: np.random.Generator, seconds: float, period: float, jitter: float = 0.0,
                    offset: float | None = None) -> np.ndarray:
    """Event times with a given period (s) and relative timing jitter, starting at a random phase."""
    start = rng.uniform(0, period) if offset is None else offset
    k = np.arange(int(seconds / period) + 2)
    t = start + k * period + jitter * period * rng.standard_normal(k.shape[0])
    return t[(t >= 0) & (t < seconds)]


def _smooth_env(x: np.ndarray, width: int) -> np.ndarray:
    """Moving-average smoothing (for gating envelopes), same length."""
    if width <= 1:
        return x
    c = np.cumsum(np.concatenate([[0.0], x]))
    y = (c[width:] - c[:-width]) / width
    pad_l = (x.shape[0] - y.shape[0]) // 2
    return np.pad(y, (pad_l, x.shape[0] - y.shape[0] - pad_l), mode="edge")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


# --------------------------------------------------------------------------------------
# Machine types: section tables, attributes, anomaly kinds, sound models
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnomalyKind:
    """One kind of anomaly of a machine type: ``severity`` is "subtle" or "gross"."""

    name: str
    severity: str
    description: str


@dataclass(frozen=True)
class MachineModel:
    """A machine type's sound model: description, section products, attributes, anomalies."""

    name: str
    description: str
    sections: tuple[dict, ...]  # 6 product parameter sets, index = section
    attributes: Callable[[np.random.Generator, dict], tuple[str, dict]]  # -> (attr string, op point)
    anomalies: tuple[AnomalyKind, ...]
    render: Callable  # (rng, params, op, n, anomaly name | None, severity 0..1) -> (n,) float32
    snr_db: tuple[float, float]  # per-clip SNR range of the factory background
    level_db: float = -27.0  # mean RMS level of the machine in dBFS (valves are peaky: lower)


# ---- fan ---------------------------------------------------------------------------

_FAN_SECTIONS = (
    dict(f_rot=24.0, blades=7, duct=((700, 300, 3.0), (2100, 600, 1.5)), tilt=-4.0, hum=100.0, am=0.10, bpf_amp=0.8),
    dict(f_rot=25.0, blades=7, duct=((760, 300, 3.0), (2100, 600, 1.5)), tilt=-4.0, hum=100.0, am=0.10, bpf_amp=0.8),
    dict(f_rot=18.0, blades=5, duct=((520, 250, 3.0), (1600, 500, 2.0), (3500, 900, 1.0)), tilt=-3.0, hum=100.0, am=0.15, bpf_amp=1.0),
    dict(f_rot=30.0, blades=9, duct=((900, 350, 2.5), (2800, 700, 1.5)), tilt=-5.0, hum=120.0, am=0.08, bpf_amp=0.7),
    dict(f_rot=24.5, blades=7, duct=((700, 300, 3.0), (2350, 600, 1.5)), tilt=-4.0, hum=100.0, am=0.12, bpf_amp=0.8),
    dict(f_rot=21.0, blades=6, duct=((600, 250, 2.5), (1900, 500, 2.0)), tilt=-3.5, hum=120.0, am=0.12, bpf_amp=0.9),
)


def _fan_attrs(rng, p):
    s = int(rng.integers(1, 4))
    return f"strength_{s}_ambient", {"speed": {1: 0.96, 2: 1.0, 3: 1.04}[s], "level": {1: 0.85, 2: 1.0, 3: 1.15}[s]}


def _fan_render(rng, p, op, n, anomaly, sev):
    f_rot = p["f_rot"] * op["speed"] * rng.normal(1.0, 0.012)
    blades = p["blades"]
    duct = [(fc * rng.normal(1, 0.02), bw, g * rng.normal(1, 0.1)) for fc, bw, g in p["duct"]]
    am = p["am"] * rng.uniform(0.7, 1.3)
    rot_amps = np.array([0.10, 0.05, 0.03])
    extra_orders, extra_amps = [], []
    noise_gain, tilt = 1.0 * op["level"], p["tilt"] + rng.normal(0, 0.3)
    bpf_orders = blades * np.arange(1, 7)
    if anomaly == "speed_shift":
        f_rot *= 1.0 + rng.choice([-1, 1]) * (0.015 + 0.03 * sev)
    elif anomaly == "imbalance":
        rot_amps = rot_amps * (1.0 + 4.0 * sev)
        am += 0.15 * sev
    elif anomaly == "bearing_tone":
        extra_orders, extra_amps = [rng.uniform(3.2, 5.8) * 10.0], [0.03 + 0.08 * sev]
    elif anomaly == "missing_blade":
        # one blade short: the blade-pass pattern loses symmetry, the rotation order and its
        # harmonics light up across the spectrum.
        rot_amps = np.array([0.8, 0.6, 0.5, 0.4, 0.35, 0.3]) * (1.0 + 1.0 * sev)
    drift = _drift(rng, n, 0.006)
    cyc = _cycles(f_rot * drift, n)
    orders = list(np.arange(1, len(rot_amps) + 1)) + list(bpf_orders) + extra_orders
    amps = list(rot_amps) + list(p["bpf_amp"] * 0.5 ** np.arange(6)) + extra_amps
    tone = _harmonics(cyc, orders, amps, rng)
    noise = _shaped_noise(rng, n, duct, tilt)
    if anomaly == "clogging":
        # a clogged filter throttles the flow: the duct peaks move and the flow roars.
        noise = _shaped_noise(rng, n, [(fc * (0.7 - 0.2 * sev), bw, g * 3) for fc, bw, g in duct], tilt - 2)
        noise_gain *= 1.6 + 1.0 * sev
    rot_mod = 1.0 + am * np.cos(TWO_PI * cyc)
    hum = 0.08 * np.cos(TWO_PI * p["hum"] * _t(n) + rng.uniform(0, TWO_PI)).astype(np.float32)
    x = tone + 0.8 * noise_gain * noise * rot_mod + hum
    if anomaly == "blade_rattle":
        k = _kernel(rng, [(rng.uniform(2500, 4000), 0.004, 1.0), (rng.uniform(900, 1500), 0.008, 0.6)], 0.03)
        times = _periodic_times(rng, n / SR, 1.0 / f_rot, jitter=0.08)
        x = _add_events(x.copy(), times, (1.2 + 2.0 * sev) * rng.uniform(0.5, 1.0, times.shape[0]), k)
    return x


_FAN = MachineModel(
    "fan",
    "industrial fan: rotation (18-30 Hz) and blade-pass harmonics, duct-resonant flow noise "
    "amplitude-modulated at the rotation rate, motor hum",
    _FAN_SECTIONS,
    _fan_attrs,
    (
        AnomalyKind("speed_shift", "subtle", "rotation 1.5-4.5 % off nominal, toward a neighbouring product"),
        AnomalyKind("imbalance", "subtle", "unbalanced rotor: stronger rotation harmonics and deeper flow modulation"),
        AnomalyKind("bearing_tone", "subtle", "faint non-harmonic bearing tone"),
        AnomalyKind("blade_rattle", "gross", "a loose blade hits the guard once per revolution"),
        AnomalyKind("clogging", "gross", "clogged filter: duct resonances drop, flow noise much louder"),
        AnomalyKind("missing_blade", "gross", "a missing blade: strong rotation-order harmonics"),
    ),
    _fan_render,
    (3.0, 12.0),
)


# ---- gearbox -----------------------------------------------------------------------

_GEAR_SECTIONS = (
    dict(f_in=20.0, z1=23, z2=41, house=((1200, 400, 2.0), (3100, 800, 1.0)), sb=0.25),
    dict(f_in=20.0, z1=25, z2=41, house=((1200, 400, 2.0), (3100, 800, 1.0)), sb=0.25),
    dict(f_in=14.0, z1=31, z2=57, house=((900, 300, 2.0), (2400, 700, 1.5)), sb=0.30),
    dict(f_in=26.0, z1=19, z2=37, house=((1500, 500, 2.0), (3600, 900, 1.0)), sb=0.20),
    dict(f_in=21.0, z1=23, z2=43, house=((1250, 400, 2.0), (3000, 800, 1.0)), sb=0.25),
    dict(f_in=17.0, z1=29, z2=47, house=((1000, 350, 2.0), (2700, 800, 1.2)), sb=0.28),
)


def _gear_attrs(rng, p):
    volt = float(rng.choice([1.0, 1.5, 2.0]))
    wt = int(rng.choice([0, 30, 80]))
    return f"volt_{volt:.1f}_wt_{wt}", {"speed": 0.92 + 0.08 * volt / 1.5 * 1.0 - 0.0, "load": 1.0 + wt / 200.0}


def _gear_render(rng, p, op, n, anomaly, sev):
    f_in = p["f_in"] * op["speed"] * rng.normal(1.0, 0.012)
    z1, z2 = p["z1"], p["z2"]
    f_out = f_in * z1 / z2
    sb = p["sb"] * op["load"] * rng.uniform(0.8, 1.2)
    house = [(fc * rng.normal(1, 0.02), bw, g) for fc, bw, g in p["house"]]
    mesh_amps = np.array([1.0, 0.5, 0.3, 0.15]) * op["load"]
    rot_extra = 0.0
    if anomaly == "speed_shift":
        f_in *= 1.0 + rng.choice([-1, 1]) * (0.015 + 0.03 * sev)
        f_out = f_in * z1 / z2
    elif anomaly == "wear":
        sb *= 1.4 + 1.2 * sev
    elif anomaly == "misalignment":
        rot_extra = 0.06 + 0.15 * sev
    drift = _drift(rng, n, 0.005)
    cyc_in = _cycles(f_in * drift, n)
    cyc_out = _cycles(f_out * drift, n)
    mesh = _harmonics(cyc_in, z1 * np.arange(1, 5), mesh_amps, rng)
    # shaft-rate amplitude modulation of the mesh tone = sidebands at GMF +- f_in, +- f_out
    mod = 1.0 + sb * np.cos(TWO_PI * cyc_in) + 0.6 * sb * np.cos(TWO_PI * cyc_out)
    shafts = _harmonics(cyc_in, [1, 2, 3], [0.05, 0.03 + rot_extra, 0.01 + rot_extra / 2], rng)
    noise = _shaped_noise(rng, n, house, -3.0 + rng.normal(0, 0.3))
    x = mesh * mod + shafts + 0.35 * noise * (1.0 + 0.2 * np.cos(TWO_PI * cyc_in))
    if anomaly == "broken_tooth":
        k = _kernel(rng, [(house[0][0], 0.01, 1.0), (house[1][0], 0.004, 0.7)], 0.05)
        times = _periodic_times(rng, n / SR, 1.0 / f_in, jitter=0.01)
        x = _add_events(x, times, 1.0 + 2.0 * sev, k)
    elif anomaly == "scraping":
        scrape = _shaped_noise(rng, n, [(rng.uniform(3000, 5000), 2000, 3.0)], 0.0)
        gate = np.clip(np.cos(TWO_PI * cyc_out), 0, None) ** 2
        x = x + (0.5 + 0.8 * sev) * scrape * gate
    return x


_GEARBOX = MachineModel(
    "gearbox",
    "gearbox: gear-mesh harmonics (teeth x shaft speed) with shaft-rate sidebands that grow with "
    "load, shaft tones, housing-resonant noise",
    _GEAR_SECTIONS,
    _gear_attrs,
    (
        AnomalyKind("speed_shift", "subtle", "input speed 1.5-4.5 % off nominal"),
        AnomalyKind("wear", "subtle", "worn teeth: stronger mesh sidebands"),
        AnomalyKind("misalignment", "subtle", "misaligned shaft: faint 2x and 3x shaft tones"),
        AnomalyKind("broken_tooth", "gross", "a broken tooth knocks once per input revolution"),
        AnomalyKind("scraping", "gross", "metal scraping once per output revolution"),
    ),
    _gear_render,
    (0.0, 10.0),
)


# ---- pump --------------------------------------------------------------------------

_PUMP_SECTIONS = (
    dict(f_rot=48.0, vanes=5, pipe=((300, 150, 4.0), (1100, 400, 2.0)), puls=0.8, vpf=0.4),
    dict(f_rot=48.0, vanes=6, pipe=((320, 150, 4.0), (1150, 400, 2.0)), puls=0.9, vpf=0.4),
    dict(f_rot=29.0, vanes=7, pipe=((220, 100, 4.0), (800, 300, 2.5)), puls=0.5, vpf=0.5),
    dict(f_rot=49.0, vanes=5, pipe=((310, 150, 4.0), (1000, 400, 2.0)), puls=1.1, vpf=0.4),
    dict(f_rot=24.0, vanes=8, pipe=((180, 90, 4.0), (650, 300, 2.5)), puls=0.6, vpf=0.5),
    dict(f_rot=39.0, vanes=6, pipe=((260, 120, 4.0), (1400, 500, 2.0)), puls=1.3, vpf=0.4),
)


def _pump_attrs(rng, p):
    flow = int(rng.integers(1, 4))
    return f"flow_{flow}_ambient", {"speed": 1.0, "flow": {1: 0.8, 2: 1.0, 3: 1.25}[flow]}


def _pump_render(rng, p, op, n, anomaly, sev):
    f_rot = p["f_rot"] * rng.normal(1.0, 0.01)
    pipe = [(fc * rng.normal(1, 0.03), bw, g) for fc, bw, g in p["pipe"]]
    flow = op["flow"] * rng.uniform(0.9, 1.1)
    puls_f = p["puls"] * rng.uniform(0.8, 1.2)
    puls_d = 0.15
    t = _t(n)
    if anomaly == "speed_shift":
        f_rot *= 1.0 + rng.choice([-1, 1]) * (0.015 + 0.03 * sev)
    elif anomaly == "flow_change":
        pipe = [(fc * (1.0 + 0.015 + 0.035 * sev), bw, g) for fc, bw, g in pipe]
        puls_d += 0.05 + 0.1 * sev
    drift = _drift(rng, n, 0.004)
    cyc = _cycles(f_rot * drift, n)
    tone = _harmonics(cyc, [1, 2] + list(p["vanes"] * np.arange(1, 4)), [0.15, 0.06] + list(p["vpf"] * 0.5 ** np.arange(3)), rng)
    noise = _shaped_noise(rng, n, pipe, -4.0 + rng.normal(0, 0.4))
    surge = 1.0 + puls_d * np.sin(TWO_PI * puls_f * t + rng.uniform(0, TWO_PI))
    x = tone + 1.0 * flow * noise * surge.astype(np.float32)
    if anomaly == "leak":
        hiss = _shaped_noise(rng, n, [(rng.uniform(4500, 6500), 1500, 4.0)], 0.0, floor=0.1)
        x = x + (0.04 + 0.1 * sev) * hiss
    elif anomaly == "cavitation":
        crack = _shaped_noise(rng, n, [(rng.uniform(2500, 5000), 3000, 2.0)], 0.0)
        bursts = (rng.random(n // 160) < 0.15 + 0.3 * sev).astype(np.float32)
        gate = np.repeat(bursts, 160)[:n]
        gate = np.pad(gate, (0, n - gate.shape[0]))
        x = x + (0.6 + 1.0 * sev) * crack * gate
    elif anomaly == "clogging":
        slow = 1.0 + (0.5 + 0.4 * sev) * np.sin(TWO_PI * rng.uniform(0.3, 0.7) * t)
        x = tone * (1.5 + sev) + flow * noise * slow.astype(np.float32) * 0.6
    return x


_PUMP = MachineModel(
    "pump",
    "water pump: flow noise shaped by pipe resonances with slow pressure pulsation, "
    "rotation and vane-pass tones",
    _PUMP_SECTIONS,
    _pump_attrs,
    (
        AnomalyKind("speed_shift", "subtle", "motor speed 1.5-4.5 % off nominal"),
        AnomalyKind("leak", "subtle", "faint high-frequency hiss of a leaking seal"),
        AnomalyKind("flow_change", "subtle", "pipe resonances 1.5-5 % higher, slightly deeper pulsation"),
        AnomalyKind("cavitation", "gross", "bursts of broadband crackle from collapsing bubbles"),
        AnomalyKind("clogging", "gross", "clogged intake: strong surging, louder vane-pass tones"),
    ),
    _pump_render,
    (-3.0, 6.0),
)


# ---- slider ------------------------------------------------------------------------

_SLIDER_SECTIONS = (
    dict(period=1.6, duty=0.7, motor=260.0, fric=((1800, 800, 3.0),), click=(2200, 3600), poles=4),
    dict(period=1.7, duty=0.7, motor=250.0, fric=((1800, 800, 3.0),), click=(2300, 3600), poles=4),
    dict(period=2.4, duty=0.6, motor=180.0, fric=((1200, 600, 3.0),), click=(1600, 2900), poles=6),
    dict(period=1.1, duty=0.8, motor=340.0, fric=((2500, 900, 3.0),), click=(2900, 4400), poles=4),
    dict(period=1.6, duty=0.65, motor=270.0, fric=((1900, 800, 3.0),), click=(2200, 3700), poles=4),
    dict(period=2.0, duty=0.7, motor=210.0, fric=((1500, 700, 3.0),), click=(1900, 3200), poles=6),
)


def _slider_attrs(rng, p):
    vel = int(rng.choice([300, 400, 500]))
    ac = float(rng.choice([0.03, 0.05, 0.07]))
    return f"vel_{vel}_ac_{ac:.2f}", {"speed": vel / 400.0, "accel": ac / 0.05}


def _slider_render(rng, p, op, n, anomaly, sev):
    seconds = n / SR
    period = p["period"] / (0.85 + 0.15 * op["speed"]) * rng.normal(1.0, 0.01)
    jitter = 0.005
    fric_gain = 0.5
    fric = list(p["fric"])
    if anomaly == "irregular_rhythm":
        jitter = 0.02 + 0.04 * sev
    elif anomaly == "more_friction":
        fric_gain *= 1.08 + 0.32 * sev  # +8 % to +40 % (v1.2; was +20 % to +80 %)
    # strokes alternate direction; each stroke accelerates, cruises, decelerates, then stops
    starts = _periodic_times(rng, seconds + period, period / 2, jitter=jitter, offset=-rng.uniform(0, period / 2))
    t = _t(n)
    vel = np.zeros(n, np.float32)
    ramp = 0.08 / op["accel"] * (period / 1.6)
    move = p["duty"] * period / 2
    for s0 in starts:
        i0, i1 = max(int(s0 * SR), 0), min(int((s0 + move) * SR), n)
        if i1 <= i0:
            continue
        tt = t[i0:i1] - s0
        v = np.minimum(1.0, np.minimum(tt, move - tt) / ramp)
        vel[i0:i1] = np.clip(v, 0, 1)
    f_m = p["motor"] * op["speed"] * rng.normal(1.0, 0.01) * (0.3 + 0.7 * vel)
    cyc = _cycles(f_m, n)
    motor = _harmonics(cyc, [1, 2, p["poles"], 2 * p["poles"]], [0.3, 0.15, 0.25, 0.08], rng) * vel
    noise = _shaped_noise(rng, n, fric, -2.0 + rng.normal(0, 0.3)) * vel * fric_gain
    x = motor + noise
    ends = starts + move
    k = _kernel(rng, [(p["click"][0] * rng.normal(1, 0.02), 0.006, 1.0), (p["click"][1], 0.003, 0.6)], 0.04)
    x = _add_events(x, ends, 0.9 * rng.uniform(0.8, 1.2, ends.shape[0]), k)
    if anomaly == "rail_damage":
        k2 = _kernel(rng, [(rng.uniform(700, 1200), 0.012, 1.0), (rng.uniform(3000, 4000), 0.003, 0.5)], 0.06)
        x = _add_events(x, starts + move * rng.uniform(0.3, 0.7), 2.0 + 3.0 * sev, k2)
    elif anomaly == "no_lubrication":
        squeal = _harmonics(_cycles(rng.uniform(1500, 3000) * (0.98 + 0.04 * vel), n), [1, 2], [1.0, 0.3], rng)
        # squared severity (v1.2): a slightly dry rail squeals faintly, a dry one loudly
        x = x + (0.15 + 0.6 * sev ** 2) * squeal * vel
    elif anomaly == "scraping":
        scrape = _shaped_noise(rng, n, [(rng.uniform(3500, 6000), 2500, 3.0)], 0.0)
        x = x + (0.15 + 0.9 * sev ** 2) * scrape * vel * (rng.random(n) < 0.5)
    return x


_SLIDER = MachineModel(
    "slider",
    "linear slide rail: back-and-forth strokes with a speed-dependent motor whine, friction "
    "noise while moving and an end-stop click at each stroke end",
    _SLIDER_SECTIONS,
    _slider_attrs,
    (
        AnomalyKind("irregular_rhythm", "subtle", "stroke timing slightly irregular"),
        AnomalyKind("more_friction", "subtle", "a little more friction noise while moving"),
        AnomalyKind("rail_damage", "gross", "a dent in the rail knocks once per stroke"),
        AnomalyKind("no_lubrication", "gross", "dry rail squeals while moving"),
        AnomalyKind("scraping", "gross", "a loose part scrapes along the rail"),
    ),
    _slider_render,
    (-4.0, 6.0),
)


# ---- valve -------------------------------------------------------------------------

_VALVE_SECTIONS = (
    dict(pattern=(0.0, 0.35, 1.2, 1.55), cycle=2.5, open_click=(2600, 5200), close_click=(1900, 4300), flow=((3000, 1500, 2.0),)),
    dict(pattern=(0.0, 0.40, 1.2, 1.60), cycle=2.5, open_click=(2700, 5200), close_click=(1900, 4300), flow=((3000, 1500, 2.0),)),
    dict(pattern=(0.0, 0.6), cycle=1.5, open_click=(3400, 6100), close_click=(2500, 5000), flow=((4000, 2000, 2.0),)),
    dict(pattern=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25), cycle=3.0, open_click=(2200, 4700), close_click=(1600, 3800), flow=((2500, 1200, 2.0),)),
    dict(pattern=(0.0, 0.35, 1.25, 1.6), cycle=2.6, open_click=(2600, 5300), close_click=(2000, 4300), flow=((3100, 1500, 2.0),)),
    dict(pattern=(0.0, 0.8, 1.1, 1.9), cycle=3.3, open_click=(3000, 5600), close_click=(2200, 4600), flow=((3500, 1800, 2.0),)),
)


def _valve_attrs(rng, p):
    pat = int(rng.integers(0, 3))
    return f"pat_{pat:02d}_panel_open", {"tempo": {0: 0.95, 1: 1.0, 2: 1.05}[pat]}


def _valve_render(rng, p, op, n, anomaly, sev):
    seconds = n / SR
    cycle = p["cycle"] / op["tempo"] * rng.normal(1.0, 0.01)
    jitter = 0.004
    oc = [f * rng.normal(1, 0.015) for f in p["open_click"]]
    cc = [f * rng.normal(1, 0.015) for f in p["close_click"]]
    if anomaly == "irregular_timing":
        jitter = 0.015 + 0.03 * sev
    elif anomaly == "resonance_shift":
        oc = [f * (1 - 0.04 - 0.06 * sev) for f in oc]
        cc = [f * (1 - 0.04 - 0.06 * sev) for f in cc]
    pat = np.asarray(p["pattern"]) * (cycle / p["cycle"])
    offset = rng.uniform(0, cycle)
    cycles = np.arange(-1, int(seconds / cycle) + 2)
    ev = (offset + cycles[:, None] * cycle + pat[None, :]).ravel()
    ev = ev + jitter * cycle * rng.standard_normal(ev.shape[0])
    is_open = np.tile(np.arange(len(pat)) % 2 == 0, cycles.shape[0])
    t_open, t_close = ev[is_open], ev[~is_open]
    k_open = _kernel(rng, [(oc[0], 0.004, 1.0), (oc[1], 0.002, 0.6), (rng.uniform(600, 900), 0.01, 0.3)], 0.04)
    k_close = _kernel(rng, [(cc[0], 0.005, 1.0), (cc[1], 0.002, 0.5), (rng.uniform(400, 700), 0.012, 0.4)], 0.04)
    x = np.zeros(n, np.float32)
    _add_events(x, t_open, 1.0 * rng.uniform(0.85, 1.15, t_open.shape[0]), k_open)
    # a sticking valve closes late and softly: the closing click fades with severity (gone at 1)
    close_amp = 1.2 * (1.0 - sev) if anomaly == "stuck" else 1.2
    _add_events(x, t_close, close_amp * rng.uniform(0.85, 1.15, t_close.shape[0]), k_close)
    # flow hiss while the valve is open (between an open and the following close event)
    gate = np.zeros(n, np.float32)
    for a, b in zip(t_open, t_close):
        i0, i1 = max(int(a * SR), 0), min(int(b * SR), n)
        if i1 > i0:
            gate[i0:i1] = 1.0
    if anomaly == "stuck":
        # the valve does not close fully: some flow while "closed", all of it at severity 1.
        # Squared severity (v1.2): mild sticking hides under the factory noise, bad sticking does not.
        gate = np.maximum(gate, np.float32(sev ** 2))
    gate = _smooth_env(gate, 160)
    flow_gain = 0.12
    flow = _shaped_noise(rng, n, p["flow"], 0.0)
    # a leaking seat hisses while closed; faint at low severity (hidden under the factory noise)
    leak = 0.3 * sev ** 2 if anomaly == "leak" else 0.0
    x += flow_gain * flow * (gate + leak)
    if anomaly == "contamination":
        # a particle in the seat: a faint bounce a few ms after some closings
        sel = t_close[rng.random(t_close.shape[0]) < 0.5 + 0.4 * sev]
        _add_events(x, sel + rng.uniform(0.008, 0.02, sel.shape[0]), 0.15 + 0.35 * sev, k_close)
    elif anomaly == "double_knock":
        _add_events(x, t_open + rng.uniform(0.05, 0.12), 1.5 + 1.5 * sev, k_close)
    # valves are quiet between strokes: keep a solenoid hum floor
    x += 0.02 * np.cos(TWO_PI * 100.0 * _t(n) + rng.uniform(0, TWO_PI)).astype(np.float32)
    return x


_VALVE = MachineModel(
    "valve",
    "solenoid valve: a repeating pattern of open/close clicks (decaying metallic resonances) with "
    "flow hiss while open, quiet in between",
    _VALVE_SECTIONS,
    _valve_attrs,
    (
        AnomalyKind("irregular_timing", "subtle", "open/close timing slightly irregular"),
        AnomalyKind("resonance_shift", "subtle", "click resonances 4-10 % lower (worn or loose seat)"),
        AnomalyKind("contamination", "subtle", "a faint bounce after some closings (particle in the seat)"),
        AnomalyKind("leak", "gross", "hiss of flow even while closed"),
        AnomalyKind("stuck", "gross", "the valve does not close fully: softer closing click, flow while closed"),
        AnomalyKind("double_knock", "gross", "a second hard knock after each opening"),
    ),
    _valve_render,
    (0.0, 10.0),
    -38.0,
)


# ---- ToyCar ------------------------------------------------------------------------

_CAR_SECTIONS = (
    dict(f_m=160.0, poles=3, gear=12, ratio=8.0, road=((900, 600, 2.0), (2600, 900, 1.0))),
    dict(f_m=168.0, poles=3, gear=12, ratio=8.0, road=((950, 600, 2.0), (2600, 900, 1.0))),
    dict(f_m=120.0, poles=5, gear=10, ratio=6.0, road=((700, 500, 2.0), (2000, 800, 1.2))),
    dict(f_m=205.0, poles=3, gear=14, ratio=10.0, road=((1100, 700, 2.0), (3000, 900, 1.0))),
    dict(f_m=162.0, poles=3, gear=13, ratio=8.0, road=((900, 600, 2.0), (2800, 900, 1.0))),
    dict(f_m=140.0, poles=5, gear=11, ratio=7.0, road=((800, 500, 2.0), (2300, 800, 1.2))),
)

_CAR_NAMES = ("A1", "A2", "B1", "B2", "C1", "C2")


def _car_attrs(rng, p):
    spd = int(rng.choice([28, 31, 34]))
    mic = int(rng.integers(1, 3))
    return f"car_{p['car']}_spd_{spd}V_mic_{mic}", {"speed": spd / 31.0, "mic": mic}


def _car_render(rng, p, op, n, anomaly, sev):
    f_m = p["f_m"] * op["speed"] * rng.normal(1.0, 0.012)
    road = [(fc * rng.normal(1, 0.03), bw, g) for fc, bw, g in p["road"]]
    mesh_sb = 0.15
    if anomaly == "speed_shift":
        f_m *= 1.0 + rng.choice([-1, 1]) * (0.015 + 0.03 * sev)
    elif anomaly == "gear_wear":
        mesh_sb = 0.35 + 0.4 * sev
    drift = _drift(rng, n, 0.01, fmax=0.8)
    cyc = _cycles(f_m * drift, n)
    f_wheel = f_m / p["ratio"]
    cyc_w = _cycles(f_wheel * drift, n)
    motor = _harmonics(cyc, [1, 2, p["poles"], 2 * p["poles"], 3 * p["poles"]], [0.25, 0.1, 0.5, 0.2, 0.1], rng)
    gear = _harmonics(cyc_w, [p["gear"] * p["ratio"] / 2.0, p["gear"] * p["ratio"]], [0.25, 0.1], rng)
    gear *= 1.0 + mesh_sb * np.cos(TWO_PI * cyc_w)
    noise = _shaped_noise(rng, n, road, -3.0 + rng.normal(0, 0.4))
    roll = 1.0 + 0.1 * np.cos(TWO_PI * cyc_w)
    x = motor + gear + 0.5 * noise * roll
    if anomaly == "shaft_bend":
        x = x * (1.0 + (0.1 + 0.2 * sev) * np.cos(TWO_PI * cyc_w * 2))
    elif anomaly == "wheel_damage":
        k = _kernel(rng, [(rng.uniform(1500, 2500), 0.006, 1.0), (rng.uniform(400, 700), 0.015, 0.5)], 0.05)
        x = _add_events(x, _periodic_times(rng, n / SR, 1.0 / f_wheel, 0.02), 1.0 + 1.5 * sev, k)
    elif anomaly == "tire_scrape":
        scr = _shaped_noise(rng, n, [(rng.uniform(3000, 5500), 2500, 3.0)], 0.0)
        x = x + (0.4 + 0.8 * sev) * scr * np.clip(np.cos(TWO_PI * cyc_w), 0, None)
    return x


_TOYCAR = MachineModel(
    "ToyCar",
    "toy car on a belt: DC motor with commutator harmonics, gear whine with wheel-rate "
    "sidebands, rolling noise",
    tuple(dict(s, car=c) for s, c in zip(_CAR_SECTIONS, _CAR_NAMES)),
    _car_attrs,
    (
        AnomalyKind("speed_shift", "subtle", "motor speed 1.5-4.5 % off nominal"),
        AnomalyKind("gear_wear", "subtle", "worn gear: stronger wheel-rate sidebands of the gear whine"),
        AnomalyKind("shaft_bend", "subtle", "bent shaft: the whole sound wobbles at twice the wheel rate"),
        AnomalyKind("wheel_damage", "gross", "chipped wheel knocks once per wheel turn"),
        AnomalyKind("tire_scrape", "gross", "a tyre scrapes the body once per wheel turn"),
    ),
    _car_render,
    (0.0, 10.0),
)


# ---- ToyTrain ----------------------------------------------------------------------

_TRAIN_SECTIONS = (
    dict(f_m=110.0, joint_period=0.50, bogie=0.060, loop=7.0, joint=(1400, 3100), poles=3),
    dict(f_m=115.0, joint_period=0.48, bogie=0.060, loop=7.0, joint=(1450, 3100), poles=3),
    dict(f_m=85.0, joint_period=0.70, bogie=0.080, loop=9.0, joint=(1100, 2600), poles=5),
    dict(f_m=140.0, joint_period=0.38, bogie=0.045, loop=5.5, joint=(1800, 3600), poles=3),
    dict(f_m=112.0, joint_period=0.50, bogie=0.065, loop=7.2, joint=(1500, 3200), poles=3),
    dict(f_m=95.0, joint_period=0.62, bogie=0.070, loop=8.0, joint=(1250, 2800), poles=5),
)
_TRAIN_NAMES = ("E1", "E2", "F1", "F2", "G1", "G2")


def _train_attrs(rng, p):
    spd = int(rng.choice([5, 6, 7]))
    mic = int(rng.integers(1, 3))
    return f"car_{p['car']}_spd_{spd}_mic_{mic}", {"speed": spd / 6.0, "mic": mic}


def _train_render(rng, p, op, n, anomaly, sev):
    seconds = n / SR
    speed = op["speed"] * rng.normal(1.0, 0.012)
    jitter = 0.01
    f_m = p["f_m"] * speed
    joint = list(p["joint"])
    if anomaly == "speed_shift":
        speed *= 1.0 + rng.choice([-1, 1]) * (0.015 + 0.03 * sev)
        f_m = p["f_m"] * speed
    elif anomaly == "irregular_joints":
        jitter = 0.04 + 0.06 * sev
    elif anomaly == "motor_hum_shift":
        f_m *= 1.0 + rng.choice([-1, 1]) * (0.015 + 0.03 * sev)
    t = _t(n)
    # the train circles a loop: distance to the microphone (and so the level) varies slowly
    loop = p["loop"] / speed
    dist = 1.0 + 0.35 * np.cos(TWO_PI * t / loop + rng.uniform(0, TWO_PI))
    drift = _drift(rng, n, 0.008)
    cyc = _cycles(f_m * drift, n)
    motor = _harmonics(cyc, [1, 2, p["poles"], 2 * p["poles"]], [0.2, 0.1, 0.3, 0.1], rng)
    noise = _shaped_noise(rng, n, [(700, 500, 2.0), (2200, 900, 1.0)], -4.0 + rng.normal(0, 0.4))
    x = motor + 0.3 * noise
    jp = p["joint_period"] / speed
    base = _periodic_times(rng, seconds, jp, jitter=jitter)
    times = np.concatenate([base, base + p["bogie"] / speed])
    k = _kernel(rng, [(joint[0] * rng.normal(1, 0.02), 0.006, 1.0), (joint[1], 0.003, 0.5)], 0.04)
    x = _add_events(x, times, 0.8 * rng.uniform(0.8, 1.2, times.shape[0]), k)
    if anomaly == "flat_wheel":
        k2 = _kernel(rng, [(rng.uniform(500, 900), 0.01, 1.0), (rng.uniform(2000, 3000), 0.004, 0.5)], 0.05)
        x = _add_events(x, _periodic_times(rng, seconds, jp / 3.3, 0.01), 0.8 + 1.2 * sev, k2)
    elif anomaly == "derail_scrape":
        scr = _shaped_noise(rng, n, [(rng.uniform(2500, 5000), 3000, 3.0)], 0.0)
        gate = (np.sin(TWO_PI * t / (loop * rng.uniform(0.3, 0.6))) > 0.2).astype(np.float32)
        x = x + (0.4 + 0.8 * sev) * scr * _smooth_env(gate, 800)
    elif anomaly == "loose_coupler":
        k3 = _kernel(rng, [(rng.uniform(3000, 4500), 0.003, 1.0)], 0.02)
        rt = np.sort(rng.uniform(0, seconds, int((8 + 20 * sev) * seconds)))
        x = _add_events(x, rt, 0.6 + 0.8 * sev, k3)
    return x * dist.astype(np.float32)


_TOYTRAIN = MachineModel(
    "ToyTrain",
    "toy train on a loop: motor hum, click pairs at rail joints (front and rear bogie), rolling "
    "noise, level rising and falling as the train passes the microphone",
    tuple(dict(s, car=c) for s, c in zip(_TRAIN_SECTIONS, _TRAIN_NAMES)),
    _train_attrs,
    (
        AnomalyKind("speed_shift", "subtle", "train 1.5-4.5 % faster or slower"),
        AnomalyKind("irregular_joints", "subtle", "rail-joint clicks slightly irregular (loose track)"),
        AnomalyKind("motor_hum_shift", "subtle", "motor hum 1.5-4.5 % off (worn gear)"),
        AnomalyKind("flat_wheel", "gross", "a flat wheel knocks every wheel turn"),
        AnomalyKind("derail_scrape", "gross", "a derailed bogie scrapes along the track"),
        AnomalyKind("loose_coupler", "gross", "a loose coupler rattles at random"),
    ),
    _train_render,
    (0.0, 10.0),
)

MODELS: dict[str, MachineModel] = {m.name: m for m in (_FAN, _GEARBOX, _PUMP, _VALVE, _SLIDER, _TOYCAR, _TOYTRAIN)}
assert set(MODELS) == set(MACHINE_TYPES), "synth models must cover config.MACHINE_TYPES exactly"


# --------------------------------------------------------------------------------------
# Background and clip assembly
# --------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Factory background, unit RMS: coloured noise, rumble, mains hum, distant clanks."""
    x = _shaped_noise(rng, n, [(rng.uniform(80, 200), 150, 6.0), (rng.uniform(800, 2000), 1500, 1.0)],
                      rng.uniform(-5.0, -2.0))
    hum = _harmonics(_cycles(50.0, n), [1, 2, 3], rng.uniform(0.0, 0.3, 3), rng)
    x = x + hum
    n_clank = rng.poisson(0.4 * n / SR)
    if n_clank:
        k = _kernel(rng, [(rng.uniform(300, 1500), 0.05, 1.0), (rng.uniform(2000, 4000), 0.02, 0.4)], 0.25)
        x = _add_events(x, rng.uniform(0, n / SR, n_clank), rng.uniform(0.5, 2.0, n_clank), k)
    return (x / _rms(x)).astype(np.float32)


def _type_key(machine: str) -> int:
    return zlib.crc32(machine.encode("ascii"))


_SPLIT_CODE = {"train": 0, "test_normal": 1, "test_anomaly": 2, "demo": 3}


def clip_rng(seed: int, machine: str, section: int, split: str, index: int) -> np.random.Generator:
    """The random generator of one clip, seeded from ``(seed, type, section, split, index)``.

    Independent of generation order, so parallel and resumed runs give identical bytes.
    ``split`` is "train", "test_normal", "test_anomaly" or "demo".  Book: chapter 1.
    """
    ss = np.random.SeedSequence([int(seed), _type_key(machine), int(section), _SPLIT_CODE[split], int(index)])
    return np.random.default_rng(ss)


def anomaly_plan(machine: str, index: int) -> tuple[AnomalyKind, float]:
    """Anomaly kind of the ``index``-th anomalous test clip of a section, and a severity draw slot.

    Even indices are subtle, odd ones gross, each cycling through that class's kinds, so
    every test section with at least two anomalous clips holds both classes.
    """
    kinds = MODELS[machine].anomalies
    subtle = [k for k in kinds if k.severity == "subtle"]
    gross = [k for k in kinds if k.severity == "gross"]
    group = subtle if index % 2 == 0 else gross
    return group[(index // 2) % len(group)], 0.0


def render_clip(machine: str, section: int, anomaly: str | None = None, severity: float | None = None,
                seed: int = 0, seconds: float = 10.0, split: str = "demo", index: int = 0, *,
                generator: str = "1.2", knobs: "dict | None" = None,
                trace: "dict | None" = None) -> tuple[np.ndarray, dict]:
    """Render one clip in memory, without writing anything.

    Args:
        machine: machine type (one of ``config.MACHINE_TYPES``).
        section: section (product) 0-5.
        anomaly: ``None`` for a normal clip, else a kind name from :func:`anomaly_kinds`
            (of the same generator).
        severity: 0-1 strength of the anomaly; ``None`` draws it like the factory does
            (1.2: subtle kinds 0.2-1, gross kinds 0.1-1; 2.0: the damage level planned for
            ``index``, low / high / mid cycling, ``synth_machines.LEVEL_RANGES``).
        seed, split, index: identify the clip's random generator (:func:`clip_rng`).
        seconds: duration in seconds.
        generator: "1.2" (default) or "2.0" (uncalibrated, :mod:`minasd.synth_machines`).
        knobs: 2.0 only: knob override ``{type: {knob: value}}`` merged into
            ``synth_knobs.json`` (``synth_machines.load_knobs``).
        trace: 2.0 only: a dict that receives event times some renderers record (valve
            ``open`` / ``close``, slider ``hits``, gearbox ``impacts``), for tests.

    Returns:
        ``(wave, info)``: float32 waveform of shape (round(seconds * 16000),), in [-1, 1],
        and a dict with the attribute string, the anomaly kind and severity, the SNR (dB)
        (2.0 adds damage_level, effective severity, scene, noise_clip, clipped samples).

    Book: chapter 1.

    >>> wave, info = render_clip("fan", 0, seconds=3.0)
    >>> wave.shape, wave.dtype
    ((48000,), dtype('float32'))
    """
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {list(GENERATORS)}, got {generator!r}")
    if machine not in MODELS:
        raise ValueError(f"unknown machine type {machine!r}; known: {list(MODELS)}")
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {list(SECTIONS)}, got {section!r}")
    if generator != "1.2":
        from .synth_machines import load_knobs

        return _render_clip_v2(machine, section, anomaly, severity, seed, seconds, split, index,
                               load_knobs(knobs)[machine], trace)
    if knobs is not None or trace is not None:
        raise ValueError("knobs and trace belong to generator 2.0; generator 1.2 has none")
    model = MODELS[machine]
    kinds = {k.name: k for k in model.anomalies}
    if anomaly is not None and anomaly not in kinds:
        raise ValueError(f"unknown anomaly kind {anomaly!r} for {machine}; known: {list(kinds)}")
    n = int(round(seconds * SR))
    if n < SR // 10:
        raise ValueError(f"seconds={seconds} is too short to render a clip (need >= 0.1 s)")
    rng = clip_rng(seed, machine, section, split, index)
    params = model.sections[section]
    attrs, op = model.attributes(rng, params)
    if anomaly is not None and severity is None:
        severity = float(rng.uniform(0.2, 1.0) if kinds[anomaly].severity == "subtle" else rng.uniform(0.1, 1.0))
    sev = float(severity) if anomaly is not None else 0.0
    # the renderer draws from its own child generator so that the background and gain below
    # do not depend on how many numbers a sound model consumed
    r_machine, r_bg = rng.spawn(2)
    x = model.render(r_machine, params, op, n, anomaly, sev).astype(np.float32)
    # level reference: the machine's normal loudness, so that an anomaly that adds sound is louder
    ref = _NORMAL_RMS.setdefault((machine, section), _nominal_rms(machine, section))
    snr = float(r_bg.uniform(*model.snr_db))
    bg = _background(r_bg, n) * (ref * 10 ** (-snr / 20.0))
    level_db = model.level_db + r_bg.uniform(-3.0, 3.0) + (-2.0 if op.get("mic", 1) == 2 else 0.0)
    wave = (x + bg) * (10 ** (level_db / 20.0) / ref)
    wave = np.clip(wave, -0.999, 0.999).astype(np.float32)
    info = {"attributes": attrs, "anomaly_kind": anomaly or "normal",
            "severity_class": kinds[anomaly].severity if anomaly else "none",
            "severity": round(sev, 4), "snr_db": round(snr, 2)}
    return wave, info


def _render_clip_v2(machine: str, section: int, anomaly: str | None, severity: float | None, seed: int,
                    seconds: float, split: str, index: int, knobs_t: dict, trace: dict | None) -> tuple[np.ndarray, dict]:
    """:func:`render_clip` for generator 2.0, with the type's effective knobs ``knobs_t``."""
    from .synth_machines import GENERATOR, LEVEL_CLASS, MODELS_V2, machine_signal
    from .synth_scenes import mix

    kinds = [f.name for f in MODELS_V2[machine].faults]
    if anomaly is not None and anomaly not in kinds:
        raise ValueError(f"unknown anomaly kind {anomaly!r} for {machine} (generator 2.0); known: {kinds}")
    if severity is not None and not 0.0 <= float(severity) <= 1.0:
        raise ValueError(f"severity must be in [0, 1] (the damage draw s), got {severity!r}")
    n = int(round(seconds * SR))
    if n < SR // 10:
        raise ValueError(f"seconds={seconds} is too short to render a clip (need >= 0.1 s)")
    rng = clip_rng(seed, machine, section, split, index)
    x, r_scene, head = machine_signal(machine, section, anomaly, severity, index, rng, n, knobs_t, trace)
    wave, mixed = mix(x, machine, section, seed, knobs_t, r_scene)
    level = head["damage_level"]
    info = {"attributes": head["attributes"], "anomaly_kind": anomaly or "normal",
            "severity_class": LEVEL_CLASS.get(level, "none"), "severity": round(head["severity"], 4),
            "damage_level": level, "effective": round(head["effective"], 4), "snr_db": mixed["snr_db"],
            "scene": mixed["scene"], "noise_clip": mixed["noise_clip"], "clipped": mixed["clipped"],
            "generator": GENERATOR}
    return wave, info


_NORMAL_RMS: dict[tuple[str, int], float] = {}


def _nominal_rms(machine: str, section: int) -> float:
    """RMS of a fixed normal 2 s rendering of a section: the level reference of its clips."""
    model = MODELS[machine]
    rng = np.random.default_rng([_type_key(machine), section, 12345])
    params = model.sections[section]
    _, op = model.attributes(rng, params)
    return _rms(model.render(rng, params, op, 2 * SR, None, 0.0))


def anomaly_kinds(machine: str | None = None, generator: str = "1.2") -> "dict[str, list] | list":
    """Anomaly kinds per machine type (or of one type), each with severity class and description.

    Generator "2.0" lists ``synth_machines.FaultKind`` (name, description, source,
    documented, character; the severity class is per clip there, from its damage level).

    Book: chapter 1.

    >>> [k.name for k in anomaly_kinds("valve") if k.severity == "gross"]
    ['leak', 'stuck', 'double_knock']
    >>> [k.documented for k in anomaly_kinds("gearbox", generator="2.0")]
    [False, False, False]
    """
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {list(GENERATORS)}, got {generator!r}")
    if generator != "1.2":
        from .synth_machines import MODELS_V2

        if machine is not None:
            return list(MODELS_V2[machine].faults)
        return {m: list(MODELS_V2[m].faults) for m in MACHINE_TYPES}
    if machine is not None:
        return list(MODELS[machine].anomalies)
    return {m: list(MODELS[m].anomalies) for m in MACHINE_TYPES}


def describe_machines() -> dict[str, str]:
    """One-line description of each machine type's sound model.  Book: chapter 1."""
    return {m: MODELS[m].description for m in MACHINE_TYPES}


def section_params(machine: str, section: int) -> dict:
    """The product parameters of one section (a copy).  Book: chapter 1."""
    return dict(MODELS[machine].sections[section])


# --------------------------------------------------------------------------------------
# Data set writer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    relpath: str
    machine: str
    section: int
    split: str  # train / test_normal / test_anomaly
    index: int  # index within (machine, section, split)
    anomaly: str | None
    seconds: float
    seed: int
    generator: str = "1.2"
    knobs: "dict | None" = None  # 2.0: the type's effective knobs


#: Columns of the labels CSV; generator 2.0 appends :data:`LABEL_COLUMNS_V2`.
LABEL_COLUMNS = ("relpath", "machine", "section", "label", "anomaly_kind", "severity_class", "severity")
LABEL_COLUMNS_V2 = ("damage_level", "snr_db", "scene")


def _plan(size: SizeSpec, seed: int, machine_types: Sequence[str], sections: Sequence[int] = SECTIONS,
          generator: str = "1.2", knobs: "dict | None" = None) -> tuple[list[_Job], list[dict], dict]:
    """All clips of a data set: jobs, label rows of the test clips, counts (``knobs``: 2.0, per type)."""
    jobs: list[_Job] = []
    labels: list[dict] = []
    counts: dict = {}
    for machine in machine_types:
        counts[machine] = {}
        for sec in sections:
            j, lab = _plan_section(size, seed, machine, sec, generator, (knobs or {}).get(machine))
            jobs += j
            labels += lab
            counts[machine][f"{sec:02d}"] = {"train": size.n_train, "source_test_normal": size.n_test_normal,
                                             "source_test_anomaly": size.n_test_anomaly}
    return jobs, labels, counts


def _plan_section(size: SizeSpec, seed: int, machine: str, sec: int, generator: str,
                  knobs_t: "dict | None") -> tuple[list[_Job], list[dict]]:
    """Jobs and label rows of one section (names, anomaly plan, anonymised order of 03-05)."""
    v2 = generator != "1.2"
    if v2:
        from .synth_machines import LEVEL_CLASS, MODELS_V2, fault_plan

        model = MODELS_V2[machine]
        plan = [fault_plan(machine, sec, i, knobs_t) for i in range(size.n_test_anomaly)]
        test = [("test_anomaly", i, k.name, lev) for i, (k, lev) in enumerate(plan)]
    else:
        model = MODELS[machine]
        sev_class = {k.name: k.severity for k in model.anomalies}
        test = [("test_anomaly", i, anomaly_plan(machine, i)[0].name, None) for i in range(size.n_test_anomaly)]
    test = [("test_normal", i, None, None) for i in range(size.n_test_normal)] + test
    ds = "dev_data" if sec in DEV_SECTIONS else "eval_data"

    # attribute strings are part of the file name: draw them exactly like render_clip
    def attrs(split, i):
        rng = clip_rng(seed, machine, sec, split, i)
        return model.attributes(rng, model.sections[sec])[0]

    jobs: list[_Job] = []
    labels: list[dict] = []
    for i in range(size.n_train):
        rel = f"{ds}/{machine}/train/section_{sec:02d}_source_train_normal_{i:04d}_{attrs('train', i)}.wav"
        jobs.append(_Job(rel, machine, sec, "train", i, None, size.seconds, seed, generator, knobs_t))
    if sec in EVAL_SECTIONS:
        order = np.random.default_rng([int(seed), _type_key(machine), sec, 99]).permutation(len(test))
    else:
        order = None
    for pos, (split, i, kind, level) in enumerate(test):
        label = "normal" if split == "test_normal" else "anomaly"
        if order is None:
            rel = f"{ds}/{machine}/source_test/section_{sec:02d}_source_test_{label}_{i:04d}_{attrs(split, i)}.wav"
        else:
            rel = f"{ds}/{machine}/source_test/section_{sec:02d}_source_test_{int(order[pos]):04d}.wav"
        jobs.append(_Job(rel, machine, sec, split, i, kind, size.seconds, seed, generator, knobs_t))
        row = {"relpath": rel, "machine": machine, "section": sec, "label": int(label == "anomaly"),
               "anomaly_kind": kind or "normal"}
        if v2:
            row.update(severity_class=LEVEL_CLASS.get(level, "none"), damage_level=level or "none",
                       snr_db=knobs_t["snr"], scene=model.sections[sec]["scene"])
        else:
            row["severity_class"] = sev_class.get(kind, "none")
        labels.append(row)
    return jobs, labels


def _render_job(job: _Job) -> tuple[str, bytes, dict]:
    import soundfile as sf

    if job.generator == "1.2":
        wave, info = render_clip(job.machine, job.section, job.anomaly, None, job.seed, job.seconds, job.split, job.index)
    else:
        wave, info = _render_clip_v2(job.machine, job.section, job.anomaly, None, job.seed, job.seconds, job.split,
                                     job.index, job.knobs, None)
    buf = io.BytesIO()
    sf.write(buf, wave, SR, subtype="PCM_16", format="WAV")
    return job.relpath, buf.getvalue(), info


def _write_job(args: tuple[str, _Job]) -> tuple[str, dict | None]:
    root, job = args
    path = Path(root) / job.relpath
    if path.exists():
        return job.relpath, None
    rel, data, info = _render_job(job)
    atomic_write_bytes(path, data)
    return rel, info


def _identity(seed: int, size: str, machine_types: Sequence[str], sections: Sequence[int] = SECTIONS,
              generator: str = GENERATOR_VERSION, knobs_sha256: str | None = None) -> dict:
    ident = {"generator_version": generator, "seed": int(seed), "size": size, "machine_types": list(machine_types),
             "sections": [int(s) for s in sections]}
    if generator != "1.2":
        ident["knobs_sha256"] = knobs_sha256
    return ident


#: Identity keys added after 1.2's first sets: the value a marker without them stands for.
_IDENTITY_DEFAULTS = {"sections": list(SECTIONS), "knobs_sha256": None}


def _check_root(root: Path, ident: dict) -> None:
    """Refuse to write into a root made with other arguments (never mix two sets)."""
    for name in (MANIFEST_NAME, PARTIAL_NAME):
        f = root / name
        if f.exists():
            try:
                old = json.loads(f.read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"{f}: unreadable synthetic-data marker ({err}); remove {root} or choose another root") from None
            old_ident = {k: old.get(k, _IDENTITY_DEFAULTS.get(k)) for k in ident}
            if old_ident != ident:
                diff = ", ".join(f"{k}: {old_ident[k]!r} there, {ident[k]!r} asked" for k in ident if old_ident[k] != ident[k])
                raise ValueError(f"{root} already holds a synthetic data set made with other arguments ({diff}); "
                                   "refusing to mix two sets: choose another --out or delete that folder")
            return
    for sub in ("dev_data", "eval_data"):
        if (root / sub).exists() and any((root / sub).iterdir()):
            raise ValueError(f"{root / sub} exists but {root} has no {MANIFEST_NAME}: it is not a minasd synthetic "
                               "set (real data?); refusing to write into it")


def make_dataset(root: str | Path, size: str = "tiny", seed: int = 0, machine_types: Sequence[str] | None = None,
                 workers: int | None = None, progress: bool = True, *, generator: str = "1.2",
                 sections: Sequence[int] | None = None, knobs: "dict | None" = None) -> Path:
    """Write a synthetic data set in the DCASE 2021 Task 2 layout under ``root``.

    Args:
        root: output folder (created).  Sizes ``small``/``full`` belong outside the repository.
        size: "tiny" (tests: 8 train + 3 normal + 3 anomalous test clips per section, 3 s
            clips), "small" (60 / 20 / 20, 10 s), "medium" (200 / 50 / 50), "full" (the
            paper's 1,000 / 100 / 100; about 16 GB), "protocol" or "sweep" (calibration).
        seed: base seed; every clip's generator derives from it (:func:`clip_rng`).
        machine_types: subset of ``config.MACHINE_TYPES`` (default all seven).
        workers: processes (default: all CPU cores; 1 = in this process).
        progress: show a tqdm progress bar.
        generator: "1.2" (default) or "2.0" (uncalibrated; labels gain the columns
            damage_level, snr_db, scene).
        sections: subset of section numbers to write, e.g. ``(0, 1, 2)`` (default all six).
        knobs: 2.0 only: knob override ``{type: {knob: value}}`` (``synth_machines.load_knobs``);
            the effective knobs' hash is part of the set's identity.

    Returns:
        ``root`` as a Path.  A rerun with the same arguments skips finished clips (each clip
        is written atomically, so an interrupted run resumes); a rerun with another seed,
        size, type list, section list, generator version or knob values refuses with an error.

    Book: chapter 1.
    """
    machine_types, sections, knobs_all = _check_args(size, machine_types, generator, sections, knobs)
    spec = SIZES[size]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sha = None
    if knobs_all is not None:
        from .synth_machines import knobs_sha256
        from .synth_scenes import reference_rms

        sha = knobs_sha256(knobs_all, machine_types)
        for m in machine_types:  # computed once here, inherited by the worker processes
            reference_rms(m, knobs_all[m])
    ident = _identity(seed, size, machine_types, sections, generator, sha)
    _check_root(root, ident)
    if not (root / MANIFEST_NAME).exists():
        atomic_write_json(root / PARTIAL_NAME, dict(ident, synthetic=True, note=SYNTH_NOTE, status="in progress"))

    jobs, labels, counts = _plan(spec, seed, machine_types, sections, generator, knobs_all)
    # an interrupted run can leave the temporary files of atomic writes behind: remove them
    for ds in ("dev_data", "eval_data"):
        for stale in (root / ds).glob("*/*/.*.wav.*.tmp"):
            stale.unlink(missing_ok=True)
    todo = [j for j in jobs if not (root / j.relpath).exists()]
    t0 = time.time()
    infos = _run_jobs(root, todo, workers, f"synth {size} -> {root}", progress)
    elapsed = time.time() - t0

    _write_labels(root, jobs, labels, machine_types, sections, generator)
    manifest = dict(
        ident,
        synthetic=True,
        note=SYNTH_NOTE,
        sample_rate=SR,
        clip_seconds=spec.seconds,
        domains=["source"],
        counts=counts,
        n_clips=len(jobs),
        labels_file=LABELS_NAME,
        ground_truth_dir=GROUND_TRUTH_DIR,
        size_spec=asdict(spec),
        last_run={"written": len(todo), "seconds": round(elapsed, 1)},
    )
    if knobs_all is not None:
        manifest.update(knobs={m: knobs_all[m] for m in machine_types}, knobs_status="uncalibrated",
                        # clips with at least one clipped sample, among those written by the last run
                        n_clipped=sum(1 for i in infos.values() if i and i.get("clipped")))
    atomic_write_json(root / MANIFEST_NAME, manifest)
    (root / PARTIAL_NAME).unlink(missing_ok=True)
    return root


def _check_args(size: str, machine_types: Sequence[str] | None, generator: str, sections: Sequence[int] | None,
                knobs: "dict | None") -> tuple[list[str], list[int], "dict | None"]:
    """Validated ``(machine_types, sections, knobs per type or None)`` of :func:`make_dataset`."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size!r}")
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {list(GENERATORS)}, got {generator!r}")
    machine_types = list(MACHINE_TYPES if machine_types is None else machine_types)
    unknown = [m for m in machine_types if m not in MODELS]
    if unknown or not machine_types:
        raise ValueError(f"machine_types: unknown {unknown} (known: {list(MACHINE_TYPES)})")
    machine_types = [m for m in MACHINE_TYPES if m in machine_types]  # canonical order
    sections = list(SECTIONS if sections is None else sections)
    bad = [s for s in sections if s not in SECTIONS]
    if bad or not sections:
        raise ValueError(f"sections: unknown {bad} (known: {list(SECTIONS)})")
    sections = [s for s in SECTIONS if s in sections]
    if generator == "1.2":
        if knobs is not None:
            raise ValueError("knobs belong to generator 2.0; generator 1.2 has none")
        return machine_types, sections, None
    from .synth_machines import load_knobs

    return machine_types, sections, load_knobs(knobs)


def _run_jobs(root: Path, todo: list[_Job], workers: int | None, desc: str, progress: bool) -> dict[str, dict]:
    """Render and write the clips of ``todo`` (in processes), returning their info dicts."""
    infos: dict[str, dict] = {}
    if not todo:
        return infos
    n_workers = workers or os.cpu_count() or 1
    n_workers = max(1, min(n_workers, len(todo)))
    from minasd.progress import tqdm

    bar = tqdm(total=len(todo), desc=desc, unit="clip", disable=not progress)
    args = [(str(root), j) for j in todo]
    if n_workers == 1:
        for a in args:
            rel, info = _write_job(a)
            infos[rel] = info
            bar.update()
    else:
        import multiprocessing as mp

        ctx = mp.get_context("fork") if hasattr(os, "fork") else mp.get_context()
        with ctx.Pool(n_workers) as pool:
            for rel, info in pool.imap_unordered(_write_job, args, chunksize=8):
                infos[rel] = info
                bar.update()
    bar.close()
    return infos


def _write_labels(root: Path, jobs: list[_Job], labels: list[dict], machine_types: Sequence[str],
                  sections: Sequence[int], generator: str) -> None:
    """Write the official ground-truth files of sections 03-05 and the labels CSV."""
    # severities: the value drawn for each test clip (cheap to recompute for skipped clips:
    # the draw happens before rendering, so re-rendering is not needed)
    sev_of = {j.relpath: _severity_of(j) for j in jobs if j.split != "train"}
    gt_dir = root / GROUND_TRUTH_DIR
    for machine in machine_types:
        for sec in (s for s in EVAL_SECTIONS if s in sections):
            rows = sorted((r for r in labels if r["machine"] == machine and r["section"] == sec), key=lambda r: r["relpath"])
            text = "".join(f"{Path(r['relpath']).name},{r['label']}\n" for r in rows)
            atomic_write_text(gt_dir / f"ground_truth_{machine}_section_{sec:02d}_source_test.csv", text)
    extra = LABEL_COLUMNS_V2 if generator != "1.2" else ()
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(list(LABEL_COLUMNS + extra))
    for r in sorted(labels, key=lambda r: r["relpath"]):
        w.writerow([r["relpath"], r["machine"], r["section"], r["label"], r["anomaly_kind"], r["severity_class"],
                    f"{sev_of[r['relpath']]:.4f}"] + [r[c] for c in extra])
    atomic_write_text(root / LABELS_NAME, out.getvalue())


def _severity_of(job: _Job) -> float:
    if job.anomaly is None:
        return 0.0
    rng = clip_rng(job.seed, job.machine, job.section, job.split, job.index)
    if job.generator != "1.2":  # replays synth_machines.clip_head: attributes, then the damage draw
        from .synth_machines import clip_head

        return clip_head(job.machine, job.section, job.anomaly, None, job.index, rng)[2]
    model = MODELS[job.machine]
    model.attributes(rng, model.sections[job.section])
    kind = {k.name: k for k in model.anomalies}[job.anomaly]
    return float(rng.uniform(0.2, 1.0) if kind.severity == "subtle" else rng.uniform(0.1, 1.0))


def read_manifest(root: str | Path) -> dict:
    """The manifest of a synthetic set.

    Raises:
        FileNotFoundError: no manifest (named) under ``root``.
        ValueError: the manifest is not valid JSON (named).
    """
    f = Path(root) / MANIFEST_NAME
    if not f.exists():
        raise FileNotFoundError(f"{f} not found: {root} is not a finished minasd synthetic set")
    return _read_json(f, "manifest")


def find_manifest(path: str | Path, levels: int = 2) -> dict | None:
    """The synthetic-set manifest that covers ``path``, or None for data that is not synthetic.

    Looks in ``path`` and up to ``levels`` folders above it (a set may be indexed through
    ``<set>/dev_data`` or ``<set>/dev_data/fan``), for the finished manifest or, failing
    that, the marker of an interrupted run.  The returned dict is the manifest's content
    plus ``manifest_path`` and ``finished`` (False for an interrupted set).  Used to label
    every result as synthetic or real.

    Raises:
        ValueError: a manifest or marker that is not valid JSON (named).
    """
    here = Path(path).resolve()
    for folder in [here, *here.parents][: levels + 1]:
        for name, finished in ((MANIFEST_NAME, True), (PARTIAL_NAME, False)):
            f = folder / name
            if f.is_file():
                m = _read_json(f, "manifest" if finished else "marker")
                return {**m, "manifest_path": str(f), "finished": finished}
    return None


def _read_json(f: Path, what: str) -> dict:
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"synthetic-set {what} {f} is not valid JSON ({err}); regenerate the set") from None


def read_labels(root: str | Path):
    """The sidecar of test-clip labels as a pandas DataFrame (relpath, machine, section, label,
    anomaly_kind, severity_class, severity).  Book: chapter 1."""
    import pandas as pd

    return pd.read_csv(Path(root) / LABELS_NAME)


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def add_synth_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``minasd synth`` (the lead wires them into minasd/cli.py)."""
    from .config import SYNTH_GENERATOR

    parser.add_argument("--size", choices=list(SIZES), default="small", help="named size (default: small)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    parser.add_argument("--out", required=True, help="output root (DCASE layout is written under it)")
    parser.add_argument("--machine-types", nargs="+", default=None, choices=list(MACHINE_TYPES), metavar="TYPE",
                        help=f"subset of machine types (default: all of {', '.join(MACHINE_TYPES)})")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--generator", choices=list(GENERATORS), default=SYNTH_GENERATOR,
                        help=f"generator version (default: {SYNTH_GENERATOR}, config.SYNTH_GENERATOR; see "
                             "docs/factory_v2_design.md for 2.0's calibration)")
    parser.add_argument("--sections", nargs="+", type=int, default=None, choices=list(SECTIONS), metavar="N",
                        help="subset of section numbers, e.g. --sections 0 1 2 (default: all six)")
    return parser


def run_synth(args: argparse.Namespace) -> int:
    """Run ``minasd synth`` from parsed arguments; prints what was written.  Returns 0."""
    t0 = time.time()
    from .config import SYNTH_GENERATOR

    generator = getattr(args, "generator", None) or SYNTH_GENERATOR
    root = make_dataset(args.out, size=args.size, seed=args.seed, machine_types=args.machine_types, workers=args.workers,
                        generator=generator, sections=getattr(args, "sections", None))
    m = read_manifest(root)
    print(f"{SYNTH_NOTE}: {m['n_clips']} clips ({args.size}, seed {args.seed}, generator {generator}) "
          f"in {root} [{time.time() - t0:.1f} s; written this run: {m['last_run']['written']}]")
    return 0
