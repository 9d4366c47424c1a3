"""Helpers the book's chapters share: set-up, data, results, and the tables several draw.

Every chapter starts with the same parameters (``dataset``, ``data_root``,
``scale``/``seed``, and for chapters 4-9 those of the live experiment) and one set-up
call, :func:`setup` (display options, :func:`prepare_data`, committed and live
results); every figure caption and table title uses :func:`data_label` (or
:func:`results_label`), so a reader always knows whether a number came from the
synthetic factory or from real DCASE recordings.  The labels live in
:mod:`minasd.provenance` and are imported here for the chapters; the paper's own
numbers are :mod:`minasd.paper`'s.  The package itself never imports this module.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from . import provenance as _provenance

# the chapters' caption words, defined in minasd.provenance (the one description of the data)
backbone_label = _provenance.backbone_label
data_label = _provenance.data_label
results_label = _provenance.results_label

DATASETS = ("synthetic", "dcase2021")


def default_cache() -> Path:
    """Where chapters put data when no ``data_root`` is given (``$MINASD_CACHE`` or ~/.cache/minasd)."""
    return Path(os.environ.get("MINASD_CACHE", Path.home() / ".cache" / "minasd"))


def prepare_data(data_root: str | Path | None = None, dataset: str = "synthetic", scale: str = "small",
                 seed: int = 0, machine_types: Sequence[str] | None = None) -> Path:
    """Return a DCASE-style data root, making or downloading it first if needed.

    Args:
        data_root: folder to use; default: a folder under :func:`default_cache`.
        dataset: ``"synthetic"`` (``minasd.synth`` at ``scale`` and ``seed``; reuses a finished
            set) or ``"dcase2021"`` (the real data, downloaded by ``minasd.download`` for
            ``machine_types``: several hundred MB per type, resumable).
        scale: synthetic size (``tiny``, ``small``, ``medium``, ``full``).
        machine_types: types to download (``dcase2021`` only); default all.

    Book: chapter 1.
    """
    if dataset == "synthetic":
        from .data import synthetic_set

        return synthetic_set(scale, seed, root=data_root or None, parent=default_cache())
    if dataset == "dcase2021":
        from . import download
        from .config import MACHINE_TYPES

        root = Path(data_root) if data_root else default_cache() / "dcase2021"
        download.download_dcase2021(list(machine_types or MACHINE_TYPES), root)
        return root
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def display_options() -> None:
    """The book's pandas display settings (every chapter calls this once): whole tables
    (every row and column, the whole text of every cell: no "...") and blanks for missing
    values in styled tables (a table that calls ``Styler.format`` passes ``na_rep`` itself)."""
    import pandas as pd

    for key, value in (("display.max_rows", None), ("display.max_columns", None), ("display.max_colwidth", None),
                       ("styler.format.na_rep", "")):
        pd.set_option(key, value)


@dataclass
class Chapter:
    """What a chapter's set-up cell hands to the rest of the chapter (:func:`setup`).

    Attributes:
        root: the DCASE-style data root of the chapter's parameters.
        label: :func:`data_label` of ``root`` (which data it is).
        committed: the committed results (:func:`load_committed`), or None.
        live: the live experiment's results (:func:`live_experiment`), or None.
        exp_dir: the live experiment's folder, or None.
    """

    root: Path
    label: str
    committed: dict | None = None
    live: dict | None = None
    exp_dir: Path | None = None

    @property
    def sources(self) -> list[tuple[str, dict]]:
        """``[("committed", results), ("live", results)]``, each only where present."""
        return [(name, res) for name, res in (("committed", self.committed), ("live", self.live)) if res is not None]


def setup(params: Mapping | None = None, *, results: bool = False, show_label: bool = True,
          download: Sequence[str] | None = None, fallback: str = "the live results") -> Chapter | None:
    """The set-up cell of every chapter: display options, data, and results if asked.

    Args:
        params: the chapter's parameters by name (a chapter passes ``globals()``: its
            ``parameters`` cell, as papermill set it): ``dataset``, ``data_root``, ``scale``,
            ``seed``; with ``results`` also ``results_dir``, ``live``, ``experiment_dir`` and
            those of :func:`chapter_experiment`.  None (chapter 10, which reads committed
            tables only): the display options alone, and None is returned.
        results: also load the committed results and, when ``live`` is true or there are
            none, the live experiment (:func:`chapter_experiment`), printing what each is.
        show_label: print which data ``root`` holds.
        download: the machine types to download when ``dataset`` is ``"dcase2021"``
            (default: every type; the synthetic set always holds every type).
        fallback: what the chapter shows without committed results (said in a note).

    Returns:
        The :class:`Chapter`.  Book: every chapter.
    """
    display_options()
    if params is None:
        return None
    root = prepare_data(params["data_root"], dataset=params["dataset"], scale=params["scale"], seed=params["seed"],
                        machine_types=download)
    chapter = Chapter(root, data_label(root))
    if show_label:
        print(chapter.label)
    if not results:
        return chapter
    chapter.committed = load_committed(params["results_dir"])
    if chapter.committed is None:
        from IPython.display import Markdown, display

        display(Markdown(f"**No committed results** at `{params['results_dir']}`: run `minasd results` (chapter 6) "
                         f"to make them; this chapter shows {fallback} only."))
    else:
        print("committed results:", results_label(chapter.committed))
    if params["live"] or chapter.committed is None:
        chapter.exp_dir, chapter.live = chapter_experiment(params, root)
        print("live results:", results_label(chapter.live))
    return chapter


def chapter_experiment(params: Mapping, root: str | Path) -> tuple[Path, dict]:
    """(folder, results) of the live experiment that a chapter's parameters ask for.

    The folder is ``experiment_dir``, or one in :func:`default_cache` named by ``scale`` and
    ``seed``; the parameters ``machine_types``, ``profile``, ``epochs``, ``backbone``,
    ``grid_lam``, ``seed``, ``device`` and ``tsne_max_other`` go to :func:`live_experiment`.
    Book: chapters 4-9.
    """
    p = params
    exp_dir = (Path(p["experiment_dir"]) if p["experiment_dir"]
               else default_cache() / f"experiment_{p['scale']}_seed{p['seed']}")
    return exp_dir, live_experiment(exp_dir, root, machine_types=p["machine_types"], profile=p["profile"],
                                    epochs=p["epochs"], backbone=p["backbone"], grid_lam=p["grid_lam"], seed=p["seed"],
                                    device=p["device"], tsne_max_other=p["tsne_max_other"])


# --------------------------------------------------------------------------------------
# results of `minasd experiment` in the chapters (4-9): committed full-scale and live
# --------------------------------------------------------------------------------------

def _split_words(value) -> list[str]:
    """``"fan ToyCar"`` or ``["fan", "ToyCar"]`` -> ``["fan", "ToyCar"]`` (papermill passes flat scalars)."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return [str(v) for v in value]


