"""Generator 2.0 sound models: faults as changes of the machine's own sound (Book: chapter 1).

**Synthetic data — not DCASE.**  Status: *uncalibrated*.  Generator 2.0 lives beside 1.2
(:mod:`minasd.synth`) and is not the default: nothing in the committed results uses it
until the calibration of issue 23 freezes it (``docs/factory_v2_design.md``, section 3).

What this module holds, per machine type (fan, gearbox, pump, slider, valve, ToyCar,
ToyTrain): the six section products (the 1.2 tables, reused), the attribute string, the
documented fault kinds and the renderer of the machine's own sound.  Mixing with factory
noise is :mod:`minasd.synth_scenes`; the clip assembly is :func:`minasd.synth.render_clip`.

Design choices and where they come from (keys of the design's source table; "not
documented" where the material read is silent):

* **Faults change the machine's own model** (a parameter of the renderer, or an event made
  with the machine's own resonances at a time locked to its rotation, stroke, loop or valve
  cycle), never an independent added sound.  The real anomalies are physical faults of the
  recorded machine: MIMII lists "contamination, leakage, rotating unbalance and rail damage"
  [M-ABS]; ToyADMOS2 damages the toys deliberately [T2-RM] (toy car: shaft bent, gears
  deformed or melted, wheels damaged; toy train: carriage flat tire, broken shaft, track
  disjointed, obstructing stone [T2-T1]).  Per-type fault lists of the MIMII paper's table
  were seen only second-hand [2ND]: those kinds carry ``documented=False``.  Gearbox faults:
  not documented in material read (the MIMII DUE paper was not read), all
  ``documented=False``.  *How* a fault sounds (which parameter moves, by how much) is a
  modelling choice in every case: not documented.
* **Graded damage**: levels low / mid / high as in ToyADMOS2 [T2-UM §2-3]; the draw
  ``s`` per level (:data:`LEVEL_RANGES`) is a proposal of the design.  A fault's renderer
  gets ``e = sigma * s`` with ``sigma`` the type's calibration knob (:func:`load_knobs`).
  Grading of the MIMII faults: not documented; the MIMII types use the same three levels.
* **Anomaly plan** (:func:`fault_plan`): level cycles low, high, mid over the anomalous
  clips of a section; the kind follows a weighted round robin (knob ``kind_weights``).
* **Attributes**: real DCASE 2021 strings [ANCH] fan ``strength_1_ambient``, gearbox
  ``0_g_25_mm_2000_mV_none``, valve ``pattern_00_no_pump``, pump ``serial_no_030_water``,
  ToyCar ``A1Spd28VMic1``; ToyCar speeds 2.8-4.0 V [T2-UM §2-2].  Slider attribute strings:
  not documented (1.2's ``vel_{v}_ac_{a}`` kept).  ToyTrain ``{model}Spd{k}Mic{m}``: seen
  only in a third-party script path (unverified).  Values other than the real examples are
  proposals.  The gearbox string ends with the section's scene name where the one real
  example has ``none`` (what that token ranges over: not documented).
* **Random streams**: a renderer draws its normal sound from ``rng`` and every fault-only
  number from ``rf``, with draw counts that never depend on the fault, so the normal and the
  faulted render of the same clip share every normal detail (the physics tests compare them
  sample by sample).

The calibration knobs live in ``synth_knobs.json`` (package data), read by
:func:`load_knobs`; their initial values are physical guesses, not calibrated.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .synth import (_CAR_NAMES, _CAR_SECTIONS, _FAN_SECTIONS, _GEAR_SECTIONS, _PUMP_SECTIONS, _SLIDER_SECTIONS,
                    _TRAIN_NAMES, _TRAIN_SECTIONS, _VALVE_SECTIONS, SR, TWO_PI, _add_events, _cycles, _drift,
                    _kernel, _periodic_times, _shaped_noise, _smooth_env, _t)

GENERATOR = "2.0"
KNOBS_FILE = Path(__file__).with_name("synth_knobs.json")

#: Citation keys of the design's source table (docs/factory_v2_design.md).
SOURCES: dict[str, str] = {
    "ANCH": "../shared/REAL_DATA_ANCHORS.md (targets, attribute strings, MIMII / ToyADMOS2 summary)",
    "T2-RM": "nttcslab/ToyADMOS2-dataset README.md (toys damaged deliberately; mixed by mixer.py)",
    "T2-UM": "nttcslab/ToyADMOS2-dataset UsersManual.md (SNR, damage levels, models, speeds, noise)",
    "T2-MX": "nttcslab/ToyADMOS2-dataset mixer.py l.67-68, 79-80, 94, 99, 139 (mixing formula, mean RMS)",
    "T2-T1": "nttcslab/ToyADMOS2-dataset images/fig-table1-defects.png (the paper's Table 1 of defects)",
    "M-ABS": "MIMII paper abstract, arXiv 1909.09347 (contamination, leakage, rotating unbalance, rail damage)",
    "M-BL": "MIMII-hitachi/mimii_baseline README (factory noise recorded separately, mixed afterwards)",
    "M-SNR": "MIMII baseline results at 6, 0, -6 dB SNR (yachuchi/mimii README; NF_Prj_MIMII_Dataset doc)",
    "2ND": "third-party restatements of the MIMII paper's per-type table (primary table not read)",
    "none": "not documented in material read",
}

#: Damage levels and the range of their draw ``s`` (proposal; the gaps keep levels distinct).
LEVEL_RANGES: dict[str, tuple[float, float]] = {"low": (0.15, 0.35), "mid": (0.45, 0.65), "high": (0.75, 1.0)}
LEVEL_CYCLE = ("low", "high", "mid")
LEVEL_CLASS = {"low": "subtle", "mid": "subtle", "high": "gross"}
KNOB_NAMES = ("sigma", "snr", "spread", "kind_weights", "nonstat", "duty")


@dataclass(frozen=True)
class FaultKind:
    """One fault of a machine type in generator 2.0.

    Attributes:
        name: kind name (labels CSV ``anomaly_kind``).
        description: what changes in the machine's sound model.
        source: citation key of :data:`SOURCES` ("none": not documented in material read).
        documented: True only when the fault itself is named in a primary source read.
        character: "stationary" (a steady parameter change) or "event" (transients at
            locked times): the split the ``kind_weights`` knob is meant to move.
    """

    name: str
    description: str
    source: str
    documented: bool
    character: str


@dataclass(frozen=True)
class MachineV2:
    """A machine type of generator 2.0 (see the module docstring)."""

    name: str
    description: str
    sections: tuple[dict, ...]  # 6 product parameter sets (with "scene"), index = section
    attributes: Callable[[np.random.Generator, dict], tuple[str, dict]]
    faults: tuple[FaultKind, ...]
    render: Callable  # (rng, rf, params, op, n, fault | None, e, knobs, trace) -> (n,) float32
    rule: str  # mixing rule: "mimii" or "toyadmos2" (synth_scenes)
    level_db: float = -27.0  # output level of a normal clip's machine part, dBFS


# --------------------------------------------------------------------------------------
# Small helpers (fixed draw counts, so that a fault never shifts the normal stream)
# --------------------------------------------------------------------------------------


def _tones(cyc: np.ndarray, orders: Sequence[float], amps: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Sum of a_k cos(2 pi (k * cyc + phase_k)); one phase drawn per order, zeros skipped."""
    orders = np.asarray(orders, dtype=np.float32)
    amps = np.asarray(amps, dtype=np.float32)
    ph = rng.uniform(0, 1, size=len(orders)).astype(np.float32)
    keep = amps != 0
    if not keep.any():
        return np.zeros(cyc.shape[0], np.float32)
    arg = orders[keep, None] * cyc[None, :] + ph[keep, None]  # (K, n) cycles
    return (amps[keep] @ np.cos(np.float32(TWO_PI) * arg)).astype(np.float32)


