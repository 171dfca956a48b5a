"""Outputs: all or nothing, the user's umask, and every output-path error refused before work."""

import os
import re
import stat
from argparse import Namespace

import pytest
import torch

from inspect_kit import zoo
from inspect_kit.checkpoints import save_checkpoint
from inspect_kit.cli import main
from inspect_kit.commands.common import check_outputs, write_outputs
from inspect_kit.errors import OptionError
from inspect_kit.io import atomic_write, write_all


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path, mask):
    old = os.umask(mask)
    try:
        write_all({tmp_path / "a.json": b"{}", tmp_path / "b.png": b"x"})
        with atomic_write(tmp_path / "c.txt") as fh:
            fh.write("c")
        open(tmp_path / "ref", "w").close()  # what a plain open() gives
    finally:
        os.umask(old)
    for name in ("a.json", "b.png", "c.txt"):
        assert _mode(tmp_path / name) == _mode(tmp_path / "ref") == 0o666 & ~mask
    os.chmod(tmp_path / "a.json", 0o600)
    write_all({tmp_path / "a.json": b"[]"})
    assert _mode(tmp_path / "a.json") == 0o600 and (tmp_path / "a.json").read_bytes() == b"[]"


def test_write_all_is_all_or_nothing(tmp_path):
    (tmp_path / "keep.json").write_text("old")
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    with pytest.raises(OSError):
        write_all({tmp_path / "keep.json": b"new", tmp_path / "new.png": b"png",
                   tmp_path / "blocker" / "x.json": b"{}"})
    assert (tmp_path / "keep.json").read_text() == "old"  # the earlier target is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "keep.json"]  # no temps


def test_a_failing_figure_leaves_no_json(tmp_path):
    class R:
        def dumps(self):
            return "{}"

    def plot(_):
        raise OptionError("the figure cannot be drawn")

    args = Namespace(json=str(tmp_path / "r.json"), plot=str(tmp_path / "r.png"))
    with pytest.raises(OptionError):
        write_outputs(args, R(), plot=plot)
    assert list(tmp_path.iterdir()) == []


def test_symlinked_output_is_written_through(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    write_all({tmp_path / "link.json": b"new"})
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == "new"


@pytest.mark.parametrize("opt, make, match", [
    ("json", lambda d: d / "file" / "x.json", "is a file, not a folder"),
    ("json", lambda d: d / "file" / "deeper" / "x.json", "is a file, not a folder"),
    ("json", lambda d: d, "is a folder"),
    ("plot", lambda d: d / "p.xyz", "unknown figure format .xyz"),
    ("plot", lambda d: d / "p", "unknown figure format (none)"),
    ("snapshots", lambda d: d / "s.jpg", "unknown figure format .jpg"),
    ("json", lambda d: d / "fifo", "not a regular file"),
])
def test_output_path_errors_are_refused_up_front(tmp_path, opt, make, match):
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    args = Namespace(command="hessian", **{opt: str(make(tmp_path))})
    with pytest.raises(OptionError, match=re.escape(match)):
        check_outputs(args)


def test_cli_output_error_happens_before_any_work(tmp_path, capfd, monkeypatch):
    """The checkpoint is never read when an output path is unusable."""
    save_checkpoint(zoo.build("mlp", sizes=[4, 3, 2]), tmp_path / "m.pt")
    import inspect_kit.checkpoints as ck

    monkeypatch.setattr(ck, "load_checkpoint", lambda *a, **k: pytest.fail("work started"))
    os.mkfifo(tmp_path / "fifo")
    for cmd, bad in (("info", ["--json", str(tmp_path / "fifo")]),
                     ("info", ["--json", str(tmp_path / "m.pt" / "x")]),
                     ("esd", ["--plot", str(tmp_path / "p.xyz")])):
        assert main([cmd, str(tmp_path / "m.pt"), *bad]) == 2
        assert len(capfd.readouterr().err.strip().splitlines()) == 1


def test_cli_writes_json_and_plot_together(tmp_path):
    torch.manual_seed(0)
    save_checkpoint(zoo.build("mlp", sizes=[64, 8, 10]), tmp_path / "m.pt")
    out = tmp_path / "out"
    assert main(["esd", str(tmp_path / "m.pt"), "--json", str(out / "e.json"), "--plot",
                 str(out / "e.svg")]) == 0
    from analyses.esd.result import ESDResult

    assert isinstance(ESDResult.load(out / "e.json"), ESDResult)  # the whole JSON, readable
    assert (out / "e.svg").read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in out.iterdir()) == ["e.json", "e.svg"]