def _has_manifest(directory: Path) -> bool:
    return (directory / "manifest.json").is_file() or (directory / "results" / "manifest.json").is_file()


def load_committed(results_dir: str | Path | None) -> dict | None:
    """The committed full-scale results under ``results_dir``, or None when there are none.

    Only an absent manifest counts as "none": a result folder that exists but no longer
    matches the package's result schema raises (so CI fails on stale committed files).

    Returns:
        :func:`minasd.studies.experiment.load_results` of the folder, or None.  Book: chapters 4-8.
    """
    from .studies.experiment import load_results

    if not results_dir or not _has_manifest(Path(results_dir)):
        return None
    return load_results(results_dir)


def live_experiment(experiment_dir: str | Path, data_root: str | Path, machine_types="fan ToyCar",
                    epochs: int | None = None, backbone: str | None = None, grid_lam=None,
                    seed: int = 0, device: str = "cpu", max_train_clips_per_section: int | None = None,
                    tsne_max_other: int | None = None, progress: bool = True, profile: str = "cpu") -> dict:
    """Results of ``minasd experiment`` in ``experiment_dir``, running (or resuming) it first if needed.

    The chapters and ``ci/book.sh`` call this with the same flat parameters, so CI runs
    the experiment once and every chapter reads it.  A finished experiment whose
    settings match is loaded without recomputing anything; otherwise
    :func:`minasd.studies.experiment.experiment` runs, which itself skips finished training
    runs and finished machine types.

    Args:
        experiment_dir: the experiment folder (``runs/`` and ``results/``).
        data_root: DCASE-style data root.
        machine_types: target types, a space-separated string or a list.
        epochs: training epochs (None = the profile's).
        backbone: timm encoder (None = the profile's).  Any other name than the paper's
            EfficientNet-B0 is a cheaper stand-in (CPU) and every caption says so.
        grid_lam: lambda grid, a space-separated string or a list (None or empty:
            :data:`minasd.profiles.DEFAULT_GRID_LAM`).
        seed, device: as in :func:`minasd.studies.experiment.experiment`.
        max_train_clips_per_section: keep at most this many training clips per type and section.
        tsne_max_other: other-type clips in each t-SNE sample (None = the experiment's default).
        progress: progress bars and log lines.
        profile: training profile (:mod:`minasd.profiles`): encoder and batch size unless
            given here; lambda is chosen from ``grid_lam`` on sections 00-02 as always.

    Returns:
        :func:`minasd.studies.experiment.load_results` of the folder.  Book: chapters 4-9.
    """
    from .studies.experiment import TSNE_MAX_OTHER, VARIANTS, experiment, load_results
    from .profiles import DEFAULT_GRID_LAM, get_profile

    # papermill parameters: an empty value is "not given"
    epochs, overrides = get_profile(profile).experiment_settings(
        epochs=int(epochs) if epochs else None, backbone=backbone or None,
        max_train_clips_per_section=max_train_clips_per_section)
    types = _split_words(machine_types)
    lams = [float(v) for v in _split_words(grid_lam or list(DEFAULT_GRID_LAM))]
    tsne_other = TSNE_MAX_OTHER if tsne_max_other is None else int(tsne_max_other)
    d = Path(experiment_dir)
    if (d / "results" / "manifest.json").is_file():
        from .provenance import data_manifest

        loaded = load_results(d)
        prov = loaded["manifest"]["provenance"]
        if prov.get("data") != data_manifest(data_root) or Path(prov["data_root"]) != Path(data_root).resolve():
            raise ValueError(f"{d} holds results of another data set ({prov.get('data_root')}: {prov.get('data')}); "
                             f"delete {d} or choose another experiment_dir for {data_root}")
        cfg = prov["config"]
        same = (set(types) <= set(loaded["manifest"]["machine_types"]) and cfg.get("epochs") == epochs
                and [float(v) for v in cfg.get("grid_lam", [])] == lams and cfg.get("seed") == seed
                and cfg.get("train_overrides", {}) == overrides and cfg.get("tsne_max_other") == tsne_other
                and list(cfg.get("variants", [])) == list(VARIANTS))
        if same:
            if progress:
                print(f"[book] experiment in {d} is finished with these settings: loaded, nothing recomputed")
            return loaded
    return experiment(data_root, d, machine_types=types or None, epochs=epochs, device=device, grid_lam=lams,
                      seed=seed, train_overrides=overrides, tsne_max_other=tsne_other, progress=progress)


