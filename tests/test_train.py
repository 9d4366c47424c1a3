"""Trainer: a tiny CPU run learns, is interrupted and resumed, and writes the run directory.

The encoder here is timm's ``mobilenetv3_small_050`` (``TrainConfig.backbone``), not
EfficientNet-B0: on a 2-core CI machine B0 takes about 0.8 s per step of 8 crops
(measured), so 44 steps of B0 took 65 s and did not yet separate the sections; the
small backbone runs 10x faster through the very same trainer code.
"""
import argparse
import json

import pytest
import torch

from minasd.train import TrainConfig, add_train_arguments, load_model, run_train, train

TYPES = ["fan", "pump", "valve"]
EPOCHS = 10


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    synth = pytest.importorskip("minasd.synth")
    return synth.make_dataset(tmp_path_factory.mktemp("synth") / "tiny", size="tiny", workers=1,
                              progress=False, machine_types=TYPES)


def _cfg(root, out, **kw):
    base = dict(machine_type="fan", data_root=str(root), out_dir=str(out), epochs=EPOCHS, batch_size=8,
                lr=0.003, lam=10.0, mixup=False, device="cpu", seed=0, val_crops_per_clip=3,
                backbone="mobilenetv3_small_050", progress=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def resumed_run(data_root, tmp_path_factory):
    """A run interrupted after epoch 4 (exception from the callback), then resumed."""
    out = tmp_path_factory.mktemp("runs") / "fan"
    cfg = _cfg(data_root, out)
    seen = []

    def stop_after_4(epoch, record):
        seen.append(epoch)
        if epoch == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(cfg, callback=stop_after_4)
    before = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg)  # an unfinished run is not touched without --resume
    train(cfg, resume=True, callback=lambda e, r: seen.append(e))
    return out, cfg, before, seen


def test_resume_completes_with_each_epoch_logged_once(resumed_run):
    out, cfg, before, seen = resumed_run
    assert [r["epoch"] for r in before] == [1, 2, 3, 4]
    assert seen == list(range(1, EPOCHS + 1))  # the resumed run starts at epoch 5
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, EPOCHS + 1))
    assert log[:4] == before
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "finished" and meta["epochs_done"] == EPOCHS
    last = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert last["epoch"] == EPOCHS and last["sampler"]["epoch"] == EPOCHS
    assert last["scheduler"]["last_epoch"] == EPOCHS * meta["counts"]["steps_per_epoch"]


def test_tiny_run_learns(resumed_run):
    out, cfg, _, _ = resumed_run
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    best = min(log, key=lambda r: r["val_loss"])
    assert best["val_loss"] < 0.6 * log[0]["val_loss"]  # validation loss falls
    k = len(json.loads((out / "run.json").read_text())["sections"])
    assert best["val_section_acc"] >= 2.0 / k  # chance is 1/K
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    for key in ("train_machine", "train_product", "val_machine", "val_product", "val_machine_acc", "lr",
                "seconds", "crops_per_s"):
        assert key in log[0]


def test_run_directory_contents(resumed_run, data_root):
    out, cfg, _, _ = resumed_run
    meta = json.loads((out / "run.json").read_text())
    assert meta["machine_type"] == "fan" and meta["sections"] == [0, 1, 2, 3, 4, 5]
    assert meta["data"]["synthetic"] is True and meta["hparams"]["lam"] == 10.0
    assert meta["ablation"] == {"mixup": False, "machine_loss": True}
    assert meta["model"]["backbone"] == "mobilenetv3_small_050"
    split = json.loads((out / "split.json").read_text())
    # 8 clips per section, 10 % -> one validation clip per section; paths relative to the root
    assert len(split["val"]) == 6 and len(split["train"]) == 42
    assert {p.split("/section_")[1][:2] for p in split["val"]} == {"00", "01", "02", "03", "04", "05"}
    assert not set(split["val"]) & set(split["train"])
    assert all((data_root / p).is_file() for p in split["train"] + split["val"])
    assert all("/fan/" not in p for p in split["other_val"] + split["other_train"])
    from minasd.data import load_norm_stats

    assert set(load_norm_stats(out / "norm_stats.json")) == {"fan"}
    assert TrainConfig.from_yaml(out / "config.yaml") == TrainConfig(**{**cfg.to_dict(),
                                                                        "data_root": str(data_root.resolve()),
                                                                        "out_dir": str(out.resolve())})


def test_load_model_restores_best_checkpoint(resumed_run):
    out, *_ = resumed_run
    model, meta = load_model(out, which="best")
    assert not model.training and meta["checkpoint"]["which"] == "best"
    best = torch.load(out / "checkpoints" / "best.pt", weights_only=False)
    assert meta["checkpoint"]["epoch"] == best["epoch"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, best["model"][name])
    with torch.no_grad():
        e, m, p = model(torch.randn(2, 224, 126))
    assert e.shape == (2, 128) and m.shape == (2,) and p.shape == (2, 6)


def test_refuses_finished_or_different_runs(resumed_run):
    out, cfg, _, _ = resumed_run
    with pytest.raises(FileExistsError, match="finished"):
        train(cfg, resume=True)
    with pytest.raises(FileExistsError, match="different configuration.*lam"):
        train(_cfg(cfg.data_root, out, lam=0.1))
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--machine-type", "fan", "--data", cfg.data_root, "--out", str(out), "--device", "cpu"])
    with pytest.raises(FileExistsError):
        run_train(args)


def test_mixup_and_product_only_ablation_run(data_root, tmp_path):
    out = tmp_path / "ablation"
    cfg = _cfg(data_root, out, epochs=1, mixup=True, machine_loss=False, max_train_clips_per_section=4,
               val_crops_per_clip=1)
    train(cfg)
    (record,) = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # product loss only: the optimised loss is lambda * L_product
    assert record["val_loss"] == pytest.approx(cfg.lam * record["val_product"], rel=1e-6)
    meta = json.loads((out / "run.json").read_text())
    assert meta["counts"]["target_train"] == 18 and meta["counts"]["target_val"] == 6
    train(cfg, overwrite=True)  # --overwrite starts again
    assert len((out / "log.jsonl").read_text().splitlines()) == 1