def _crossings(cyc: np.ndarray, phase: float) -> np.ndarray:
    """Times (s) at which a wrapped cycle count passes ``phase``: events locked to a rotation."""
    w = (cyc - np.float32(phase)) % np.float32(1.0)
    return (np.flatnonzero(w[1:] < w[:-1]) + 1) / SR


def _jit(rng: np.random.Generator, sd: float, spread: float) -> float:
    """A factor 1 + N(0, sd * spread): within-section parameter jitter (knob ``spread``)."""
    return 1.0 + sd * spread * float(rng.standard_normal())


def _fk(name, description, source, character):
    return FaultKind(name, description, source, source not in ("2ND", "none"), character)


# --------------------------------------------------------------------------------------
# fan
# --------------------------------------------------------------------------------------

_FAN_GAMMA = 2.5  # flow-noise gain ~ speed^gamma under a voltage change: a modelling choice (2 to 3)


def _fan_attrs(rng, p):
    s = int(rng.integers(1, 4))
    return f"strength_{s}_{p['scene']}", {"speed": {1: 0.96, 2: 1.0, 3: 1.04}[s], "level": {1: 0.85, 2: 1.0, 3: 1.15}[s]}


def _fan_render(rng, rf, p, op, n, fault, e, kn, trace):
    sp = kn["spread"]
    f_rot = p["f_rot"] * op["speed"] * _jit(rng, 0.012, sp)
    duct = [(fc * _jit(rng, 0.02, sp), bw, g * _jit(rng, 0.1, sp)) for fc, bw, g in p["duct"]]
    am = p["am"] * (1.0 + 0.3 * sp * rng.uniform(-1, 1))
    tilt = p["tilt"] + 0.3 * sp * rng.standard_normal()
    rot = np.array([0.10, 0.05, 0.03, 0.0, 0.0, 0.0])
    bpf_amp, gain, fm = p["bpf_amp"], op["level"], 0.0
    sign = rf.choice([-1.0, 1.0])
    if fault == "unbalance":  # rotation-rate modulation: rotation orders, flow AM and a phase wobble
        rot[:3] *= 1.0 + 4.0 * e
        am += 0.15 * e
        fm = 0.01 * e
    elif fault == "voltage_change":
        v = max(0.5, 1.0 + sign * 0.06 * e)
        f_rot *= v
        gain *= v ** _FAN_GAMMA
    elif fault == "clogging":  # duct restriction
        duct = [(fc, bw, g * max(0.05, 1.0 - 0.25 * e)) for fc, bw, g in duct]
        gain *= 1.0 + 1.2 * e
        bpf_amp *= 1.0 + 0.5 * e
    elif fault == "blade_damage":  # blade-pass symmetry lost: rotation orders light up (no impacts)
        rot = rot + e * np.array([0.7, 0.55, 0.47, 0.4, 0.35, 0.3])
    t = _t(n)
    inst = f_rot * _drift(rng, n, 0.006 * sp)
    if fm:
        inst = inst * (1.0 + fm * np.cos(TWO_PI * f_rot * t)).astype(np.float32)
    cyc = _cycles(inst, n)
    orders = list(range(1, 7)) + list(p["blades"] * np.arange(1, 7))
    tone = _tones(cyc, orders, list(rot) + list(bpf_amp * 0.5 ** np.arange(6)), rng)
    noise = _shaped_noise(rng, n, duct, tilt)
    hum = 0.08 * np.cos(TWO_PI * p["hum"] * t + rng.uniform(0, TWO_PI)).astype(np.float32)
    return tone + 0.8 * gain * noise * (1.0 + am * np.cos(TWO_PI * cyc)) + hum


_FAN = MachineV2(
    "fan",
    "industrial fan: rotation and blade-pass harmonics, duct-resonant flow noise modulated at the "
    "rotation rate, motor hum",
    tuple(dict(s, scene=sc) for s, sc in zip(_FAN_SECTIONS, ("ambient", "ambient", "hall", "line", "hall", "line"))),
    _fan_attrs,
    (
        _fk("unbalance", "rotating unbalance: rotation orders x (1 + 4e), flow AM + 0.15e, phase wobble",
            "M-ABS", "stationary"),
        _fk("voltage_change", "supply voltage off nominal: speed x (1 +- 0.06e), flow noise with it",
            "2ND", "stationary"),
        _fk("clogging", "duct restriction: duct peaks down, flow noise and blade pass up", "2ND", "stationary"),
        _fk("blade_damage", "damaged blade: blade-pass symmetry lost, rotation orders up", "2ND", "stationary"),
    ),
    _fan_render,
    "mimii",
)


