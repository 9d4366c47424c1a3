import subprocess
import sys

import pytest

from minasd import cli
from minasd.book import prepare_data
from minasd.provenance import data_label


def test_every_command_has_help(capsys):
    for name in cli.COMMANDS:
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert f"minasd {name}" in out, f"minasd {name} --help printed no usage"
        assert "unavailable" not in out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_index_of_missing_root_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert cli.main(["index", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_index_summarises_a_synthetic_set_and_writes_csv(tmp_path, capsys):
    root = prepare_data(tmp_path / "d", scale="tiny", seed=3)
    assert data_label(root).startswith("SYNTHETIC data")
    out_csv = tmp_path / "index.csv"
    assert cli.main(["index", str(root), "--csv", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "clips under" in printed and "source_test" in printed
    lines = out_csv.read_text().splitlines()
    assert lines[0].startswith("path,machine,section")
    assert len(lines) > 100


def test_console_script_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "minasd.cli", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "minasd" in res.stdout


def test_help_imports_no_command_module_and_no_torch():
    # `minasd --help` lists every command from COMMANDS alone; `minasd CMD --help` imports CMD only.
    probe = ("import sys\nfrom minasd import cli\n"
             "for argv in (['--help'], ['index', '--help']):\n"
             "    try:\n        cli.main(argv)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('minasd.')))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert all(name in res.stdout for name in cli.COMMANDS)  # listed with their help texts
    assert res.stdout.strip().splitlines()[-1] == "['minasd.cli']"


def test_prepare_data_rejects_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of"):
        prepare_data(tmp_path, dataset="imagenet")


def test_synth_into_a_set_of_other_arguments_is_one_clear_line(tmp_path, capsys):
    import json

    from minasd import synth

    root = tmp_path / "set"
    root.mkdir()
    (root / synth.PARTIAL_NAME).write_text(json.dumps({"generator_version": synth.GENERATOR_VERSION, "seed": 5,
                                                       "size": "tiny", "machine_types": ["valve"]}))
    assert cli.main(["synth", "--size", "tiny", "--seed", "0", "--machine-types", "valve", "--out", str(root)]) == 1
    err = capsys.readouterr().err
    assert str(root) in err and "seed: 5 there, 0 asked" in err and "Traceback" not in err
    assert sorted(p.name for p in root.iterdir()) == [synth.PARTIAL_NAME]  # nothing written
