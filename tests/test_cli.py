import json
import subprocess
import sys

import torch

from inspect_kit import zoo
from inspect_kit.checkpoints import save_checkpoint
from inspect_kit.cli import main


def test_info_on_a_kit_checkpoint(tmp_path, capsys):
    save_checkpoint(zoo.build("mlp", sizes=[4, 3, 2]), tmp_path / "m.pt")
    assert main(["info", str(tmp_path / "m.pt"), "--json", str(tmp_path / "i.json")]) == 0
    info = json.loads((tmp_path / "i.json").read_text())["result"]
    assert info["zoo"]["name"] == "mlp" and info["n_parameters"] == 4 * 3 + 3 + 3 * 2 + 2
    assert "zoo:mlp" in capsys.readouterr().out


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    return err[0]


def test_missing_file_exits_2_with_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in _error_line(capsys)


def test_wrong_spec_exits_2(tmp_path, capsys):
    torch.save(zoo.build("mlp", sizes=[4, 3, 2]).state_dict(), tmp_path / "sd.pt")
    assert main(["info", str(tmp_path / "sd.pt"), "--model", "zoo:resnet"]) == 2
    assert "unknown zoo model" in _error_line(capsys)
    assert main(["info", str(tmp_path / "sd.pt"), "--model", "nocolon"]) == 2
    assert "model spec" in _error_line(capsys)


def test_malformed_model_kwargs_exits_2(tmp_path, capsys):
    torch.save(zoo.build("mlp", sizes=[4, 3, 2]).state_dict(), tmp_path / "sd.pt")
    code = main(["info", str(tmp_path / "sd.pt"), "--model", "zoo:mlp", "--model-kwargs", "{sizes: 1"])
    assert code == 2
    assert "--model-kwargs is not valid JSON" in _error_line(capsys)


def test_bad_arguments_exit_2(capsys):
    assert main(["info"]) == 2
    assert main(["no-such-command"]) == 2


def test_train_then_load_without_naming_the_architecture(tmp_path):
    out = tmp_path / "m.pt"
    assert main(["train", "mlp", "--data", "digits", "--epochs", "2", "--out", str(out)]) == 0
    from inspect_kit.checkpoints import load_model
    from inspect_kit.data import load_data
    from inspect_kit.view import ModelView

    model = load_model(out)
    assert ModelView(model, load_data("digits"), split="test").evaluate().accuracy > 0.8


def test_console_script_module_runs():
    proc = subprocess.run([sys.executable, "-m", "inspect_kit.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "gallery" in proc.stdout