# --------------------------------------------------------------------------------------
# gearbox
# --------------------------------------------------------------------------------------


def _gear_attrs(rng, p):
    w = int(rng.choice([0, 30, 80]))
    arm = int(rng.choice([25, 50]))
    mv = int(rng.choice([1000, 1500, 2000]))
    # read as weight (g) on a load arm (mm) and the motor voltage (mV): torque ~ weight x arm
    return f"{w}_g_{arm}_mm_{mv}_mV_{p['scene']}", {"speed": 0.92 + 0.08 * mv / 1500.0, "load": 1.0 + w * arm / 10000.0}


def _gear_render(rng, rf, p, op, n, fault, e, kn, trace):
    sp = kn["spread"]
    f_in = p["f_in"] * op["speed"] * _jit(rng, 0.012, sp)
    z1, z2 = p["z1"], p["z2"]
    load = op["load"] + (0.6 * e if fault == "overload" else 0.0)
    sb = p["sb"] * load * (1.0 + 0.2 * sp * rng.uniform(-1, 1))
    house = [(fc * _jit(rng, 0.02, sp), bw, g) for fc, bw, g in p["house"]]
    tilt = -3.0 + 0.3 * sp * rng.standard_normal()
    mesh_amps = np.array([1.0, 0.5, 0.3, 0.15]) * load
    rot_extra = 0.1 * e if fault == "overload" else 0.0
    if fault == "wear":
        sb *= 1.0 + 1.5 * e
        mesh_amps[1:] *= 1.0 + 0.5 * e
    drift = _drift(rng, n, 0.005 * sp)
    cyc_in = _cycles(f_in * drift, n)
    cyc_out = _cycles(f_in * z1 / z2 * drift, n)
    cyc_mesh = cyc_in
    phi0 = rf.uniform(0, 1)
    if fault == "tooth_damage":  # the damaged tooth: a mesh-phase jump while it is in mesh
        in_mesh = ((cyc_in - np.float32(phi0)) % np.float32(1.0)) < np.float32(1.0 / z1)
        cyc_mesh = cyc_in + in_mesh.astype(np.float32) * np.float32(0.3 * e / TWO_PI / z1)
    mesh = _tones(cyc_mesh, z1 * np.arange(1, 5), mesh_amps, rng)
    mod = 1.0 + sb * np.cos(TWO_PI * cyc_in) + 0.6 * sb * np.cos(TWO_PI * cyc_out)
    shafts = _tones(cyc_in, [1, 2, 3], [0.05, 0.03 + rot_extra, 0.01 + rot_extra / 2], rng)
    noise = _shaped_noise(rng, n, house, tilt)
    x = mesh * mod + shafts + 0.35 * noise * (1.0 + 0.2 * np.cos(TWO_PI * cyc_in))
    if fault == "tooth_damage":  # one impulse per input revolution, rung on the housing modes
        k = _kernel(rf, [(house[0][0], 0.01, 1.0), (house[1][0], 0.004, 0.7)], 0.05)
        times = _crossings(cyc_in, phi0)
        x = _add_events(x, times, 1.5 * e * rf.uniform(0.8, 1.2, times.shape[0]), k)
        if trace is not None:
            trace["impacts"] = times
    return x


_GEARBOX = MachineV2(
    "gearbox",
    "gearbox: gear-mesh harmonics with shaft-rate sidebands growing with load (weight x arm), "
    "shaft tones, housing-resonant noise",
    tuple(dict(s, scene=sc) for s, sc in zip(_GEAR_SECTIONS, ("ambient", "ambient", "hall", "line", "hall", "line"))),
    _gear_attrs,
    (
        _fk("tooth_damage", "one impulse per input revolution (housing modes) and a mesh-phase jump",
            "none", "event"),
        _fk("wear", "worn teeth: sidebands x (1 + 1.5e), mesh harmonics 2-4 up", "none", "stationary"),
        _fk("overload", "load + 0.6e: stronger mesh and sidebands, 2x and 3x shaft tones", "none", "stationary"),
    ),
    _gear_render,
    "mimii",
)


# --------------------------------------------------------------------------------------
# pump
# --------------------------------------------------------------------------------------

#: Serial numbers (instances) per section; each has a fixed parameter offset.  Proposal.
_PUMP_SERIALS = ((30, 31), (34, 35, 36), (40, 41), (45, 46, 47), (50, 51), (55, 56))


def _pump_attrs(rng, p):
    serial = int(rng.choice(p["serials"]))
    inst = np.random.default_rng([serial, 4242])  # fixed per serial: the instance's own offsets
    d = inst.standard_normal(3)
    return f"serial_no_{serial:03d}_water", {"d_rot": 0.01 * d[0], "d_pipe": 0.02 * d[1], "d_flow": 0.05 * d[2]}