# --------------------------------------------------------------------------------------
# tables that several chapters (5-8) draw from results of `minasd experiment`
# --------------------------------------------------------------------------------------

def types_of(res: dict) -> list[str]:
    """Machine types of a result set, in the paper's order (:func:`minasd.metrics.machine_order`).
    Book: chapter 8."""
    from .metrics import machine_order

    return machine_order(res["manifest"]["machine_types"])


def seed_results(res: dict) -> dict[int, dict]:
    """The committed results of every seed beside ``res`` (``<results>/../seed*``), by seed.
    Book: chapters 5 and 7."""
    found = {int(d.name.removeprefix("seed")): load_committed(d) for d in Path(res["dir"]).parent.glob("seed*")}
    return {s: found[s] for s in sorted(found) if found[s] is not None}


def hmean_percent(rows, columns: Sequence[str] = ("auc", "pauc")) -> float:
    """Harmonic mean [%] of the AUCs and pAUCs (fractions) in ``columns`` of some section rows:
    100 x :func:`minasd.metrics.hmean_or_none` (0 when a value is 0), NaN (a blank cell) where
    that is None (a value missing).  Book: chapter 5."""
    import numpy as np

    from .metrics import hmean_or_none

    h = hmean_or_none(rows[list(columns)].to_numpy().ravel())
    return np.nan if h is None else 100 * h


