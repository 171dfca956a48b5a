"""Kit checkpoints carry a digest: damaged files are refused, never loaded silently.

The truth every test compares with is the original checkpoint's content: after any damage,
loading either raises CheckpointError or returns exactly the tensors and metadata that were
saved (a flipped bit in zip padding or an unchecked CRC field changes nothing that is read).
"""

import io
import json
import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspect_kit import integrity, zoo
from inspect_kit.checkpoints import FORMAT_VERSION, load_checkpoint, load_model, save_checkpoint
from inspect_kit.errors import CheckpointError, InspectKitError


def _model():
    torch.manual_seed(0)
    return zoo.build("mlp", sizes=[8, 6, 3])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A kit .pt (with a trajectory) and a kit .safetensors of one model, and their bytes."""
    d = tmp_path_factory.mktemp("ck")
    model = _model()
    traj = [{k: v * (i + 1) for k, v in model.state_dict().items()} for i in range(2)]
    save_checkpoint(model, d / "m.pt", trajectory=traj)
    save_checkpoint(model, d / "m.safetensors")
    return {s: (d / f"m{s}", (d / f"m{s}").read_bytes()) for s in (".pt", ".safetensors")}


def _same(a, b):
    """Two Checkpoints hold equal metadata, state dicts and trajectories (bitwise)."""
    def eq(x, y):
        return x.keys() == y.keys() and all(
            x[k].dtype == y[k].dtype and x[k].shape == y[k].shape and torch.equal(x[k], y[k])
            for k in x)
    return (a.meta == b.meta and eq(a.state_dict, b.state_dict)
            and len(a.trajectory) == len(b.trajectory)
            and all(eq(s, t) for s, t in zip(a.trajectory, b.trajectory)))


def test_digest_is_recorded_and_the_roundtrip_verifies(saved):
    for path, _ in saved.values():
        ck = load_checkpoint(path)
        assert ck.meta["format_version"] == FORMAT_VERSION == 2
        assert ck.meta["digest"].startswith("sha256:") and len(ck.meta["digest"]) == 7 + 64
        # an independent recomputation from what was loaded agrees
        sections = {"state_dict": ck.state_dict,
                    **{f"trajectory.{i}": s for i, s in enumerate(ck.trajectory)}}
        assert integrity.digest(ck.meta, sections) == ck.meta["digest"]


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_flipped_bit_in_the_weights_is_reported_with_the_file_name(saved, tmp_path, suffix):
    path, blob = saved[suffix]
    weight = load_checkpoint(path).state_dict["layers.0.weight"]
    raw = weight.numpy().tobytes()
    at = blob.find(raw)
    assert at > 0, "the weight's bytes are stored verbatim in the file"
    bad = bytearray(blob)
    bad[at + 13] ^= 0x04  # one bit of one float of the first layer
    target = tmp_path / f"flipped{suffix}"
    target.write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match=rf"flipped{suffix} is damaged"):
        load_checkpoint(target)
    with pytest.raises(CheckpointError, match="damaged"):
        load_model(target)


def test_tampered_metadata_with_the_old_digest_is_refused(saved, tmp_path):
    path, _ = saved[".pt"]
    obj = torch.load(path, weights_only=True)
    obj["inspect_kit"]["zoo"]["kwargs"]["activation"] = "tanh"  # same shapes, other function
    torch.save(obj, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "t.pt")
    renamed = {("inspect_kiu" if k == "inspect_kit" else k): v for k, v in obj.items()}
    torch.save(renamed, tmp_path / "t.pt")  # one damaged key: not a plain state dict now
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "t.pt")
    del obj["inspect_kit"]["digest"]  # dropping the digest of a format-2 file is no way out
    torch.save(obj, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="digest is missing"):
        load_checkpoint(tmp_path / "t.pt")


def test_a_tampered_trajectory_is_refused(saved, tmp_path):
    obj = torch.load(saved[".pt"][0], weights_only=True)
    obj["trajectory"][1]["layers.2.bias"][0] += 1.0
    torch.save(obj, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(tmp_path / "t.pt")


def test_format_1_checkpoints_without_a_digest_still_load(tmp_path):
    model = _model()
    meta = {"format_version": 1, "zoo": zoo.spec_of(model), "extra": {}}  # what 0.1 wrote
    torch.save({"inspect_kit": meta, "state_dict": model.state_dict(), "trajectory": []},
               tmp_path / "old.pt")
    back = load_model(tmp_path / "old.pt")
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(),
                                                 model.state_dict().values()))


def test_a_newer_format_asks_for_an_upgrade(tmp_path):
    torch.save({"inspect_kit": {"format_version": 99, "zoo": None, "extra": {}},
                "state_dict": {"w": torch.ones(1)}}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="upgrade inspect-kit"):
        load_checkpoint(tmp_path / "new.pt")


def _load_or_error(path, original):
    try:
        ck = load_checkpoint(path)
    except CheckpointError:
        return "refused"
    assert _same(ck, original), "a damaged checkpoint loaded with different content"
    return "same"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_any_bit_flip_is_refused_or_harmless(saved, tmp_path, suffix, data):
    path, blob = saved[suffix]
    original = load_checkpoint(path)
    pos = data.draw(st.integers(0, len(blob) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    bad = bytearray(blob)
    bad[pos] ^= 1 << bit
    target = tmp_path / f"f{suffix}"
    target.write_bytes(bytes(bad))
    _load_or_error(target, original)


def test_many_random_flips_in_the_data_region_are_all_refused(saved, tmp_path):
    """20 files with 10 flipped bits each inside the first weight matrix: all refused."""
    path, blob = saved[".pt"]
    lo = blob.find(load_checkpoint(path).state_dict["layers.0.weight"].numpy().tobytes())
    rng = random.Random(0)
    for _ in range(20):
        bad = bytearray(blob)
        for _ in range(10):
            bad[rng.randrange(lo, lo + 8 * 6 * 4)] ^= 1 << rng.randrange(8)
        (tmp_path / "f.pt").write_bytes(bytes(bad))
        with pytest.raises(CheckpointError, match="damaged"):
            load_checkpoint(tmp_path / "f.pt")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10_000))
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_checkpoints_are_refused(saved, tmp_path, suffix, cut):
    path, blob = saved[suffix]
    cut = cut % len(blob)  # strictly shorter than the file
    (tmp_path / f"t{suffix}").write_bytes(blob[:cut])
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / f"t{suffix}")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=4096), suffix=st.sampled_from([".pt", ".pth", ".safetensors"]))
def test_random_bytes_are_refused_with_a_kit_error(tmp_path, blob, suffix):
    target = tmp_path / f"r{suffix}"
    target.write_bytes(blob)
    with pytest.raises(CheckpointError):
        load_checkpoint(target)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(meta=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                         lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6),
                                                                            c, max_size=3),
                         max_leaves=10))
def test_metadata_of_any_shape_gives_a_kit_error_or_loads(tmp_path, meta):
    """The inspect_kit entry replaced by arbitrary JSON: a CheckpointError, never a crash."""
    from safetensors.torch import save_file

    sd = {"w": torch.ones(2)}
    save_file(sd, tmp_path / "m.safetensors", metadata={"inspect_kit": json.dumps(meta)})
    torch.save({"inspect_kit": meta, "state_dict": sd}, tmp_path / "m.pt")
    for name in ("m.safetensors", "m.pt"):
        try:
            load_model(tmp_path / name)
        except InspectKitError:
            pass


def test_malicious_pickle_runs_nothing_without_trust(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.ones(1)}, "x": Payload()}, buf)
    (tmp_path / "evil.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="--trust"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    # the payload is real: with trust it runs (which is what --trust means)
    load_checkpoint(tmp_path / "evil.pt", trust=True)
    assert marker.exists()