def _pump_render(rng, rf, p, op, n, fault, e, kn, trace):
    sp = kn["spread"]
    f_rot = p["f_rot"] * (1.0 + sp * op["d_rot"]) * _jit(rng, 0.01, sp)
    pipe_mul = (1.0 + sp * op["d_pipe"]) * (1.0 + 0.04 * e if fault == "clogging" else 1.0)
    pipe = [(fc * pipe_mul * _jit(rng, 0.03, sp), bw, g) for fc, bw, g in p["pipe"]]
    flow = (1.0 + sp * op["d_flow"]) * (1.0 + 0.1 * sp * rng.uniform(-1, 1))
    puls_f = p["puls"] * (1.0 + 0.2 * sp * rng.uniform(-1, 1))
    puls_d, vane_amp = 0.15, p["vpf"]
    if fault == "clogging":  # intake restriction
        puls_d += 0.4 * e
        flow *= max(0.2, 1.0 - 0.4 * e)
        vane_amp *= 1.0 + e
    t = _t(n)
    surge = (1.0 + puls_d * np.sin(TWO_PI * puls_f * t + rng.uniform(0, TWO_PI))).astype(np.float32)
    cyc = _cycles(f_rot * _drift(rng, n, 0.004 * sp), n)
    vanes = p["vanes"]
    tone = _tones(cyc, [1, 2] + list(vanes * np.arange(1, 4)), [0.15, 0.06] + list(vane_amp * 0.5 ** np.arange(3)), rng)
    noise = _shaped_noise(rng, n, pipe, -4.0 + 0.4 * sp * rng.standard_normal())
    x = tone + flow * noise * surge
    if fault == "leakage":  # seal leak hiss, pressure-locked (surge and vane pass)
        hiss = _shaped_noise(rf, n, [(rf.uniform(4000, 7000), 1500, 4.0)], 0.0, floor=0.1)
        env = surge * (1.0 + 0.5 * np.cos(TWO_PI * vanes * cyc))
        x = x + 10 ** (min(-30.0 + 24.0 * e, 3.0) / 20.0) * flow * hiss * env
    elif fault == "contamination":  # solids hitting the impeller, rung on the pipe resonances
        seconds = n / SR
        m = rf.poisson((2.0 + 20.0 * e) * seconds)
        tv = 1.0 / (f_rot * vanes)
        times = (np.floor(rf.uniform(0, seconds, m) / tv) + 0.25 + 0.05 * rf.standard_normal(m)) * tv
        k = _kernel(rf, [(fc, 0.02, g / 4.0) for fc, _, g in pipe] + [(rf.uniform(1500, 3000), 0.003, 0.5)], 0.06)
        x = _add_events(x, times, 3.0 * e * rf.uniform(0.5, 1.0, m), k)
    elif fault == "clogging" and e > 0.7:  # cavitation at the pressure minimum of the surge
        crack = _shaped_noise(rf, n, [(rf.uniform(2500, 5000), 3000, 2.0)], 0.0)
        gate = np.clip((1.0 - surge) / puls_d, 0.0, 1.0) ** 2
        x = x + 1.5 * (e - 0.7) * crack * gate
    return x


_PUMP = MachineV2(
    "pump",
    "water pump: flow noise shaped by pipe resonances with slow surge, rotation and vane-pass tones; "
    "instances (serial numbers) differ by fixed offsets",
    tuple(dict(s, scene=sc, serials=se) for s, sc, se in
          zip(_PUMP_SECTIONS, ("ambient", "ambient", "hall", "line", "hall", "line"), _PUMP_SERIALS)),
    _pump_attrs,
    (
        _fk("leakage", "seal leak: high-band hiss following surge and vane pass, -30 + 24e dB", "M-ABS", "stationary"),
        _fk("contamination", "solids: impacts on the pipe resonances at (2 + 20e)/s, vane-pass phased",
            "M-ABS", "event"),
        _fk("clogging", "intake restriction: surge deeper, flow lower, vane pass up; cavitation when severe",
            "2ND", "stationary"),
    ),
    _pump_render,
    "mimii",
)


# --------------------------------------------------------------------------------------
# slider
# --------------------------------------------------------------------------------------


def _slider_attrs(rng, p):
    vel = int(rng.choice([300, 400, 500]))
    ac = float(rng.choice([0.03, 0.05, 0.07]))
    return f"vel_{vel}_ac_{ac:.2f}", {"speed": vel / 400.0, "accel": ac / 0.05}


def _stroke_tau(move: float, ramp: float, x: float) -> float:
    """Time (s) after a stroke's start at which the carriage reaches fraction ``x`` of the stroke."""
    tt = np.linspace(0.0, move, 512)
    v = np.clip(np.minimum(1.0, np.minimum(tt, move - tt) / ramp), 0.0, 1.0)
    pos = np.cumsum(v)
    return float(np.interp(x * pos[-1], pos, tt))


def _slider_render(rng, rf, p, op, n, fault, e, kn, trace):
    sp, seconds = kn["spread"], n / SR
    period = p["period"] / (0.85 + 0.15 * op["speed"]) * _jit(rng, 0.01, sp)
    jitter = 0.005 * sp + (0.03 * e if fault == "loose_belt" else 0.0)
    dry = e if fault == "no_grease" else 0.0
    fric = [(fc * (1.0 + 0.3 * dry), bw * (1.0 + 0.5 * dry), g) for fc, bw, g in p["fric"]]
    offset = -rng.uniform(0, period / 2)
    starts = _periodic_times(rng, seconds + period, period / 2, jitter=jitter, offset=offset)
    t = _t(n)
    vel = np.zeros(n, np.float32)
    ramp = 0.08 / op["accel"] * (period / 1.6)
    move = p["duty"] * period / 2
    for s0 in starts:
        i0, i1 = max(int(s0 * SR), 0), min(int((s0 + move) * SR), n)
        if i1 > i0:
            tt = t[i0:i1] - s0
            vel[i0:i1] = np.clip(np.minimum(1.0, np.minimum(tt, move - tt) / ramp), 0, 1)
    f_m = p["motor"] * op["speed"] * _jit(rng, 0.01, sp) * (0.3 + 0.7 * vel)
    if fault == "loose_belt":  # whine FM at the pulley rate
        f_m = f_m * (1.0 + 0.02 * e * np.cos(TWO_PI * p["motor"] / 8.0 * t)).astype(np.float32)
    motor = _tones(_cycles(f_m, n), [1, 2, p["poles"], 2 * p["poles"]], [0.3, 0.15, 0.25, 0.08], rng) * vel
    fric_noise = _shaped_noise(rng, n, fric, -2.0 + 0.3 * sp * rng.standard_normal())
    x = motor + fric_noise * vel * (0.5 * (1.0 + 0.8 * dry))
    ends = starts + move
    k = _kernel(rng, [(p["click"][0] * _jit(rng, 0.02, sp), 0.006, 1.0), (p["click"][1], 0.003, 0.6)], 0.04)
    x = _add_events(x, ends, 0.9 * rng.uniform(0.8, 1.2, ends.shape[0]), k)
    if fault == "rail_damage":  # a dent at rail position x_d: same stroke phase, both directions
        x_d = rf.uniform(0.2, 0.8)
        fwd = np.arange(starts.shape[0]) % 2 == 0
        hits = starts + np.where(fwd, _stroke_tau(move, ramp, x_d), _stroke_tau(move, ramp, 1.0 - x_d))
        kd = _kernel(rf, [(p["click"][0] * 0.9, 0.008, 1.0), (p["click"][1], 0.003, 0.6),
                          (rf.uniform(700, 1200), 0.012, 0.5)], 0.06)
        burst_len = int(rf.uniform(0.02, 0.06) * SR)
        gate = _add_events(np.zeros(n, np.float32), hits, 1.0, np.hanning(burst_len).astype(np.float32))
        x = _add_events(x, hits, 0.3 + 1.5 * e, kd) + (0.3 + 1.5 * e) * fric_noise * gate
        if trace is not None:
            trace.update(hits=hits, starts=starts, period=period)
    elif fault == "loose_belt":  # backlash click at each direction reversal
        kb = _kernel(rf, [(p["click"][0] * 0.7, 0.004, 1.0), (p["click"][1] * 0.8, 0.002, 0.5)], 0.03)
        x = _add_events(x, starts, 0.8 * e, kb)
    elif fault == "no_grease":  # stick-slip squeal
        squeal = _tones(_cycles(rf.uniform(1500, 3000) * (0.98 + 0.04 * vel), n), [1, 2], [1.0, 0.3], rf)
        x = x + 0.6 * e ** 2 * squeal * vel
    return x


