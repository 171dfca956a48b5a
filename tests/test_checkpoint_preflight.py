"""Declared architectures are checked against the tensors before any model is allocated."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from inspect_kit import integrity, preflight, zoo
from inspect_kit.checkpoints import load_checkpoint, load_model, save_checkpoint
from inspect_kit.errors import CheckpointError, ModelSpecError, SizeLimitError

HUGE = {"sizes": [64, 200000, 200000, 10]}  # 4e10 parameters, 149 GiB in float32


def _kit_file(path, kwargs, name="mlp", sd=None):
    """A kit checkpoint whose metadata declares ``kwargs`` over the tensors of a small MLP,
    with a valid digest (what a hostile or buggy writer could produce)."""
    sd = sd if sd is not None else zoo.build("mlp", sizes=[64, 16, 10]).state_dict()
    meta = {"format_version": 2, "zoo": {"name": name, "kwargs": kwargs}, "extra": {}}
    meta["digest"] = integrity.digest(meta, {"state_dict": sd})
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(sd, path, metadata={"inspect_kit": json.dumps(meta),
                                      "inspect_kit_digest": meta["digest"]})
    else:
        torch.save({"inspect_kit": meta, "inspect_kit_digest": meta["digest"], "state_dict": sd,
                    "trajectory": []}, path)
    return path


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_huge_declared_architecture_is_refused_with_its_size(tmp_path, suffix):
    path = _kit_file(tmp_path / f"h{suffix}", HUGE)
    assert path.stat().st_size < 100_000
    with pytest.raises(CheckpointError, match=r"40,015,200,010 parameters, 149 GiB"):
        load_model(path)


def test_huge_metadata_allocates_nothing(tmp_path):
    """In a fresh process: peak RSS stays within 300 MB of the baseline while both files are
    refused, and a depth bomb (ViT depth 10**9) and a spline-order bomb (KAN k=10**9) are
    refused after a bounded number of modules / operations (unbounded, they run for hours)."""
    _kit_file(tmp_path / "h.pt", HUGE)
    _kit_file(tmp_path / "h.safetensors", HUGE)
    vit = zoo.build("vit", attention="softmax", dim=16, depth=1, heads=2).state_dict()
    _kit_file(tmp_path / "bomb.pt", {"attention": "softmax", "dim": 16, "depth": 10**9,
                                     "heads": 2}, name="vit", sd=vit)
    kan = zoo.build("kan", width=[2, 3, 1], grid=3).state_dict()
    _kit_file(tmp_path / "kbomb.safetensors", {"width": [2, 3, 1], "grid": 3, "k": 10**9},
              name="kan", sd=kan)
    script = textwrap.dedent(f"""
        import resource, torch
        from inspect_kit.checkpoints import load_model
        from inspect_kit.errors import CheckpointError
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for name in ("h.pt", "h.safetensors", "bomb.pt", "kbomb.safetensors"):
            try:
                load_model({str(tmp_path)!r} + "/" + name)
                print("LOADED", name)
            except CheckpointError as exc:
                print("REFUSED", name, " ".join(str(exc).split()))
        print("GROWTH_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                                           "PYTHONPATH": ":".join(sys.path)})
    lines = out.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:4]] == ["REFUSED"] * 4, out.stdout + out.stderr
    assert "modules and tensors" in lines[2] and "operations" in lines[3]
    assert int(lines[4].split()[1]) < 300_000, lines[4]


def test_a_matching_model_too_large_for_memory_is_refused(tmp_path, monkeypatch):
    save_checkpoint(zoo.build("mlp", sizes=[64, 16, 10]), tmp_path / "m.pt")
    monkeypatch.setattr(preflight, "available_memory", lambda: 1000)
    with pytest.raises(SizeLimitError, match=r"1,210 parameters, 4.73 KiB.*1000 B of memory"):
        load_model(tmp_path / "m.pt")


def test_model_kwargs_that_disagree_with_the_file_are_refused_before_building(tmp_path):
    save_checkpoint(zoo.build("mlp", sizes=[64, 16, 10]), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"\(16, 64\) in the file but \(17, 64\).*--model-kwargs"):
        load_model(tmp_path / "m.pt", model_kwargs={"sizes": [64, 17, 10]})
    torch.save(zoo.build("mlp", sizes=[64, 16, 10]).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="missing from the file: layers.4.weight"):
        load_model(tmp_path / "sd.pt", model="zoo:mlp", model_kwargs={"sizes": [64, 16, 10, 3]})


