"""Atomic writes and safetensors files: deterministic bytes, permissions, clear errors."""
import hashlib
import os
import subprocess
import sys

import pytest
import torch

from hopfield_masks.io import load_tensors, read_json, save_tensors, write_json

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