def dev_vs_eval(res: dict, variant: str = "proposed"):
    """Per machine type: harmonic mean of AUC and pAUC [%] of ``variant`` on the validation
    sections 00-02 (where lambda, h and p are chosen) and on the test sections 03-05 (reported);
    NaN where a value is missing.  The column names say which sections the table holds (with a
    ``section`` column; a root of one's own recordings may have other development sections).
    Book: chapter 6."""
    import numpy as np
    import pandas as pd

    from .metrics import hmean_or_none

    s = res["tables"]["sections"]
    s = s[s["variant"] == variant]
    labels = {"dev": "sections 00-02 (selection)", "eval": "sections 03-05 (reported)"}
    if "section" in s.columns:  # name the sections the table holds (a root of one's own may have others)
        for role, what in (("dev", "selection"), ("eval", "reported")):
            secs = sorted({int(x) for x in s.loc[s["role"] == role, "section"]})
            if secs:
                names = (f"{secs[0]:02d}-{secs[-1]:02d}" if secs == list(range(secs[0], secs[-1] + 1)) and len(secs) > 1
                         else ", ".join(f"{x:02d}" for x in secs))
                labels[role] = f"{'section' if len(secs) == 1 else 'sections'} {names} ({what})"
    rows = []
    for m, part in s.groupby("machine", sort=False):
        row = {"machine type": m}
        for role, label in labels.items():
            p = part[part["role"] == role]
            h = hmean_or_none([*p["AUC"], *p["pAUC"]])  # AUC, pAUC in percent: the hmean is too
            row[label] = np.nan if h is None else h
        rows.append(row)
    return pd.DataFrame(rows).set_index("machine type")


def paper_analogue(res: dict, table: str, systems: bool = False):
    """Our Table II (``table="table2"``: the proposed method and the three comparison systems of
    :data:`minasd.studies.experiment.TABLE2_VARIANTS`) or Table III (``"table3"``: proposed and
    ablations): per variant and machine type, harmonic mean over sections 03-05 [%], columns as the
    paper's (:data:`minasd.paper.COLUMNS`; a type not run is NaN).  Rows are variant names (rename
    them with :data:`minasd.studies.experiment.VARIANT_LABELS` for display).

    Args:
        systems: Table III only: append the comparison systems' rows (from ``table2``), so the
            ablations are seen beside the field's systems too.

    Book: chapters 6 and 7."""
    import pandas as pd

    from .metrics import ALL_LABEL
    from .paper import COLUMNS
    from .studies.experiment import SYSTEMS, TABLE2_VARIANTS, TABLE3_VARIANTS

    variants = {"table2": TABLE2_VARIANTS, "table3": TABLE3_VARIANTS}[table]
    t = res["tables"][table]
    if systems and table == "table3":
        extra = res["tables"]["table2"]
        t = pd.concat([t, extra[extra["variant"].isin(SYSTEMS)]])
        variants = (*variants, *SYSTEMS)
    piv = t.pivot(index="variant", columns="machine", values="hmean").rename(columns={ALL_LABEL: "All/Har-mean"})
    return piv.reindex(index=[v for v in variants if v in set(t["variant"])], columns=COLUMNS)


