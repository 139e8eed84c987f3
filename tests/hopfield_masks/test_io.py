"""Atomic writes and safetensors files: deterministic bytes, permissions, clear errors."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hopfield_masks.io import (
    load_tensors,
    read_json,
    remove_stale_temp_files,
    save_tensors,
    write_json,
)

SCRIPT = """
import sys, torch
from hopfield_masks.io import save_tensors
save_tensors(sys.argv[1], {"b": torch.arange(3.0), "a": torch.ones(2, dtype=torch.uint8)},
             {"format": "x", "format_version": "1", "task_id": "7", "masks": '{"l": 1}'})
"""


def test_equal_content_gives_equal_bytes_across_processes(tmp_path):
    digests = set()
    for i in range(4):  # hash-map order differs between processes (hash seeds)
        path = tmp_path / f"f{i}.safetensors"
        subprocess.run([sys.executable, "-c", SCRIPT, str(path)], check=True, env={**os.environ, "PYTHONHASHSEED": str(i)})
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    tensors, meta = load_tensors(tmp_path / "f0.safetensors")
    assert meta == {"format": "x", "format_version": "1", "task_id": "7", "masks": '{"l": 1}'}
    assert torch.equal(tensors["b"], torch.arange(3.0))


def test_written_files_are_readable_by_others_per_umask(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": 1})
    old = os.umask(0o022)
    os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~old
    assert read_json(path) == {"a": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_truncated_or_foreign_files_raise_clear_errors(tmp_path):
    path = save_tensors(tmp_path / "t.safetensors", {"x": torch.zeros(10)})
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_tensors(path)
    (tmp_path / "j.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_json(tmp_path / "j.json")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_tensors(tmp_path / "missing.safetensors")


def test_a_bug_while_reading_is_not_reported_as_an_unreadable_file(tmp_path, monkeypatch):
    import hopfield_masks.io as io_module

    path = save_tensors(tmp_path / "t.safetensors", {"x": torch.zeros(2)})

    def broken(raw):
        raise RuntimeError("a bug, not a bad file")

    monkeypatch.setattr(io_module, "_st_load", broken)
    with pytest.raises(RuntimeError, match="a bug, not a bad file"):
        load_tensors(path)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_special_files_are_named_as_such_not_as_missing(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)  # reading it would block forever
    else:
        path = Path("/dev/null") if kind == "device" else tmp_path
    with pytest.raises(ValueError, match=f"is a {kind}, not a regular file"):
        load_tensors(path, what="store file")
    with pytest.raises(ValueError, match=f"is a {kind}, not a regular file"):
        read_json(path)


def test_remove_stale_temp_files_takes_only_that_targets_old_temp_files(tmp_path):
    import time

    target = tmp_path / "run" / "weights.safetensors"
    target.parent.mkdir()
    old = time.time() - 3600
    names = [".weights.safetensors.k3j_9xq2.tmp", ".weights.safetensors.k3j_9xq3.tmp", ".config.json.k3j_9xq2.tmp"]
    for name in names:
        (target.parent / name).write_bytes(b"partial")
        os.utime(target.parent / name, (old, old))
    (target.parent / ".weights.safetensors.link0000.tmp").symlink_to(tmp_path / "elsewhere")
    removed = remove_stale_temp_files(target)
    assert sorted(p.name for p in removed) == sorted(names[:2])
    assert (target.parent / names[2]).exists() and (target.parent / ".weights.safetensors.link0000.tmp").is_symlink()
    assert remove_stale_temp_files(tmp_path / "missing" / "x") == []
    (target.parent / ".weights.safetensors.new00000.tmp").write_bytes(b"being written")
    assert remove_stale_temp_files(target) == []  # fresh: a write may be in progress
