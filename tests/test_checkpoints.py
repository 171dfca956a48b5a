import json

import pytest
import torch
from torch import nn

from inspect_kit import zoo
from inspect_kit.checkpoints import load_checkpoint, load_model, model_from_spec, save_checkpoint
from inspect_kit.errors import CheckpointError, ModelSpecError

ZOO_CASES = [
    ("mlp", {"sizes": [64, 16, 10]}, torch.randn(3, 64)),
    ("kan", {"width": [2, 3, 1], "grid": 4}, torch.rand(3, 2) * 2 - 1),
    ("vit", {"attention": "softmax", "dim": 16, "depth": 1, "heads": 2}, torch.randn(3, 64)),
    ("vit", {"attention": "fourier_karat", "dim": 16, "depth": 1, "heads": 2}, torch.randn(3, 64)),
]


@pytest.mark.parametrize("name, kwargs, x", ZOO_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ZOO_CASES)])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_zoo_roundtrip_without_naming_the_architecture(tmp_path, name, kwargs, x, suffix):
    model = zoo.build(name, **kwargs).eval()
    path = tmp_path / f"m{suffix}"
    save_checkpoint(model, path)
    back = load_model(path)
    assert type(back) is type(model)
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    torch.testing.assert_close(back(x), model(x))


def test_trajectory_is_kept(tmp_path):
    model = zoo.build("mlp", sizes=[4, 3, 2])
    snaps = [{k: v.clone() * i for k, v in model.state_dict().items()} for i in range(3)]
    save_checkpoint(model, tmp_path / "t.pt", trajectory=snaps)
    ck = load_checkpoint(tmp_path / "t.pt")
    assert len(ck.trajectory) == 3
    assert torch.equal(ck.trajectory[2]["layers.0.weight"], snaps[2]["layers.0.weight"])


def test_plain_state_dict_needs_a_spec(tmp_path):
    model = zoo.build("mlp", sizes=[4, 3, 2])
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ModelSpecError, match="--model"):
        load_model(tmp_path / "sd.pt")
    back = load_model(tmp_path / "sd.pt", model="zoo:mlp", model_kwargs={"sizes": [4, 3, 2]})
    assert torch.equal(back.state_dict()["layers.0.weight"], model.state_dict()["layers.0.weight"])
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(tmp_path / "sd.pt", model="zoo:mlp", model_kwargs={"sizes": [4, 5, 2]})


def test_file_and_module_specs(tmp_path):
    (tmp_path / "arch.py").write_text(
        "import torch.nn as nn\n"
        "def make(hidden=3):\n"
        "    return nn.Sequential(nn.Linear(2, hidden), nn.ReLU(), nn.Linear(hidden, 1))\n"
    )
    m = model_from_spec(f"{tmp_path / 'arch.py'}:make", {"hidden": 5})
    assert m[0].out_features == 5
    m2 = model_from_spec("torch.nn:Linear", {"in_features": 2, "out_features": 1})
    assert isinstance(m2, nn.Linear)
    for bad in ("nospec", "zoo:resnet", "no_such_module_xyz:f", f"{tmp_path / 'arch.py'}:missing"):
        with pytest.raises(ModelSpecError):
            model_from_spec(bad, {})


def test_pickled_model_refused_unless_trusted(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2))
    torch.save(model, tmp_path / "full.pt")
    with pytest.raises(CheckpointError, match="trust=True"):
        load_checkpoint(tmp_path / "full.pt")
    back = load_model(tmp_path / "full.pt", trust=True)
    assert torch.equal(back[0].weight, model[0].weight)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_pykan_checkpoint_folder(tmp_path):
    kan = pytest.importorskip("kan")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        m = kan.MultKAN(width=[2, 3, 1], grid=3, k=3, seed=0, auto_save=False,
                        ckpt_path=str(tmp_path / "model"))
        m.saveckpt(str(tmp_path / "ck"))
    back = load_model(tmp_path / "ck")
    x = torch.rand(5, 2) * 2 - 1
    torch.testing.assert_close(back(x), m(x))
    assert json.dumps(load_checkpoint(tmp_path / "ck").meta)