def source_tag(name: str, res: dict) -> str:
    """The short name of a result set in a table beside the paper: ``"minasd, <name>: <data>"``."""
    from .provenance import data_caption

    return f"minasd, {name}: {data_caption(res['manifest']['provenance']['data'], 'short')}"


def beside_paper(number: str, paper_rows, ours: Sequence[tuple[str, dict, object]]):
    """The paper's Table ``number`` ("II" or "III") and this book's analogues in one styled table.

    Args:
        paper_rows: the paper's rows (:func:`minasd.paper.table2` / ``table3``), columns
            :data:`minasd.paper.COLUMNS`.
        ours: ``(name, results, table)`` per result set, ``table`` with the same columns.

    Returns:
        A pandas Styler indexed by (source, method), with its caption.  Book: chapters 6 and 7.
    """
    import pandas as pd

    from .paper import DATA

    frames = [paper_rows.assign(source="paper: real DCASE 2021 data")]
    for name, res, table in ours:
        frames.append(table.rename_axis("method").assign(source=source_tag(name, res)))
    side = pd.concat(frames).reset_index().set_index(["source", "method"])
    return side.style.format(precision=2, na_rep="-").set_caption(
        f"Table {number} (paper) beside the Table {number} analogues of this book, harmonic mean of AUC and pAUC [%] "
        f"over sections 03-05. Paper: {DATA}. "
        + " ".join(f"minasd {name}: {results_label(res)}." for name, res, _ in ours)
        + " Different data: not comparable across sources.")


# --------------------------------------------------------------------------------------
# the comparison systems beside the method (chapter 6): published numbers, choices, cost
# --------------------------------------------------------------------------------------

def published_real_data():
    """The published real-data numbers the book sets beside its own: the paper's Table II
    (:func:`minasd.paper.table2`) and the comparison systems' published results
    (:func:`minasd.paper.published_systems`), one row each [%], with the columns
    :data:`minasd.paper.COLUMNS` then ``metric``, ``data`` and ``source`` saying what each row
    measures, on which data set, and where it was read.  The rows differ in data set (DCASE 2021
    or 2022), sections and metric: they are comparable neither with each other across those
    columns nor with any number on synthetic data.  Book: chapter 6.

    >>> t = published_real_data()
    >>> float(t.loc["TWFR-GMM", "valve"]), float(t.loc["Proposed method (the paper)", "All/Har-mean"])
    (96.0, 69.42)
    """
    import pandas as pd

    from . import paper

    data = paper.DATA.split(";")[0]  # the data part of DATA (the rest is the proposed method's training)
    t2 = paper.table2()[paper.COLUMNS].assign(
        metric="harmonic mean of AUC and pAUC (p = 0.1) over sections 03-05", data=data,
        source=f"{paper.SOURCE}, Table II")
    t2.index = [f"{m} (the paper)" for m in t2.index]
    pub = paper.published_systems()
    pub = pub.set_index("system")[[*paper.MACHINE_TYPES, "metric", "data", "source"]]
    return pd.concat([t2, pub]).reindex(columns=[*paper.COLUMNS, "metric", "data", "source"]).rename_axis("system")


def _system_record(res: dict, machine: str, variant: str) -> dict | None:
    return (res["types"].get(machine) or {}).get("variants", {}).get(variant)


def twfr_choices(runs: Mapping[int, dict]):
    """TWFR-GMM's choice on sections 00-02 per machine type and seed: the mixture's components
    ``k``, the pooling's decay ``r`` (0 = max pooling ... 1 = mean pooling), the dev harmonic mean
    it reached [%] and how it was chosen, from the type records (``variants.twfr_gmm.selected``).
    Empty when no seed ran TWFR-GMM.  Book: chapter 6.

    Args:
        runs: results by seed (:func:`seed_results`).
    """
    import pandas as pd

    rows = []
    for seed, res in runs.items():
        for m in types_of(res):
            rec = _system_record(res, m, "twfr_gmm")
            if rec and rec.get("selected"):
                sel = rec["selected"]
                rows.append({"machine type": m, "seed": seed, "k": sel["k"], "r": sel["r"],
                             "dev hmean [%]": 100 * sel["dev_hmean"], "how": sel["how"]})
    return pd.DataFrame(rows, columns=["machine type", "seed", "k", "r", "dev hmean [%]", "how"]).set_index(
        ["machine type", "seed"])