_SLIDER = MachineV2(
    "slider",
    "linear slide rail: strokes with a speed-dependent motor whine, friction noise while moving and "
    "an end-stop click at each stroke end",
    tuple(dict(s, scene=sc) for s, sc in zip(_SLIDER_SECTIONS, ("ambient", "ambient", "hall", "line", "hall", "line"))),
    _slider_attrs,
    (
        _fk("rail_damage", "a dent: knock (own click modes) and friction burst at a fixed rail position",
            "M-ABS", "event"),
        _fk("loose_belt", "stroke timing jitter, whine FM at the pulley rate, backlash click at reversals",
            "2ND", "event"),
        _fk("no_grease", "more and brighter friction noise, stick-slip squeal", "2ND", "stationary"),
    ),
    _slider_render,
    "mimii",
)


# --------------------------------------------------------------------------------------
# valve
# --------------------------------------------------------------------------------------


def _valve_attrs(rng, p):
    pat = int(rng.integers(0, 3))
    pump = "with_pump" if p["scene"] == "with_pump" else "no_pump"
    return f"pattern_{pat:02d}_{pump}", {"tempo": {0: 0.95, 1: 1.0, 2: 1.05}[pat]}


def _valve_events(rng, p, op, seconds, kn):
    """Open and close times (s) of the valve's pattern, and the cycle length."""
    cycle = p["cycle"] / op["tempo"] / kn.get("duty", 1.0) * _jit(rng, 0.01, kn["spread"])
    pat = np.asarray(p["pattern"]) * (cycle / p["cycle"])
    offset = rng.uniform(0, cycle)
    cycles = np.arange(-1, int(seconds / cycle) + 2)
    ev = (offset + cycles[:, None] * cycle + pat[None, :]).ravel()
    ev = ev + 0.004 * kn["spread"] * cycle * rng.standard_normal(ev.shape[0])
    is_open = np.tile(np.arange(len(pat)) % 2 == 0, cycles.shape[0])
    return ev[is_open], ev[~is_open], cycle


def _valve_render(rng, rf, p, op, n, fault, e, kn, trace):
    sp = kn["spread"]
    oc = [f * _jit(rng, 0.015, sp) for f in p["open_click"]]
    cc = [f * _jit(rng, 0.015, sp) for f in p["close_click"]]
    t_open, t_close, _ = _valve_events(rng, p, op, n / SR, kn)
    fm, dm = (max(0.5, 1.0 - 0.08 * e), 1.0 + 0.5 * e) if fault == "contamination_damping" else (1.0, 1.0)
    k_open = _kernel(rng, [(oc[0] * fm, 0.004 * dm, 1.0), (oc[1] * fm, 0.002 * dm, 0.6),
                           (rng.uniform(600, 900) * fm, 0.01 * dm, 0.3)], 0.12)
    k_close = _kernel(rng, [(cc[0] * fm, 0.005 * dm, 1.0), (cc[1] * fm, 0.002 * dm, 0.5),
                            (rng.uniform(400, 700) * fm, 0.012 * dm, 0.4)], 0.12)
    x = np.zeros(n, np.float32)
    _add_events(x, t_open, rng.uniform(0.85, 1.15, t_open.shape[0]), k_open)
    seat = fault == "contamination_seat"
    close_amp = 1.2 * (max(0.0, 1.0 - 0.5 * e) if seat else 1.0)
    _add_events(x, t_close, close_amp * rng.uniform(0.85, 1.15, t_close.shape[0]), k_close)
    gate = np.zeros(n, np.float32)
    for a, b in zip(t_open, t_close):  # flow while open
        i0, i1 = max(int(a * SR), 0), min(int(b * SR), n)
        if i1 > i0:
            gate[i0:i1] = 1.0
    flow = _shaped_noise(rng, n, p["flow"], 0.0)
    x += 0.12 * flow * _smooth_env(gate, 160)
    if seat:  # a particle holds the seat a crack open after each close: a short, decaying leak whistle
        # through the narrow gap, higher than the open valve's flow (1.7x its peak: a proposal; the
        # gap's jet is faster than the full flow).  Short, so it shows in a few frames, not the mean.
        dur = 0.08 * (0.3 + 0.7 * min(e, 1.0))
        env = np.zeros(n, np.float32)
        for b in t_close:
            i0, i1 = max(int(b * SR), 0), min(int((b + dur) * SR), n)
            if i1 > i0:
                env[i0:i1] = np.linspace(1.0, 0.2, i1 - i0, dtype=np.float32)
        leak = _shaped_noise(rf, n, ((p["flow"][0][0] * 1.7, 300.0, 30.0),), 0.0, floor=0.05)
        x += (0.06 + 0.1 * e) * leak * _smooth_env(env, 64)
    if fault == "contamination_bounce":  # a bounce of the closing member a few ms after a close
        sel = t_close[rf.random(t_close.shape[0]) < min(1.0, 0.3 + 0.6 * e)]
        _add_events(x, sel + rf.uniform(0.008, 0.02, sel.shape[0]), 0.15 + 0.6 * e, k_close)
    x += 0.02 * np.cos(TWO_PI * 100.0 * _t(n) + rng.uniform(0, TWO_PI)).astype(np.float32)
    if trace is not None:
        trace.update(open=t_open, close=t_close)
    return x


