"""Trainer: a tiny CPU run learns, is interrupted and resumed, and writes the run directory.

The encoder here is timm's ``mobilenetv3_small_050`` (``TrainConfig.backbone``), not
EfficientNet-B0: on a 2-core CI machine B0 takes about 0.8 s per step of 8 crops
(measured), so 44 steps of B0 took 65 s and did not yet separate the sections; the
small backbone runs 10x faster through the very same trainer code.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from minasd.runs import load_model
from minasd.commands import add_train_arguments, run_train
from minasd.train import TrainConfig, train

TYPES = ["fan", "pump", "valve"]
EPOCHS = 10


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """The tiny synthetic set plus target-domain training clips (DCASE 2021 puts a few per section in
    train/): copies of source clips under ``section_XX_target_train_normal_...`` names, with their
    samples scaled by 4 so that they would show in the amplitude statistics if they were used."""
    synth = pytest.importorskip("minasd.synth")
    import numpy as np
    import soundfile as sf

    root = synth.make_dataset(tmp_path_factory.mktemp("synth") / "tiny", size="tiny", workers=1,
                              progress=False, machine_types=TYPES)
    for machine in TYPES:
        sources = sorted((root / "dev_data" / machine / "train").glob("section_0[0-2]_source_train_normal_0000_*.wav"))
        for i, src in enumerate(sources):
            wave, sr = sf.read(src, dtype="float32")
            dst = src.with_name(src.name.replace("_source_train_normal_0000", f"_target_train_normal_{i:04d}"))
            sf.write(dst, np.clip(4 * wave, -1, 1), sr, subtype="PCM_16")
    assert len(list(root.rglob("*_target_train_*.wav"))) == 3 * len(TYPES)
    return root


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
    last = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == EPOCHS and last["sampler"]["epoch"] == EPOCHS
    assert last["scheduler"]["last_epoch"] == EPOCHS * meta["counts"]["steps_per_epoch"]


def test_tiny_run_learns(resumed_run):
    out, cfg, _, _ = resumed_run
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # Learning, asserted on averages over several epochs (not one epoch against a
    # knife-edge ratio): the numbers move with the thread count and the BLAS kernels.
    first, last = log[:3], log[-3:]
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    assert mean(last, "train_loss") < 0.8 * mean(first, "train_loss")  # training loss falls
    assert min(r["val_loss"] for r in log[3:]) < mean(first, "val_loss")  # validation loss falls
    k = len(json.loads((out / "run.json").read_text())["sections"])
    assert max(r["val_section_acc"] for r in log) >= 2.0 / k  # chance is 1/K
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
    best = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
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


# --- the clips the trainer uses -----------------------------------------------------------------


def test_target_domain_clips_are_never_used(resumed_run, data_root):
    out, *_ = resumed_run
    split = json.loads((out / "split.json").read_text())
    used = [p for part in ("train", "val", "other_train", "other_val") for p in split[part]]
    assert used and not [p for p in used if "_target_" in p]
    assert len(used) == len(list(data_root.rglob("*_source_train_*.wav")))  # every source clip, nothing else
    meta = json.loads((out / "run.json").read_text())
    assert meta["wave_store"]["clips"] == len(used)  # the store holds no target-domain clip either


def test_norm_stats_are_those_of_the_training_split(resumed_run, data_root):
    from minasd.data import compute_norm_stats, load_norm_stats

    out, *_ = resumed_run
    split = json.loads((out / "split.json").read_text())
    want = compute_norm_stats([data_root / p for p in split["train"]], progress=False)
    got = load_norm_stats(out / "norm_stats.json")["fan"]
    assert got.n_clips == want.n_clips == len(split["train"]) and got.n_samples == want.n_samples
    assert got.mean == pytest.approx(want.mean, rel=1e-9, abs=1e-12)
    assert got.std == pytest.approx(want.std, rel=1e-9)


# --- resume ----------------------------------------------------------------------------------


def test_interrupted_and_resumed_run_equals_the_uninterrupted_run(data_root, tmp_path, monkeypatch):
    """Bit-for-bit: same thread count (one process), Mixup on, 3 epochs, interrupted after 2."""
    import minasd.train as train_mod

    kw = dict(epochs=3, mixup=True, max_train_clips_per_section=2, val_crops_per_clip=1)
    whole = train(_cfg(data_root, tmp_path / "whole", **kw))

    loads = []
    real_load = torch.load

    def spy(*a, **k):  # every checkpoint read: plain data only, onto the CPU
        loads.append((k.get("map_location"), k.get("weights_only")))
        return real_load(*a, **k)

    monkeypatch.setattr(train_mod.torch, "load", spy)

    def stop_after_2(epoch, record):
        if epoch == 2:
            raise Interrupt

    parts = _cfg(data_root, tmp_path / "parts", **kw)
    with pytest.raises(Interrupt):
        train(parts, callback=stop_after_2)
    train(parts, resume=True)
    assert loads == [("cpu", True)]
    a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "parts" / "checkpoints" / "last.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    for p, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][p][key]), (p, key)
            if key == "step":
                assert value.device.type == "cpu"  # AdamW's step counters stay on the CPU
    timing = ("seconds", "train_seconds", "crops_per_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    meta = json.loads((tmp_path / "parts" / "run.json").read_text())
    assert [s["from_epoch"] for s in meta["runtime_history"]] == [0, 2]


# --- checkpoints and run folders: safe loading, clear errors ----------------------------------


@pytest.fixture
def run_copy(resumed_run, tmp_path):
    import shutil

    out, *_ = resumed_run
    return Path(shutil.copytree(out, tmp_path / "run"))


def test_checkpoints_hold_plain_data_only(resumed_run):
    out, *_ = resumed_run
    for name in ("best.pt", "last.pt"):
        ck = torch.load(out / "checkpoints" / name, weights_only=True)  # raises on anything but plain data
        assert isinstance(ck["model_spec"], dict) and isinstance(ck["epoch"], int)


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "pickled object"])
def test_unreadable_checkpoint_is_a_clear_error(run_copy, damage):
    import os

    best = run_copy / "checkpoints" / "best.pt"
    raw = best.read_bytes()
    if damage == "truncated":
        best.write_bytes(raw[: len(raw) // 2])
    elif damage == "random bytes":
        best.write_bytes(bytes(range(256)) * 64)
    elif damage == "empty":
        best.write_bytes(b"")
    else:  # a reference to a callable: unpickling arbitrary objects could run code
        torch.save({"model": os.system, "epoch": 1, "model_spec": {}}, best)
    with pytest.raises(ValueError, match=rf"{best}.*not a readable minasd checkpoint"):
        load_model(run_copy)


def test_checkpoint_of_another_model_is_refused(run_copy):
    from minasd.model import ASDModel

    best = run_copy / "checkpoints" / "best.pt"
    other = ASDModel(n_sections=3, backbone="mobilenetv3_small_050")  # another model size
    torch.save({"model": other.state_dict(), "epoch": 1, "val_loss": 1.0, "model_spec": other.to_spec()}, best)
    with pytest.raises(ValueError, match=rf"{best} holds the model .*'n_sections': 3.*belongs to another run"):
        load_model(run_copy)
    # a spec that matches run.json but weights of another size
    spec = json.loads((run_copy / "run.json").read_text())["model"]
    torch.save({"model": other.state_dict(), "epoch": 1, "val_loss": 1.0, "model_spec": spec}, best)
    with pytest.raises(ValueError, match=rf"{best}: its weights do not fit.*size mismatch"):
        load_model(run_copy)
    torch.save({"weights": other.state_dict()}, best)
    with pytest.raises(ValueError, match=rf"{best} is not a minasd checkpoint: it lacks \['model', 'epoch'"):
        load_model(run_copy)


@pytest.mark.parametrize("missing", ["run.json", "checkpoints/best.pt"])
def test_run_folder_with_a_missing_file_is_a_clear_error(run_copy, missing):
    (run_copy / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{run_copy / missing} does not exist"):
        load_model(run_copy)


def test_resume_with_a_missing_or_damaged_file_is_a_clear_error(run_copy, data_root):
    cfg = _cfg(data_root, run_copy)
    meta = json.loads((run_copy / "run.json").read_text())
    (run_copy / "run.json").write_text(json.dumps({**meta, "status": "running"}))  # an unfinished run
    (run_copy / "split.json").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{run_copy / 'split.json'} does not exist.*--overwrite"):
        train(cfg, resume=True)
    (run_copy / "split.json").write_text("{")
    with pytest.raises(ValueError, match=rf"{run_copy / 'split.json'} is not valid JSON"):
        train(cfg, resume=True)
    (run_copy / "run.json").write_text('{"status": "runn')  # cut off mid-write by hand
    with pytest.raises(ValueError, match=rf"{run_copy / 'run.json'} is not valid JSON.*--overwrite"):
        train(cfg, resume=True)


# --- device settings --------------------------------------------------------------------------


def test_runtime_settings_are_chosen_in_one_table(monkeypatch):
    import minasd.runtime as rt_mod
    from minasd.runtime import runtime_settings

    for capability, dtype in (((8, 0), "bfloat16"), ((7, 5), "float16")):  # A100 and newer; a T4 (Colab)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None, c=capability: c)
        cuda = runtime_settings("cuda:0", "mobilenetv3_small_050")
        assert (cuda.memory_format, cuda.autocast_dtype, cuda.pin_memory) == ("channels_last", dtype, True)
    for has_bf16 in (True, False):
        monkeypatch.setattr(rt_mod, "cpu_has_bf16", lambda: has_bf16)
        cpu = {b: runtime_settings("cpu", b) for b in ("resnet18", "efficientnet_b0", "mobilenetv3_small_050",
                                                       "some_new_encoder")}
        assert all(s.memory_format == "channels_last" and not s.pin_memory for s in cpu.values())
        assert cpu["resnet18"].autocast_dtype == ("bfloat16" if has_bf16 else None)  # dense: bf16 pays
        assert {cpu[b].autocast_dtype for b in cpu if b != "resnet18"} == {None}  # depthwise or unmeasured
    assert runtime_settings("cpu", None) == runtime_settings("cpu", "efficientnet_b0")


def test_float16_autocast_trains_through_the_loss_scaler(data_root, tmp_path):
    """The float16 path of an older GPU (a T4) runs the very lines of the CPU path, with the scaler active."""
    import dataclasses

    from minasd.train import build_data, build_fit, train_step

    cfg = _cfg(data_root, tmp_path / "run")
    td, sel, stats = build_data(cfg)
    fit = build_fit(cfg, td, stats, len(sel["sections"]), torch.device("cpu"))
    rt16 = dataclasses.replace(fit.rt, autocast_dtype="float16")
    fit.pipe.runtime = rt16
    scaler = rt16.grad_scaler()
    assert scaler.is_enabled() and not fit.rt.grad_scaler().is_enabled()
    before = [p.detach().clone() for p in fit.plain.parameters()]
    idx = next(iter(fit.sampler.epoch_batches()))
    starts = fit.pipe.random_starts(idx, np.random.default_rng(0))
    parts = train_step(fit.model, fit.optimizer, None, fit.pipe, idx, starts, None, fit.n_sections, 1.0,
                       True, True, scaler=scaler)
    assert torch.isfinite(parts.total) and scaler.get_scale() > 0
    changed = any(not torch.equal(a, b) for a, b in zip(before, fit.plain.parameters()))
    assert changed or scaler.get_scale() < 65536.0  # a step was taken, or skipped on overflow and the scale lowered


def test_run_json_records_the_runtime_settings(resumed_run):
    from minasd.runtime import runtime_settings

    out, *_ = resumed_run
    meta = json.loads((out / "run.json").read_text())
    want = runtime_settings("cpu", "mobilenetv3_small_050").to_dict()
    assert {k: meta["runtime"][k] for k in want} == want
    assert meta["runtime"]["threads"] == torch.get_num_threads()
    assert [s["from_epoch"] for s in meta["runtime_history"]] == [0, 4]
