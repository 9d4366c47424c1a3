"""One mapping from a profile (and the options given) to training settings, recorded alike by every entry point."""
import pytest

from minasd import cli
from minasd.profiles import DEFAULT_GRID_LAM, PROFILES, get_profile

FIELDS = ("profile", "backbone", "epochs", "batch_size")


class Stop(Exception):
    """Raised by a stub once it has seen the settings: nothing is trained."""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from minasd.synth import make_dataset

    return make_dataset(tmp_path_factory.mktemp("prof") / "tiny", size="tiny", workers=1, progress=False,
                        machine_types=["fan", "pump"])


def recorded_settings(root, tmp_path, monkeypatch, profile: str, epochs: int | None) -> dict[str, dict]:
    """What each entry point hands to training for ``--profile profile [--epochs epochs]``."""
    import minasd.book
    import minasd.demo
    import minasd.studies.experiment
    import minasd.studies.results
    import minasd.train
    from minasd.studies.controlled import REFERENCE, ROWS, Context

    seen: dict[str, dict] = {}
    opt = [] if epochs is None else ["--epochs", str(epochs)]

    def from_config(cfg) -> dict:
        return {k: getattr(cfg, k) for k in FIELDS}

    def from_experiment(kw) -> dict:  # every key the experiment records in its signature, None ones included
        return {"epochs": kw["epochs"], **kw["train_overrides"]}

    def stop_train(cfg, **_):
        seen["train"] = from_config(cfg)
        raise Stop

    monkeypatch.setattr(minasd.train, "train", stop_train)
    with pytest.raises(Stop):
        cli.main(["train", "--machine-type", "fan", "--data", str(root), "--out", str(tmp_path / "t"),
                  "--profile", profile, *opt])

    def stop_reuse(cfg, progress):
        seen["demo"] = from_config(cfg)
        raise Stop

    monkeypatch.setattr(minasd.demo, "_train_or_reuse", stop_reuse)
    with pytest.raises(Stop):
        cli.main(["demo", "--data", str(root), "--out", str(tmp_path / "d"), "--profile", profile, "--quiet", *opt])

    def stop_experiment(data_root, out_dir, **kw):
        seen[out_dir.name if hasattr(out_dir, "name") else str(out_dir)] = from_experiment(kw)
        raise Stop

    monkeypatch.setattr(minasd.studies.experiment, "experiment", stop_experiment)
    with pytest.raises(Stop):
        cli.main(["experiment", "--data", str(root), "--out", str(tmp_path / "experiment"), "--profile", profile, *opt])
    with pytest.raises(Stop):
        minasd.book.live_experiment(tmp_path / "book", root, machine_types="fan", epochs=epochs, profile=profile,
                                    progress=False)

    def stop_job(kwargs, log_path):
        seen["results"] = from_experiment(kwargs)
        raise Stop

    monkeypatch.setattr(minasd.studies.results, "_run_task", stop_job)
    with pytest.raises(Stop):
        cli.main(["results", "--data", str(root), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
                  "--profile", profile, "--machine-types", "fan", "--jobs", "1", "--quiet", *opt])
    epochs_ctx = get_profile(profile).settings(epochs=epochs)["epochs"]
    ctx = Context(root=root, work=tmp_path / "c", profile=profile, epochs=epochs_ctx, lam=10.0, seed=0,
                  device="cpu", progress=False)
    seen["controlled"] = from_experiment(ctx.experiment_kwargs(ROWS[REFERENCE], "fan"))
    seen["book"] = seen.pop("book")
    return seen


@pytest.mark.parametrize("profile, epochs", [("cpu", None), ("cpu", 3), ("paper", 2)])
def test_every_entry_point_records_the_same_settings(root, tmp_path, monkeypatch, profile, epochs):
    seen = recorded_settings(root, tmp_path, monkeypatch, profile, epochs)
    assert set(seen) == {"train", "demo", "experiment", "book", "results", "controlled"}
    want = {k: v for k, v in get_profile(profile).settings(epochs=epochs).items() if k in FIELDS}
    for entry, got in seen.items():
        assert got == want, entry


def test_settings_take_explicit_options_and_keep_every_key():
    cpu = get_profile("cpu")
    assert cpu.settings() == {"profile": "cpu", "backbone": "mobilenetv3_small_050", "epochs": 20, "batch_size": 32,
                              "lam": 10.0}
    assert cpu.settings(backbone="efficientnet_b0", batch_size=8, lam=0.1, epochs=0) == {
        "profile": "cpu", "backbone": "efficientnet_b0", "epochs": 0, "batch_size": 8, "lam": 0.1}  # 0 is given
    paper = get_profile("paper").settings()
    assert paper["backbone"] is None and paper["batch_size"] is None and paper["lam"] is None  # B0, Table I
    epochs, over = get_profile("paper").experiment_settings(max_train_clips_per_section=5)
    assert epochs == 300 and over == {"profile": "paper", "backbone": None, "batch_size": None,
                                      "max_train_clips_per_section": 5}
    assert set(PROFILES) == {"paper", "cpu", "colab"}


def test_one_default_lambda_grid():
    import minasd.studies.experiment
    from minasd.studies.results import add_results_arguments
    import argparse

    assert DEFAULT_GRID_LAM == (0.1, 10.0) and minasd.studies.experiment.DEFAULT_GRID_LAM is DEFAULT_GRID_LAM
    p = argparse.ArgumentParser()
    add_results_arguments(p)
    assert tuple(p.parse_args([]).grid_lam) == DEFAULT_GRID_LAM
    p = argparse.ArgumentParser()
    minasd.studies.experiment.add_experiment_arguments(p)
    assert tuple(p.parse_args(["--data", "d", "--out", "o"]).grid_lam) == DEFAULT_GRID_LAM