_VALVE = MachineV2(
    "valve",
    "solenoid valve: a repeating pattern of open/close clicks (decaying resonances) with flow hiss "
    "while open, quiet in between; faults change the transients only",
    tuple(dict(s, scene=sc) for s, sc in
          zip(_VALVE_SECTIONS, ("ambient", "with_pump", "ambient", "hall", "with_pump", "ambient"))),
    _valve_attrs,
    (
        _fk("contamination_seat", "particle in the seat: a short leak whistle after each close, softer close click",
            "M-ABS", "event"),
        _fk("contamination_bounce", "a bounce 8-20 ms after a share 0.3 + 0.6e of the closes", "M-ABS", "event"),
        _fk("contamination_damping", "sticky deposit: click modes x (1 - 0.08e), decay x (1 + 0.5e)",
            "M-ABS", "event"),
    ),
    _valve_render,
    "mimii",
    -38.0,
)


# --------------------------------------------------------------------------------------
# ToyCar
# --------------------------------------------------------------------------------------

#: Fixed microphone filters ``(gain dB, b)`` of y[i] = g (x[i] - b x[i-1]) / (1 + |b|): a
#: per-position colouring instead of 1.2's random gain.  Values: proposal.
MIC_FILTERS = {1: (0.0, 0.0), 2: (-2.0, 0.25), 3: (-1.0, -0.3), 4: (-3.0, 0.4),
               5: (-1.5, 0.1), 6: (-2.5, -0.2), 7: (-0.5, 0.3), 8: (-3.5, -0.35)}


def mic_filter(x: np.ndarray, mic: int) -> np.ndarray:
    """Apply the fixed filter of microphone ``mic`` (1-8) to a waveform, shape kept."""
    g_db, b = MIC_FILTERS[int(mic)]
    y = x.copy()
    y[1:] -= np.float32(b) * x[:-1]
    return (y * np.float32(10 ** (g_db / 20.0) / (1.0 + abs(b)))).astype(np.float32)


def _car_attrs(rng, p):
    spd = int(rng.choice([28, 31, 34, 37, 40]))
    mic = int(rng.integers(1, 3))
    return f"{p['car']}Spd{spd}VMic{mic}", {"speed": spd / 34.0, "mic": mic}


def _car_render(rng, rf, p, op, n, fault, e, kn, trace):
    sp = kn["spread"]
    f_m = p["f_m"] * op["speed"] * _jit(rng, 0.012, sp)
    road = [(fc * _jit(rng, 0.03, sp), bw, g) for fc, bw, g in p["road"]]
    tilt = -3.0 + 0.4 * sp * rng.standard_normal()
    ratio, g0 = p["ratio"], p["gear"] * p["ratio"] / 2.0
    mesh_sb, w1, hi = 0.15, 1.0, 1.0
    if fault == "gear_deformed":
        mesh_sb, w1, hi = 0.15 + 0.6 * e, 1.0 + 0.5 * e, 1.0 + 0.5 * e
    elif fault == "gear_melted":  # lost tooth profile: fundamental down, harmonics and mesh noise up
        w1, hi = max(0.0, 1.0 - 0.5 * e), 1.0 + 2.0 * e
    t = _t(n)
    inst = f_m * _drift(rng, n, 0.01 * sp, fmax=0.8)
    if fault == "shaft_bent":
        inst = inst * (1.0 + 0.01 * e * np.cos(TWO_PI * f_m / ratio * t)).astype(np.float32)
    cyc = _cycles(inst, n)
    cyc_w = _cycles(inst / ratio, n)
    P = p["poles"]
    motor = _tones(cyc, [1, 2, P, 2 * P, 3 * P], [0.25, 0.1, 0.5, 0.2, 0.1], rng)
    gear = _tones(cyc_w, g0 * np.arange(1, 5), [0.25 * w1, 0.1 * hi, 0.05 * hi, 0.03 * hi], rng)
    gear *= 1.0 + mesh_sb * np.cos(TWO_PI * cyc_w)
    noise = _shaped_noise(rng, n, road, tilt)
    mesh_noise = 0.08 * hi * (1.0 + np.cos(TWO_PI * g0 * cyc_w))
    x = motor + gear + noise * (0.5 * (1.0 + 0.1 * np.cos(TWO_PI * cyc_w)) + mesh_noise)
    if fault == "shaft_bent":
        x = x * (1.0 + 0.3 * e * np.cos(TWO_PI * cyc_w))
    elif fault == "wheel_damaged":  # a knock once per wheel turn, rung on the road resonances
        times = _crossings(cyc_w, rf.uniform(0, 1))
        k = _kernel(rf, [(road[0][0], 0.006, 1.0), (road[1][0], 0.004, 0.6)], 0.05)
        x = _add_events(x, times, 1.5 * e * rf.uniform(0.8, 1.2, times.shape[0]), k)
    return mic_filter(x.astype(np.float32), op["mic"])


_TOYCAR = MachineV2(
    "ToyCar",
    "toy car on a belt: DC motor with commutator harmonics, gear whine with wheel-rate sidebands, "
    "rolling noise, fixed microphone colouring",
    tuple(dict(s, car=c, scene=sc) for s, c, sc in
          zip(_CAR_SECTIONS, _CAR_NAMES, ("ambient", "ambient", "hall", "line", "hall", "line"))),
    _car_attrs,
    (
        _fk("shaft_bent", "bent shaft: whole-sound AM 0.3e and FM 0.01e at the wheel-shaft rate", "T2-T1", "stationary"),
        _fk("gear_deformed", "deformed gear: whine sidebands 0.15 + 0.6e, whine x (1 + 0.5e)", "T2-T1", "stationary"),
        _fk("gear_melted", "melted gear: whine fundamental down, orders 2-4 and mesh noise x (1 + 2e)",
            "T2-T1", "stationary"),
        _fk("wheel_damaged", "damaged wheel: a knock once per wheel turn on the road resonances", "T2-T1", "event"),
    ),
    _car_render,
    "toyadmos2",
)


# --------------------------------------------------------------------------------------
# ToyTrain
# --------------------------------------------------------------------------------------

_WHEEL_TURNS_PER_JOINT = 5.0  # rail segment / wheel circumference (0.2 m / 0.04 m): proposal