def ae_decisions(res: dict):
    """The official autoencoder's decision threshold per machine type and model, and what it decides:
    one row per (type, model group, test section) with the threshold (the gamma quantile of the
    training clips' scores, as the recipe does it), and the counts and precision / recall / F1 of
    "score above threshold" against the labels.  Empty when the results have no autoencoder.
    Book: chapter 6.
    """
    import pandas as pd

    rows = []
    for m in types_of(res):
        rec = _system_record(res, m, "ae_dcase2021") or {}
        for model in rec.get("models", []):
            thr = model["threshold"]
            for sec, d in sorted(model.get("decisions", {}).items(), key=lambda kv: int(kv[0])):
                rows.append({"machine type": m, "model": model["group"], "section": f"{int(sec):02d}",
                             "threshold": thr["value"], "how": f"{thr['method']} q={thr.get('q', '')}",
                             **{k: d[k] for k in ("tp", "fp", "fn", "tn", "precision", "recall", "f1")}})
    cols = ["machine type", "model", "section", "threshold", "how", "tp", "fp", "fn", "tn", "precision", "recall",
            "f1"]
    return pd.DataFrame(rows, columns=cols).set_index(["machine type", "model", "section"])


#: What :func:`cost_table` reads of each variant's type record, and how it labels it.
COST_MEASURES: dict[str, tuple[tuple[str, ...], str]] = {
    "proposed": (("training", "train_seconds"), "training, wall s (chosen run)"),
    "ae_dcase2021": (("cpu_s",), "CPU s (features, training, scoring)"),
    "twfr_gmm": (("cpu_s",), "CPU s (features, choice of k and r, fits, scoring)"),
    "gmm_meanstd": (("cpu_s",), "CPU s (features, fits, scoring)"),
}


def cost_table(runs: Mapping[int, dict]):
    """Seconds each system took per machine type, mean over the seeds that recorded it, and the sum
    over the types (:data:`COST_MEASURES`: the comparison systems' process CPU seconds ``cpu_s``,
    feature worker processes not counted; the proposed method's training wall seconds of its chosen
    run, whose record may have been kept from an earlier run: see :func:`kept_note`).

    Returns:
        Rows the machine types then ``"all types (sum)"``; columns the variants of
        :data:`COST_MEASURES` present, named ``"<label>: <measure>"``.  Book: chapter 6.
    """
    import pandas as pd

    from .studies.experiment import VARIANT_LABELS

    values: dict[str, dict[str, list[float]]] = {}
    for res in runs.values():
        for m in types_of(res):
            for v, (path, what) in COST_MEASURES.items():
                x = _system_record(res, m, v)
                for key in path:
                    x = x.get(key) if isinstance(x, Mapping) else None
                if x is not None:
                    values.setdefault(f"{VARIANT_LABELS[v]}: {what}", {}).setdefault(m, []).append(float(x))
    table = pd.DataFrame({col: {m: sum(v) / len(v) for m, v in per.items()} for col, per in values.items()})
    if table.empty:
        return table
    table = table.reindex([m for m in types_of(next(iter(runs.values()))) if m in table.index]
                          + [m for m in table.index if m not in types_of(next(iter(runs.values())))])
    table.loc["all types (sum)"] = table.sum()
    return table