def test_the_shape_only_build_matches_the_real_one():
    """Independent truth: the real models' state-dict shapes and sizes."""
    for name, kw in [("mlp", {"sizes": [5, 7, 3], "activation": "rational"}),
                     ("kan", {"width": [2, 3, 1], "grid": 4}),
                     ("vit", {"attention": "fourier_karat", "dim": 16, "depth": 1, "heads": 2})]:
        real = zoo.build(name, **kw)
        ghost = preflight.meta_build(lambda name=name, kw=kw: zoo.build(name, **kw),
                                     n_tensors=len(real.state_dict()), source="x", hint="")
        assert ghost is not None and next(ghost.parameters()).is_meta
        assert {k: v.shape for k, v in ghost.state_dict().items()} == \
            {k: v.shape for k, v in real.state_dict().items()}
        assert preflight.declared_size(ghost) == preflight.declared_size(real)


def test_a_factory_that_cannot_run_shape_only_still_loads(tmp_path):
    (tmp_path / "arch.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        def make(n=3):
            net = nn.Linear(2, n)
            torch.linalg.lstsq(torch.ones(2, 2), torch.ones(2, 1))  # no meta kernel
            return net
    """))
    net = torch.nn.Linear(2, 3)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    back = load_model(tmp_path / "sd.pt", model=f"{tmp_path / 'arch.py'}:make")
    assert torch.equal(back.weight, net.weight)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(tmp_path / "sd.pt", model=f"{tmp_path / 'arch.py'}:make",
                   model_kwargs={"n": 4})


def test_a_failing_user_factory_is_a_model_spec_error(tmp_path):
    (tmp_path / "arch.py").write_text("def make():\n    raise ValueError('no such width')\n")
    torch.save({"w": torch.ones(1)}, tmp_path / "sd.pt")
    with pytest.raises(ModelSpecError, match="no such width"):
        load_model(tmp_path / "sd.pt", model=f"{tmp_path / 'arch.py'}:make")


# ---- pykan folders -------------------------------------------------------------------------

@pytest.fixture()
def pykan_folder(tmp_path):
    kan = pytest.importorskip("kan")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        m = kan.MultKAN(width=[2, 3, 1], grid=3, k=3, seed=0, auto_save=False,
                        ckpt_path=str(tmp_path / "model"))
        m.saveckpt(str(tmp_path / "ck"))
    return tmp_path, m


def test_pykan_config_declaring_a_huge_width_is_refused_before_building(pykan_folder,
                                                                        monkeypatch):
    import kan

    folder, _ = pykan_folder
    cfg = folder / "ck_config.yml"
    cfg.write_text(cfg.read_text().replace("- - 3\n", "- - 200000\n", 1))
    assert "200000" in cfg.read_text()

    def never(*a, **k):
        raise AssertionError("MultKAN was built from a config that does not match its state")

    monkeypatch.setattr(kan.MultKAN, "__init__", never)
    with pytest.raises(CheckpointError, match=r"layer 0 with spline coefficients \(2, 200000, 6\)"):
        load_checkpoint(folder / "ck")


@pytest.mark.parametrize("text, match", [
    ("width: [[2, 0], [3\n  : bad", "cannot read the pykan config"),
    ("- just\n- a list\n", "not a pykan config"),
    ("width: 5\n", "lacks grid"),
])
def test_bad_pykan_yaml_is_one_clear_error(pykan_folder, text, match):
    folder, _ = pykan_folder
    (folder / "ck_config.yml").write_text(text)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(folder / "ck")


def test_pykan_field_of_the_wrong_type_and_a_bad_state(pykan_folder):
    folder, _ = pykan_folder
    cfg = folder / "ck_config.yml"
    good = cfg.read_text()
    cfg.write_text(good.replace("grid: 3", "grid: three"))
    with pytest.raises(CheckpointError, match="grid must be int"):
        load_checkpoint(folder / "ck")
    cfg.write_text(good)
    (folder / "ck_state").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read the pykan state"):
        load_checkpoint(folder / "ck")


def test_pykan_folder_roundtrip_keeps_symbolic_edges(pykan_folder):
    folder, m = pykan_folder
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        m.fix_symbolic(0, 1, 2, "sin", fit_params_bool=False, log_history=False)
        m.saveckpt(str(folder / "ck2"))
    back = load_model(folder / "ck2")
    assert back.symbolic_fun[0].funs_name[2][1] == "sin"
    x = torch.rand(7, 2) * 2 - 1
    torch.testing.assert_close(back(x), m(x))
    assert not (folder / "model").exists()  # auto_save never wrote a folder