def _train_attrs(rng, p):
    spd = int(rng.choice([5, 6, 7]))
    mic = int(rng.integers(1, 5))  # source mics 1-4 of the two sets of 4 [T2-UM §2-4]
    return f"{p['car']}Spd{spd}Mic{mic}", {"speed": spd / 6.0, "mic": mic}


def _loop_times(lph0: float, loop: float, phase: float, seconds: float) -> np.ndarray:
    """Times (s) at which the train passes loop position ``phase`` (0-1)."""
    k = np.arange(-1, int(seconds / loop) + 2)
    t = (k + (phase - lph0) % 1.0) * loop
    return t[(t >= 0) & (t < seconds)]


def _train_faults(rf, x, p, fault, e, speed, loop, lph0, kernel_modes, seconds):
    n = x.shape[0]
    if fault == "flat_tire":  # a knock per wheel turn, the joint kernel lowered by 30 %
        f_wheel = _WHEEL_TURNS_PER_JOINT * speed / p["joint_period"]
        k = _kernel(rf, [(f * 0.7, tau, a) for f, tau, a in kernel_modes], 0.04)
        x = _add_events(x, _periodic_times(rf, seconds, 1.0 / f_wheel, 0.01), 0.3 + 1.2 * e, k)
    elif fault == "disjointed_track":  # one joint of the loop with a wider gap: loud pair + rattle
        t0 = _loop_times(lph0, loop, rf.uniform(0, 1), seconds)
        k = _kernel(rf, kernel_modes, 0.04)
        x = _add_events(x, np.concatenate([t0, t0 + p["bogie"] / speed]), 0.8 * (1.5 + 2.0 * e), k)
        kr = _kernel(rf, [(rf.uniform(3000, 4500), 0.003, 1.0)], 0.02)
        rattle = (t0[:, None] + np.linspace(0.0, rf.uniform(0.03, 0.08), 5)[None, :]).ravel()
        x = _add_events(x, rattle, 0.3 + 0.5 * e, kr)
    elif fault == "obstructing_stone":  # once per loop: an impact and a short grind
        t0 = _loop_times(lph0, loop, rf.uniform(0, 1), seconds)
        ki = _kernel(rf, [(rf.uniform(500, 900), 0.015, 1.0), (rf.uniform(2000, 3000), 0.004, 0.6)], 0.08)
        x = _add_events(x, t0, 0.5 + 2.0 * e, ki)
        grind = _shaped_noise(rf, n, [(rf.uniform(2000, 4000), 1500, 3.0)], 0.0)
        gl = int(rf.uniform(0.1, 0.2) * SR)
        gate = _add_events(np.zeros(n, np.float32), t0, 1.0, np.hanning(gl).astype(np.float32))
        x = x + (0.3 + e) * grind * gate
    return x


def _train_render(rng, rf, p, op, n, fault, e, kn, trace):
    sp, seconds = kn["spread"], n / SR
    speed = op["speed"] * _jit(rng, 0.012, sp)
    loop = p["loop"] / speed
    lph0 = rng.uniform(0, 1)
    t = _t(n)
    dist = (1.0 + 0.35 * np.cos(TWO_PI * (t / loop + lph0))).astype(np.float32)
    jp = p["joint_period"] / speed
    f_wheel = _WHEEL_TURNS_PER_JOINT / jp
    inst = p["f_m"] * speed * _drift(rng, n, 0.008 * sp)
    if fault == "broken_shaft":  # axle wobble: motor-load ripple at the wheel rate
        inst = inst * (1.0 + 0.01 * e * np.cos(TWO_PI * f_wheel * t)).astype(np.float32)
    motor = _tones(_cycles(inst, n), [1, 2, p["poles"], 2 * p["poles"]], [0.2, 0.1, 0.3, 0.1], rng)
    noise = _shaped_noise(rng, n, [(700, 500, 2.0), (2200, 900, 1.0)], -4.0 + 0.4 * sp * rng.standard_normal())
    x = motor + 0.3 * noise
    base = _periodic_times(rng, seconds, jp, jitter=0.01 * sp)
    times = np.concatenate([base, base + p["bogie"] / speed])
    modes = [(p["joint"][0] * _jit(rng, 0.02, sp), 0.006, 1.0), (p["joint"][1], 0.003, 0.5)]
    k = _kernel(rng, modes, 0.04)
    x = _add_events(x, times, 0.8 * rng.uniform(0.8, 1.2, times.shape[0]), k)
    x = _train_faults(rf, x, p, fault, e, speed, loop, lph0, modes, seconds)
    if fault == "broken_shaft":
        x = x * (1.0 + 0.2 * e * np.cos(TWO_PI * f_wheel * t)).astype(np.float32)
    return mic_filter((x * dist).astype(np.float32), op["mic"])


_TOYTRAIN = MachineV2(
    "ToyTrain",
    "toy train on a loop: motor hum, click pairs at rail joints, rolling noise, level rising and "
    "falling with the distance to the microphone, fixed microphone colouring",
    tuple(dict(s, car=c, scene=sc) for s, c, sc in
          zip(_TRAIN_SECTIONS, _TRAIN_NAMES, ("ambient", "ambient", "hall", "line", "hall", "line"))),
    _train_attrs,
    (
        _fk("flat_tire", "carriage flat tire: a knock per wheel turn, joint kernel 30 % lower", "T2-T1", "event"),
        _fk("broken_shaft", "axle wobble: AM 0.2e and motor ripple FM 0.01e at the wheel rate", "T2-T1",
            "stationary"),
        _fk("disjointed_track", "one joint per loop with a wider gap: louder click pair and a rattle",
            "T2-T1", "event"),
        _fk("obstructing_stone", "once per loop at a fixed position: an impact and a short grind", "T2-T1", "event"),
    ),
    _train_render,
    "toyadmos2",
)

MODELS_V2: dict[str, MachineV2] = {m.name: m for m in (_FAN, _GEARBOX, _PUMP, _VALVE, _SLIDER, _TOYCAR, _TOYTRAIN)}


# --------------------------------------------------------------------------------------
# Knobs and the anomaly plan
# --------------------------------------------------------------------------------------