def kept_note(runs: Mapping[int, dict]) -> str:
    """Which type records kept their method variants from an earlier run (``kept`` of the record):
    "" when none did, else a sentence naming the seeds and types and when those were trained."""
    kept = [(s, m, rec["kept"]) for s, res in runs.items() for m in types_of(res)
            if (rec := res["types"].get(m) or {}).get("kept")]
    if not kept:
        return ""
    when = sorted({str(k.get("finished_at", "?"))[:10] for _, _, k in kept})
    return (f"{len(kept)} type records (seed, type) kept the method's variants from an earlier run (finished "
            f"{', '.join(when)}) and computed only the comparison systems: the method's seconds are those of "
            f"that run.")


def real_size_figures(path: str | Path):
    """Chapter 11's measured resources of a one-type run at the real data's size, and the T4 estimate.

    Reads the JSON that ``benchmarks/bench_real_size.py`` writes beside its report; returns a
    table (what, figure, how it was obtained): disk, host memory, the input pipeline, and the
    GPU time per epoch and per type of :func:`minasd.profiles.colab_estimate` (labelled an
    estimate).  Raises FileNotFoundError naming the file when it is missing.
    """
    import json

    import pandas as pd

    from .profiles import colab_estimate, get_profile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run benchmarks/bench_real_size.py (its --out names the report)")
    fig = json.loads(path.read_text(encoding="utf-8"))
    data, store, tr = fig["data"], fig["store"], fig["training"]
    gib = 1024 ** 3
    n_files = data["target_train"] + data["target_test"] + data["negatives"]
    wav_bytes = n_files * (160_000 * 2 + 44)
    measured = "measured (synthetic, 2-core CPU)"
    rows = [
        ("WAV files of the data root", f"{wav_bytes / gib:.1f} GiB", f"{n_files:,} clips x 320,044 bytes (computed)"),
        ("waveform store", f"{store['bytes'] / gib:.1f} GiB", f"{measured}; built in {store['wall_s']:.0f} s"),
        ("peak host memory, store build", f"{store['peak_anon_mib']:,} MiB", f"{measured}, anonymous memory"),
        (f"peak host memory, minasd train ({tr['epochs']} epoch)", f"{tr['train']['peak_anon_mib']:,} MiB",
         f"{measured}, anonymous memory ({tr['config'].get('backbone') or 'EfficientNet-B0'})"),
        ("peak host memory, minasd evaluate", f"{tr['evaluate']['peak_anon_mib']:,} MiB",
         f"{measured}, anonymous memory"),
    ]
    for key, r in fig["pipeline_crops_per_s"].items():
        cache, batch = key.split()
        how = ("the store's pages dropped first: every crop read from this machine's disk" if cache == "cold"
               else "the whole store in the page cache")
        rows.append((f"input pipeline, batch {batch}, page cache {cache}", f"{float(r):,.0f} crops/s",
                     f"{measured}, 1 thread, host side of a step; {how}"))
    epochs = get_profile("colab").epochs
    est = colab_estimate(epochs)
    rows += [
        ("T4 training rate, EfficientNet-B0 on our crops", f"{est['crops_per_s']:,.0f} crops/s",
         "ESTIMATE from published V100 and T4 figures (minasd.profiles.COLAB_FIT)"),
        ("T4 time per epoch (one DCASE 2021 type)", f"{est['s_per_epoch']:.0f} s", "ESTIMATE, training steps only"),
        (f"T4 time per type, profile colab ({epochs} epochs, 4 trainings)", f"{est['h_per_type']:.1f} h",
         "ESTIMATE, training steps only"),
    ]
    return pd.DataFrame(rows, columns=["what", "figure", "how it was obtained"]).set_index("what")


# --------------------------------------------------------------------------------------
# one's own recordings (chapter 12): the clips and recordings of a type made by minasd prepare
# --------------------------------------------------------------------------------------

