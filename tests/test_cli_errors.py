"""Every bad input the CLI can meet: exit 2, exactly one line on stderr, no output file left.

One table row per case, covering every subcommand. Outputs (``--json``, ``--plot``, ``--out``)
point into a fresh folder per case that must be empty afterwards (no file, no temporary).
The cases are issue 16's list plus the neighbours found while fixing it.
"""

import json
import shlex

import pytest
import torch

from inspect_kit import integrity, limits, zoo
from inspect_kit.checkpoints import load_checkpoint, save_checkpoint
from inspect_kit.cli import main

HUGE = {"sizes": [64, 200000, 200000, 10]}


def _kit(path, model, kwargs=None):
    """A kit checkpoint of ``model`` whose metadata declares ``kwargs`` (valid digest)."""
    sd = model.state_dict()
    meta = {"format_version": 2, "zoo": {"name": "mlp", "kwargs": kwargs}, "extra": {}}
    meta["digest"] = integrity.digest(meta, {"state_dict": sd})
    torch.save({"inspect_kit": meta, "inspect_kit_digest": meta["digest"], "state_dict": sd,
                "trajectory": []}, path)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """The inputs: checkpoints, data files and damaged variants."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    mlp = zoo.build("mlp", sizes=[64, 16, 10])
    save_checkpoint(mlp, d / "mlp.pt")
    save_checkpoint(zoo.build("mlp", sizes=[64, 8, 10]), d / "mlp8.pt")
    save_checkpoint(zoo.build("vit", attention="softmax", dim=16, depth=1, heads=2), d / "vit.pt")
    save_checkpoint(zoo.build("kan", width=[2, 3, 1], grid=4), d / "kan.pt")
    save_checkpoint(zoo.build("modadd", p=7), d / "modadd.pt")
    big = zoo.build("mlp", sizes=[64, 16, 10])
    with torch.no_grad():
        for p in big.parameters():
            p.mul_(1e20)  # finite weights whose products overflow float32
    save_checkpoint(big, d / "overflow.pt")
    torch.save(mlp.state_dict(), d / "sd.pt")
    torch.save(mlp, d / "pickled.pt")
    sd = mlp.state_dict()
    (d / "empty.pt").write_bytes(b"")
    (d / "empty.safetensors").write_bytes(b"")
    (d / "garbage.safetensors").write_bytes(bytes(range(256)) * 4)
    save_file(sd, d / "nonjson.safetensors", metadata={"inspect_kit": "{not json"})
    save_file(sd, d / "wrongtype.safetensors", metadata={"inspect_kit": "[1, 2]"})
    save_file(sd, d / "huge.safetensors", metadata={"inspect_kit": json.dumps(
        {"format_version": 1, "zoo": {"name": "mlp", "kwargs": HUGE}, "extra": {}})})
    torch.save({"inspect_kit": "mlp", "state_dict": sd}, d / "wrongmeta.pt")
    _kit(d / "huge.pt", mlp, HUGE)
    blob = bytearray((d / "mlp.pt").read_bytes())
    at = bytes(blob).find(sd["layers.0.weight"].numpy().tobytes())
    for i in range(0, 800, 4):
        blob[at + i] ^= 0x10  # 200 flipped bytes in the first weight matrix
    (d / "flipped.pt").write_bytes(bytes(blob))

    class Payload:
        def __reduce__(self):
            return (open, (str(d / "pwned"), "w"))

    torch.save({"state_dict": sd, "x": Payload()}, d / "evil.pt")
    (d / "badkan").mkdir()
    (d / "badkan" / "m_config.yml").write_text("width: [[2, 0], [3\n  : bad")
    (d / "badkan" / "m_state").write_bytes(b"xx")
    (d / "afile").write_text("x")
    x, y = torch.randn(20, 64), torch.randint(0, 10, (20,))
    torch.save({"x": x, "y": y}, d / "ok.pt")
    xn = x.clone()
    xn[3, 5] = float("nan")
    torch.save({"x": xn, "y": y}, d / "nan.pt")
    torch.save({"x": x[:3], "y": torch.zeros(3)}, d / "regression3.pt")  # 3 targets, 10 outputs
    torch.save({"x": x, "y": torch.zeros(20, 10, dtype=torch.long)}, d / "labels2d.pt")
    torch.save({"x": x, "y": torch.full((20,), 12)}, d / "label12.pt")
    torch.save({"x": x, "y": y[:0]}, d / "noy.pt")
    torch.save({"input": x, "y": torch.tensor(1)}, d / "scalar_target.pt")  # a dict of inputs
    torch.save(sd, d / "legacy.pt", _use_new_zipfile_serialization=False)
    (d / "random.pt").write_bytes(bytes(range(256)) * 40)
    xr = torch.rand(30, 2) * 2 - 1
    xrn = xr.clone()
    xrn[4, 1] = float("nan")
    torch.save({"x": xrn, "y": xr[:, :1] * xr[:, 1:]}, d / "regnan.pt")
    # resume files: one edited after it was written, one that is not JSON
    assert main(["landscape", str(d / "mlp.pt"), "--data", str(d / "ok.pt"), "--steps", "3",
                 "--resume", str(d / "resume.json")]) == 0
    saved = json.loads((d / "resume.json").read_text())
    saved["loss"][0] = 0.001
    (d / "tampered.json").write_text(json.dumps(saved))
    (d / "broken.json").write_text("{not json")
    del saved["checksum"]  # a hand-made file of the right inputs but the wrong length
    saved["loss"], saved["accuracy"] = saved["loss"][:2], saved["accuracy"][:2]
    (d / "short.json").write_text(json.dumps(saved))
    return d


OUT = "--json {o}/r.json --plot {o}/r.png"
H = "hessian {d}/mlp.pt --data {d}/ok.pt " + OUT
L = "landscape {d}/mlp.pt --data {d}/ok.pt --steps 3 " + OUT
M = "lmc {d}/mlp.pt {d}/mlp.pt --data {d}/ok.pt --steps 3 " + OUT
CASES = [
    # hessian
    ("hessian-empty-pt", "hessian {d}/empty.pt --data {d}/ok.pt " + OUT, "empty (0 bytes)"),
    ("hessian-bit-flipped", "hessian {d}/flipped.pt --data {d}/ok.pt " + OUT, "is damaged"),
    ("hessian-batch-size-0", H + " --batch-size 0", "--batch-size must be a positive"),
    ("hessian-batch-size-negative", H + " --batch-size -3", "--batch-size must be a positive"),
    ("hessian-nan-data", "hessian {d}/mlp.pt --data {d}/nan.pt " + OUT, "nan"),
    ("hessian-nan-loss", "hessian {d}/overflow.pt --data {d}/ok.pt " + OUT,
     "at the model's parameters (split 'train')"),
    ("hessian-huge-density-probes", H + " --density --density-probes 100000000",
     "over the memory budget"),
    ("hessian-huge-density-probes-forced", H + " --density --density-probes 100000000 --force",
     "over the memory budget"),
    ("hessian-top-k-above-n", H + " --top-k 100000", "top_k=100000 is more than the 1210"),
    ("hessian-trace-budget-2", H + " --trace-budget 2", "--trace-budget >= 3"),
    ("hessian-unknown-plot-format", "hessian {d}/mlp.pt --data {d}/ok.pt --plot {o}/p.xyz",
     "unknown figure format .xyz"),
    ("hessian-json-under-a-file", "hessian {d}/mlp.pt --data {d}/ok.pt --json {d}/afile/x.json",
     "afile is a file"),
    ("hessian-bad-model-kwargs", "hessian {d}/sd.pt --data {d}/ok.pt --model zoo:mlp "
     "--model-kwargs {{sizes", "not valid JSON"),
    ("hessian-pickled-model", "hessian {d}/pickled.pt --data {d}/ok.pt " + OUT, "--trust"),
    ("hessian-missing-data", "hessian {d}/mlp.pt --data {d}/none.pt " + OUT, "does not exist"),
    ("hessian-unknown-flag", H + " --bogus", "unrecognized arguments"),
    ("hessian-targets-do-not-fit", "hessian {d}/mlp.pt --data {d}/regression3.pt " + OUT,
     "do not match the model's output"),
    ("hessian-2d-integer-labels", "hessian {d}/mlp.pt --data {d}/labels2d.pt " + OUT,
     "use class labels (N,)"),
    ("hessian-label-out-of-range", "hessian {d}/mlp.pt --data {d}/label12.pt " + OUT,
     "outside [0, 10)"),
    ("hessian-no-targets", "hessian {d}/mlp.pt --data {d}/noy.pt " + OUT, "same number"),
    ("hessian-scalar-target", "hessian {d}/mlp.pt --data {d}/scalar_target.pt " + OUT,
     "has scalars (y)"),
    ("hessian-legacy-format", "hessian {d}/legacy.pt --model zoo:mlp --data {d}/ok.pt " + OUT,
     "legacy (pre-1.6) format"),
    ("hessian-random-bytes", "hessian {d}/random.pt --data {d}/ok.pt " + OUT,
     "not a PyTorch checkpoint"),
    # esd
    ("esd-empty-pt", "esd {d}/empty.pt " + OUT, "empty (0 bytes)"),
    ("esd-empty-safetensors", "esd {d}/empty.safetensors " + OUT, "empty (0 bytes)"),
    ("esd-garbage-safetensors", "esd {d}/garbage.safetensors " + OUT, "cannot read"),
    ("esd-non-json-metadata", "esd {d}/nonjson.safetensors " + OUT, "not valid JSON"),
    ("esd-metadata-wrong-type", "esd {d}/wrongtype.safetensors " + OUT, "a list, not a mapping"),
    ("esd-huge-metadata", "esd {d}/huge.safetensors " + OUT, "149 GiB"),
    ("esd-model-kwargs-disagree", "esd {d}/mlp.pt --model-kwargs '{{\"sizes\":[64,17,10]}}' "
     + OUT, "(16, 64) in the file but (17, 64)"),
    ("esd-model-kwargs-unknown", "esd {d}/mlp.pt --model-kwargs '{{\"foo\":1}}' " + OUT, "foo"),
    ("esd-model-kwargs-plain-sd", "esd {d}/sd.pt --model-kwargs '{{\"sizes\":[64,16,10]}}' " + OUT,
     "need --model"),
    ("esd-no-snapshots", "esd {d}/mlp.pt --snapshots {o}/s.png " + OUT, "no training snapshots"),
    # landscape
    ("landscape-batch-size-negative", L + " --batch-size -1", "--batch-size must be a positive"),
    ("landscape-nan-data", "landscape {d}/mlp.pt --data {d}/nan.pt --steps 3 " + OUT, "NaN"),
    ("landscape-huge-steps", L.replace("--steps 3", "--steps 1000001"), "grid points"),
    ("landscape-tampered-resume", L + " --resume {d}/tampered.json", "modified or damaged"),
    ("landscape-broken-resume", L + " --resume {d}/broken.json", "cannot read the partial"),
    ("landscape-short-resume", L + " --resume {d}/short.json", "holds 2 points, the grid has 9"),
    ("landscape-nan-loss-at-centre", "landscape {d}/overflow.pt --data {d}/ok.pt --steps 3 "
     + OUT, "at the trained point (split 'train')"),
    ("landscape-json-is-a-folder", "landscape {d}/mlp.pt --data {d}/ok.pt --steps 3 --json {d}",
     "is a folder"),
    ("landscape-pca-without-trajectory", L + " --directions pca", "needs trajectory"),
    # lmc
    ("lmc-huge-steps", M.replace("--steps 3", "--steps 100000000"), "points on a path"),
    ("lmc-batch-size-0", M + " --batch-size 0", "--batch-size must be a positive"),
    ("lmc-nan-data", "lmc {d}/mlp.pt {d}/mlp.pt --data {d}/nan.pt " + OUT, "NaN"),
    ("lmc-architectures-differ", "lmc {d}/mlp.pt {d}/mlp8.pt --data {d}/ok.pt " + OUT,
     "layers.0.weight"),
    ("lmc-nan-on-the-path", "lmc {d}/mlp.pt {d}/overflow.pt --data {d}/ok.pt " + OUT,
     "on the interpolation path (split 'train')"),
    # attention
    ("attention-nan-data", "attention {d}/vit.pt --data {d}/nan.pt " + OUT, "NaN or inf"),
    ("attention-index-out-of-range", "attention {d}/vit.pt --data {d}/ok.pt --index 1000 " + OUT,
     "index=1000"),
    ("attention-no-attention", "attention {d}/mlp.pt --data {d}/ok.pt " + OUT, "no attention"),
    # symbolic
    ("symbolic-nan-data", "symbolic {d}/kan.pt --data {d}/regnan.pt " + OUT, "NaN"),
    ("symbolic-negative-prune", "symbolic {d}/kan.pt --data {d}/regnan.pt --prune -1 " + OUT,
     "--prune must be >= 0"),
    ("symbolic-not-a-kan", "symbolic {d}/mlp.pt --data {d}/ok.pt " + OUT, "not a KAN"),
    # train
    ("train-batch-size-0", "train mlp --data {d}/ok.pt --batch-size 0 --out {o}/t.pt",
     "--batch-size must be positive"),
    ("train-huge-model", "train mlp --data {d}/ok.pt --model-kwargs "
     "'{{\"sizes\":[64,200000,200000,10]}}' --out {o}/t.pt", "of memory"),
    ("train-unknown-zoo-model", "train resnet --data {d}/ok.pt --out {o}/t.pt", "unknown zoo"),
    ("train-nan-data", "train mlp --data {d}/nan.pt --epochs 2 --out {o}/t.pt --json {o}/h.json",
     "nan"),
    ("train-out-under-a-file", "train mlp --data {d}/ok.pt --out {d}/afile/t.pt", "is a file"),
    # info
    ("info-empty-pt", "info {d}/empty.pt --json {o}/r.json", "empty (0 bytes)"),
    ("info-non-json-metadata", "info {d}/nonjson.safetensors --json {o}/r.json", "not valid JSON"),
    ("info-metadata-wrong-type", "info {d}/wrongmeta.pt --json {o}/r.json", "a str, not a mapping"),
    ("info-huge-metadata", "info {d}/huge.pt --json {o}/r.json", "40,015,200,010 parameters"),
    ("info-bad-pykan-yaml", "info {d}/badkan --json {o}/r.json", "cannot read the pykan config"),
    ("info-weights-only-refusal", "info {d}/pickled.pt --json {o}/r.json", "--trust"),
    ("info-malicious-pickle", "info {d}/evil.pt --json {o}/r.json", "--trust"),
    ("info-bit-flipped", "info {d}/flipped.pt --json {o}/r.json", "flipped.pt is damaged"),
    ("info-missing-file", "info {d}/none.pt --json {o}/r.json", "does not exist"),
    ("info-has-no-figure", "info {d}/mlp.pt --plot {o}/r.png", "unrecognized arguments"),
    # fourier
    ("fourier-empty-pt", "fourier {d}/empty.pt --data modadd:7 " + OUT, "empty (0 bytes)"),
    ("fourier-bad-key-frequencies", "fourier {d}/modadd.pt --data modadd:7 --key-frequencies "
     "a,b " + OUT, "must be integers"),
    ("fourier-bad-modulus", "fourier {d}/modadd.pt --data modadd:1 " + OUT, "p >= 3"),
    ("fourier-not-an-embedding-model", "fourier {d}/mlp.pt --data modadd:7 " + OUT,
     "nn.Embedding"),
    # ntk
    ("ntk-empty-pt", "ntk {d}/empty.pt --data {d}/ok.pt " + OUT, "empty (0 bytes)"),
    ("ntk-nan-data", "ntk {d}/mlp.pt --data {d}/nan.pt " + OUT, "NaN or inf"),
    ("ntk-bad-memory", "ntk {d}/mlp.pt --data {d}/ok.pt --memory abc " + OUT, "memory must be"),
    ("ntk-tiny-memory", "ntk {d}/mlp.pt --data {d}/ok.pt --memory 1KB " + OUT, "over memory="),
    ("ntk-kernel-out-suffix", "ntk {d}/mlp.pt --data {d}/ok.pt --kernel-out {o}/k.txt " + OUT,
     ".npy"),
    # intrinsic-dimension
    ("intrinsic-dimension-zero-dim", "intrinsic-dimension {d}/mlp.pt --data {d}/ok.pt --dims 0 "
     + OUT, "positive integers"),
    ("intrinsic-dimension-epochs-0", "intrinsic-dimension {d}/mlp.pt --data {d}/ok.pt "
     "--epochs 0 " + OUT, "epochs must be a positive integer"),
    ("intrinsic-dimension-nan-data", "intrinsic-dimension {d}/mlp.pt --data {d}/nan.pt --dims 2 "
     "--epochs 1 --eval-split train " + OUT, "nan"),
    # outliers
    ("outliers-nan-data", "outliers {d}/mlp.pt --data {d}/nan.pt " + OUT, "nan"),
    ("outliers-one-class", "outliers {d}/mlp.pt --data {d}/ok.pt --n-classes 1 " + OUT,
     "n_classes must be >= 2"),
    ("outliers-negative-extra", "outliers {d}/mlp.pt --data {d}/ok.pt --extra -3 " + OUT,
     "extra must be an integer >= 0"),
    ("outliers-regression-data", "outliers {d}/kan.pt --data {d}/regnan.pt " + OUT, "NaN"),
    # report
    ("report-missing-checkpoint", "report {d}/none.pt --data {d}/ok.pt --out {o}/r.html",
     "does not exist"),
    ("report-unknown-analysis", "report {d}/mlp.pt --data {d}/ok.pt --with bogus --out {o}/r.html",
     "bogus"),
    ("report-nan-data", "report {d}/mlp.pt --data {d}/nan.pt --quick --out {o}/r.html",
     "NaN or inf"),
    # gallery
    ("gallery-unknown-section", "gallery --section nope --out {o}/g", "unknown --section nope"),
    ("gallery-out-is-a-file", "gallery --out {d}/afile", "is a file"),
]


@pytest.mark.parametrize("argv, expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_no_output(d, tmp_path, capfd, argv, expect):
    out = tmp_path / "out"
    before = {p: p.stat().st_mtime_ns for p in d.rglob("*")}
    args = [a.format(d=d, o=out) for a in shlex.split(argv)]
    code = main(args)
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1, err  # one line: no traceback, no warning, no progress bar
    assert err[0].startswith("inspect-kit") and "error:" in err[0]
    assert "internal error" not in err[0]
    assert expect in err[0], err[0]
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    after = {p: p.stat().st_mtime_ns for p in d.rglob("*")}
    assert after == before  # nothing written or created beside the inputs either


def test_every_subcommand_has_a_case():
    from inspect_kit.cli import _command_modules

    covered = {c[1].split()[0] for c in CASES}
    assert covered == {m.NAME for m in _command_modules()}


def test_the_malicious_pickle_payload_is_real_and_never_ran(d):
    assert not (d / "pwned").exists()
    load_checkpoint(d / "evil.pt", trust=True)  # what --trust would do
    assert (d / "pwned").exists()
    (d / "pwned").unlink()


def test_time_bound_refuses_and_force_runs(d, tmp_path, capfd, monkeypatch):
    monkeypatch.setattr(limits, "TIME_LIMIT", 1e-9)
    for argv in (["hessian", str(d / "mlp.pt"), "--data", str(d / "ok.pt"), "--top-k", "1"],
                 ["landscape", str(d / "mlp.pt"), "--data", str(d / "ok.pt"), "--steps", "3"],
                 ["lmc", str(d / "mlp.pt"), str(d / "mlp.pt"), "--data", str(d / "ok.pt"),
                  "--steps", "3"]):
        assert main(argv + ["--json", str(tmp_path / "r.json")]) == 2
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "would take about" in err[0] and "--force" in err[0], err
        assert not (tmp_path / "r.json").exists()
        assert main(argv + ["--json", str(tmp_path / "r.json"), "--force"]) == 0
        assert (tmp_path / "r.json").exists()
        (tmp_path / "r.json").unlink()