def load_knobs(override: Mapping[str, Mapping] | None = None) -> dict[str, dict]:
    """The calibration knobs per machine type: ``synth_knobs.json`` with ``override`` merged.

    Args:
        override: ``{type: {knob: value}}`` replacing single knobs (``kind_weights`` is
            replaced whole when given).  Knobs: ``sigma`` (> 0, scales every fault),
            ``snr`` (dB, scene level), ``spread`` (>= 0, within-section jitter),
            ``kind_weights`` ({kind: weight >= 0}), ``nonstat`` (>= 0, scene events per s),
            ``duty`` (valve only, > 0, transients per time).  A mapping shaped like the
            file itself (its per-type entries under ``"types"``) is accepted too.

    Returns:
        ``{type: {knob: value}}`` for every type (a fresh copy).

    Raises:
        ValueError: an unknown type, knob or kind, or a value out of range (named).

    >>> load_knobs({"fan": {"sigma": 1.5}})["fan"]["sigma"]
    1.5
    """
    raw = json.loads(KNOBS_FILE.read_text(encoding="utf-8"))
    knobs = {m: dict(v) for m, v in raw["types"].items()}
    if override is not None and isinstance(override.get("types"), Mapping):
        override = override["types"]
    for m, kv in (override or {}).items():
        if m not in knobs:
            raise ValueError(f"knob override: unknown machine type {m!r} (known: {list(knobs)})")
        for k, v in kv.items():
            if k not in knobs[m]:
                raise ValueError(f"knob override: {m} has no knob {k!r} (its knobs: {list(knobs[m])})")
            knobs[m][k] = dict(v) if isinstance(v, Mapping) else v
    for m, kv in knobs.items():
        _check_knobs(m, kv)
    return knobs


def _check_knobs(machine: str, kv: dict) -> None:
    where = f"{KNOBS_FILE.name} / override, {machine}"
    if machine not in MODELS_V2:
        raise ValueError(f"{where}: unknown machine type")
    if not float(kv["sigma"]) > 0 or float(kv["spread"]) < 0 or float(kv["nonstat"]) < 0:
        raise ValueError(f"{where}: need sigma > 0, spread >= 0, nonstat >= 0 (got {kv})")
    if "duty" in kv and not float(kv["duty"]) > 0:
        raise ValueError(f"{where}: duty must be > 0 (got {kv['duty']})")
    names = [f.name for f in MODELS_V2[machine].faults]
    w = kv["kind_weights"]
    if set(w) != set(names) or min(w.values()) < 0 or sum(w.values()) <= 0:
        raise ValueError(f"{where}: kind_weights must give a weight >= 0 to each of {names}, sum > 0 (got {w})")


def knobs_sha256(knobs: Mapping[str, Mapping], machine_types: Sequence[str]) -> str:
    """Short hash of the knobs of ``machine_types`` (part of a v2 set's identity)."""
    sub = {m: knobs[m] for m in machine_types}
    return hashlib.sha256(json.dumps(sub, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def fault_plan(machine: str, section: int, index: int, knobs_t: Mapping) -> tuple[FaultKind, str]:
    """Fault kind and damage level of the ``index``-th anomalous test clip of a section.

    Level: low, high, mid cycling with ``index``.  Kind: position ``index // 3 + section``
    of a smooth weighted round robin over the type's kinds (weights ``kind_weights``; equal
    weights give the plain cycle).  Independent of the set's size, so clip ``i`` is the same
    clip in every size.
    """
    faults = MODELS_V2[machine].faults
    w = np.array([float(knobs_t["kind_weights"][f.name]) for f in faults])
    cur = np.zeros(len(faults))
    pick = 0
    for _ in range(index // 3 + section + 1):
        cur += w
        pick = int(np.argmax(cur))
        cur[pick] -= w.sum()
    return faults[pick], LEVEL_CYCLE[index % 3]


def level_of(s: float) -> str:
    """Damage level of a draw ``s`` (the range it falls in, or the nearest)."""
    return "low" if s < 0.4 else ("mid" if s < 0.7 else "high")


def clip_head(machine: str, section: int, fault: str | None, severity: float | None, index: int,
              rng: np.random.Generator) -> tuple[str, dict, float, str]:
    """The first draws of a v2 clip from its generator: attribute string, operating point, damage.

    Attributes first (they are in the file name), then, for an anomalous clip without a
    given ``severity``, the draw ``s`` in the range of the level planned for ``index``
    (:data:`LEVEL_CYCLE`).  :func:`minasd.synth._severity_of` replays exactly this.

    Returns:
        ``(attrs, op, s, level)``; a normal clip has ``s = 0`` and level "none".
    """
    model = MODELS_V2[machine]
    attrs, op = model.attributes(rng, model.sections[section])
    if fault is None:
        return attrs, op, 0.0, "none"
    if severity is None:
        level = LEVEL_CYCLE[index % 3]
        return attrs, op, float(rng.uniform(*LEVEL_RANGES[level])), level
    return attrs, op, float(severity), level_of(float(severity))


def machine_signal(machine: str, section: int, fault: str | None, severity: float | None, index: int,
                   rng: np.random.Generator, n: int, knobs_t: Mapping,
                   trace: dict | None = None) -> tuple[np.ndarray, np.random.Generator, dict]:
    """The machine part of a v2 clip (before noise and gain), shape (n,) float32.

    ``rng`` is the clip's generator (:func:`minasd.synth.clip_rng`).  After
    :func:`clip_head`, it spawns three children: the normal sound, the fault-only numbers
    and the scene (returned), so a fault never moves the normal part or the noise.
    ``trace`` (a dict) receives event times where the renderer records them (valve opens /
    closes, slider knocks, gearbox impacts).

    Returns:
        ``(x, r_scene, head)`` with head = attributes, op, severity, damage_level, effective.
    """
    model = MODELS_V2[machine]
    attrs, op, s, level = clip_head(machine, section, fault, severity, index, rng)
    r_machine, r_fault, r_scene = rng.spawn(3)
    e = float(knobs_t["sigma"]) * s if fault is not None else 0.0
    x = model.render(r_machine, r_fault, model.sections[section], op, n, fault, e, knobs_t, trace)
    head = {"attributes": attrs, "op": op, "severity": s, "damage_level": level, "effective": e}
    return np.asarray(x, np.float32), r_scene, head
