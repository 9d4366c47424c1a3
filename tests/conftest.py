"""Fixtures shared by several test modules."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED_TYPES = ["fan", "pump"]


def shared_trained_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data_root, run_dir) of one tiny trained run, built once per session and reused by
    test_evaluate.py and test_detector.py: tiny synthetic set (fan + pump), 1 epoch of the
    cheap ``mobilenetv3_small_050`` encoder on CPU."""
    base = tmp_path_factory.getbasetemp() / "minasd_shared_eval"
    root, run = base / "tiny", base / "run_fan"
    if not (run / "run.json").is_file() or json.loads((run / "run.json").read_text()).get("status") != "finished":
        from minasd.synth import make_dataset
        from minasd.train import TrainConfig, train

        make_dataset(root, size="tiny", workers=1, progress=False, machine_types=SHARED_TYPES)
        train(TrainConfig(machine_type="fan", data_root=str(root), out_dir=str(run), epochs=1, batch_size=8,
                          device="cpu", backbone="mobilenetv3_small_050", progress=False))
    return root, run


@pytest.fixture(autouse=True)
def _torch_thread_count_unchanged():
    """No test may leave torch's intra-op thread count changed: later tests (and, in
    production, later stages of one process) would silently run on fewer threads."""
    import torch

    before = torch.get_num_threads()
    yield
    after = torch.get_num_threads()
    if after != before:
        torch.set_num_threads(before)
        pytest.fail(f"the test changed torch's thread count from {before} to {after} and left it so")
