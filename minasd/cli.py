"""The ``minasd`` command line.

Each sub-command is an ``add_<name>_arguments(parser)`` and ``run_<name>(args)``
pair in the module named in :data:`COMMANDS` (the method's own commands in
:mod:`minasd.commands`, the studies' in their modules); this file only wires
them, importing the one module of the command being run, so that ``minasd --help``
imports no command module (and no torch) and a CPU-only machine never imports
CUDA code it does not use.

    minasd demo                      # main job: small synthetic set -> summary (README)
    minasd index ROOT                # what minasd.data.index finds under a DCASE-style root
    minasd synth --size small --out DIR
    minasd download --machine-types fan pump --dest DIR
    minasd train --machine-type fan --data ROOT --out runs/fan
    minasd evaluate --run runs/fan
    minasd experiment --data ROOT --out results/
    minasd score --run runs/fan clip1.wav clip2.wav
    minasd results --out results/experiment      # the protocol over seeds, profile cpu (hours)
    minasd calibrate saturation --work out/calib  # factory calibration, method-independent (hours)
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

# name -> (module, help). The module provides add_<name>_arguments and run_<name>.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("minasd.demo", "main job: run the pipeline at small scale on synthetic (or given) data"),
    "index": ("minasd.cli", "summarise the clips found under a DCASE-style data root"),
    "synth": ("minasd.synth", "write a synthetic data set in the DCASE 2021 Task 2 layout"),
    "download": ("minasd.download", "download DCASE 2021 Task 2 from Zenodo (resumable, verified)"),
    "train": ("minasd.commands", "train the two-BCE model for one machine type"),
    "evaluate": ("minasd.commands", "fit the inlier models of a run and evaluate it (AUC, pAUC, DCASE files)"),
    "prepare": ("minasd.prepare", "turn a folder tree of normal and anomalous recordings into the DCASE 2021 "
                "layout"),
    "experiment": ("minasd.studies.experiment", "the paper's protocol: every type, proposed method, ablations, "
                   "comparison systems (DCASE 2021 autoencoder, TWFR-GMM, GMM on log-mel mean/std)"),
    "score": ("minasd.commands", "score clips with a trained and evaluated run"),
    "results": ("minasd.studies.results", "the committed results set: the protocol at a profile over seeds, aggregated"),
    "controlled": ("minasd.studies.controlled", "controlled experiments: one change per row vs a reference "
                   "and the GMM on log-mel mean/std"),
    "calibrate": ("minasd.calibrate", "calibrate the synthetic factory on published real-data numbers with the DCASE "
                  "autoencoder and mean/max GMM only (stages: baseline, saturation, search, check)"),
}


def add_index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", help="DCASE-style data root (holding dev_data/ and/or eval_data/)")
    parser.add_argument("--csv", default=None, help="also write the full clip index to this CSV file")


def run_index(args: argparse.Namespace) -> int:
    from . import data
    from .io_utils import atomic_write_text

    df = data.index(args.root)
    print(f"{len(df)} clips under {args.root}")
    print(data.summarize(df).to_string())
    if args.csv:
        atomic_write_text(args.csv, df.to_csv(index=False))
        print(f"index written to {args.csv}")
    return 0


def _hooks(name: str) -> tuple[Callable, Callable]:
    module = importlib.import_module(COMMANDS[name][0])
    return getattr(module, f"add_{name}_arguments"), getattr(module, f"run_{name}")


def command_in(argv: Sequence[str]) -> str | None:
    """The command named in ``argv``, or None (no command, or not a known one).

    The top-level parser has no option that takes a value, so the first word that is not
    an option is the command:

    >>> command_in(["--version"]), command_in(["train", "--help"]), command_in(["trian"])
    (None, 'train', None)
    """
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``minasd`` parser, importing only the module of ``command``.

    Every command is listed (its help text comes from :data:`COMMANDS`), but only the
    sub-parser of ``command`` gets its arguments, so ``minasd --help`` imports no command
    module and ``minasd train ...`` imports :mod:`minasd.commands` alone (which imports
    :mod:`minasd.train` only when the command runs).  ``command=None``
    gives the list of commands without any of their arguments.
    """
    parser = argparse.ArgumentParser(
        prog="minasd",
        description="Anomalous sound detection with two binary cross-entropies for outlier exposure "
        "(Kuroyanagi et al., 2022).",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"minasd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name != command:
            continue  # never parsed in this call: argparse parses the named command only
        try:
            add, _ = _hooks(name)
        except (ImportError, AttributeError) as err:  # keep the other commands usable
            p.set_defaults(_unavailable=f"command {name!r} is unavailable: {err}")
            continue
        add(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(command_in(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(f"minasd: {args._unavailable}", file=sys.stderr)
        return 2
    _, run = _hooks(args.command)
    try:
        result = run(args)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as err:
        # Bad input: one clear line, no traceback (the message names the file and problem).
        print(f"minasd {args.command}: error: {err}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