def prepared_labels(manifest: Mapping):
    """One row per clip of the type that a ``minasd prepare`` manifest (``minasd_prepare.json``) describes.

    Columns: those of a labels table of :mod:`minasd.studies.analysis` (``relpath, machine,
    section, label, anomaly_kind, severity_class, severity``), then ``recording`` (the source
    file below the input folder) and ``class`` (its class folder).  An anomalous clip's kind is
    its recording's class folder; prepare records no severity, so each anomalous clip gets
    severity class ``"anomaly"`` and severity 1 (required by the analysis, used by none of
    the AUCs).  Book: chapter 12.

    >>> m = {"machine_type": "uav", "recordings": [{"source": "b/1.wav", "class": "b", "label": 1,
    ...      "section": 3, "clips": ["eval_data/uav/source_test/section_03_source_test_0000.wav"]}]}
    >>> prepared_labels(m)[["section", "anomaly_kind", "recording"]].to_numpy().tolist()
    [[3, 'b', 'b/1.wav']]
    """
    import numpy as np
    import pandas as pd

    rows = [{"relpath": clip, "machine": manifest["machine_type"], "section": int(r["section"]),
             "label": int(r["label"]), "anomaly_kind": r["class"] if r["label"] else None,
             "severity_class": "anomaly" if r["label"] else None, "severity": 1.0 if r["label"] else np.nan,
             "recording": r["source"], "class": r["class"]}
            for r in manifest["recordings"] for clip in r["clips"]]
    cols = ["relpath", "machine", "section", "label", "anomaly_kind", "severity_class", "severity", "recording",
            "class"]
    return pd.DataFrame(rows, columns=cols)


def recording_credit(scores, labels, variant: str, sections: Sequence[int] | None = None):
    """How well one variant ranks each test recording: the share of its clip pairs ranked right.

    Pairs are formed within a section and seed, as the AUC forms them: an anomalous clip with
    each normal clip (right: the anomalous one scores higher), a normal clip with each anomalous
    clip (the same pairs seen from the other side); a tie counts half.  Pooled over a recording's
    clips and the seeds, so over all anomalous recordings of a section and seed it is that
    section's AUC.

    Args:
        scores: per-clip scores (``OUT/seed<k>/scores``: machine, section, clip, label, variant,
            seed, score), clips named by file name.
        labels: :func:`prepared_labels` of the same type.
        variant: the variant ranked.
        sections: sections kept (default 03-05).

    Returns:
        One row per recording: ``section, recording, class, clips`` (distinct clips) and
        ``ranked_right`` (a fraction), worst first.  Book: chapter 12.
    """
    import numpy as np
    import pandas as pd

    from .config import EVAL_SECTIONS

    keep = [int(s) for s in (EVAL_SECTIONS if sections is None else sections)]
    lab = labels.assign(clip=labels["relpath"].str.rsplit("/", n=1).str[-1])[["section", "clip", "recording", "class"]]
    df = scores[(scores["variant"] == variant) & scores["section"].isin(keep)]
    df = df.merge(lab, on=["section", "clip"], how="left", validate="many_to_one")
    if df["recording"].isna().any():
        raise ValueError(f"{int(df['recording'].isna().sum())} scored clips are not in the labels (another data set?)")
    parts = []
    for _, part in df.groupby(["seed", "section"]):
        y, s = part["label"].to_numpy(), part["score"].to_numpy()
        normal, anom = np.sort(s[y == 0]), np.sort(s[y == 1])
        n_lo, n_hi = np.searchsorted(normal, s, "left"), np.searchsorted(normal, s, "right")
        a_lo, a_hi = np.searchsorted(anom, s, "left"), np.searchsorted(anom, s, "right")
        wins = np.where(y == 1, n_lo + 0.5 * (n_hi - n_lo), anom.size - a_hi + 0.5 * (a_hi - a_lo))
        parts.append(part.assign(wins=wins, pairs=np.where(y == 1, normal.size, anom.size)))
    cols = ["section", "recording", "class", "clips", "ranked_right"]
    if not parts:
        return pd.DataFrame(columns=cols)
    g = pd.concat(parts).groupby(["section", "recording", "class"]).agg(
        clips=("clip", "nunique"), wins=("wins", "sum"), pairs=("pairs", "sum")).reset_index()
    g["ranked_right"] = g["wins"] / g["pairs"]
    return g[cols].sort_values(["ranked_right", "section", "recording"], ignore_index=True)
