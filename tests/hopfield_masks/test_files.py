"""Store files: round trips for every backend, golden bytes, and every way a file can be wrong."""
import json

import pytest
import torch

from hopfield_masks import (
    MEMORY_CLASSES,
    DenseMemory,
    HopfieldMemory,
    ImplicitMemory,
    MaskLayout,
    load_memory,
    load_store,
    make_memory,
    save_store,
)
from hopfield_masks.io import load_tensors, save_tensors
from tests.hopfield_masks.test_memory import EVERY

# hebbian, dense, d = 8, two patterns: header JSON + weights (8, 8) + mean_pattern (8,), float32
GOLDEN_HEX = (
    "c8010000000000007b225f5f6d657461646174615f5f223a7b22686f706669656c645f6d61736b73223a227b5c226261"
    "636b656e645c223a205c2264656e73655c222c205c22636865636b73756d5c223a205c22363038663839366530333332"
    "343334356639363338343233313439306462373963616365636131386230616263336163383362373164313131393430"
    "643965625c222c205c22636f756e745c223a20322c205c2264696d5c223a20382c205c2264747970655c223a205c2266"
    "6c6f617433325c222c205c22666f726d61745c223a205c22686f706669656c645f6d61736b732e73746f72655c222c20"
    "5c22666f726d61745f76657273696f6e5c223a20322c205c226c61796f75745c223a206e756c6c2c205c2272756c655c"
    "223a205c226865626269616e5c222c205c2272756c655f6f7074696f6e735c223a207b7d7d227d2c226d65616e5f7061"
    "747465726e223a7b226474797065223a22463332222c227368617065223a5b385d2c22646174615f6f66667365747322"
    "3a5b302c33325d7d2c2277656967687473223a7b226474797065223a22463332222c227368617065223a5b382c385d2c"
    "22646174615f6f666673657473223a5b33322c3238385d7d7d202020202020200000803f000000000000803f000080bf"
    "000000000000000000000000000080bf00000000000000000000803e000080be000000000000000000000000000080be"
    "00000000000000000000000000000000000080be000080be0000803e000000000000803e0000000000000000000080be"
    "000000000000000000000000000080be000080be00000000000080be000000000000000000000000000000000000803e"
    "00000000000080be0000000000000000000000000000803e000080be0000000000000000000080be0000000000000000"
    "0000803e00000000000080be00000000000000000000803e0000000000000000000080be000080be0000000000000000"
    "000080be00000000000080be0000803e00000000000000000000000000000000"
)


def golden_memory() -> HopfieldMemory:
    return make_memory("hebbian", 8).store(torch.tensor([[1.0, -1, 1, -1, 1, 1, -1, -1], [1.0, 1, 1, -1, -1, -1, 1, -1]]))


@pytest.mark.parametrize("rule, backend", EVERY)
def test_round_trip(tmp_path, patterns_of, rule, backend):
    layout = MaskLayout(("a", "b"), ((3, 4), (8,)))
    memory = make_memory(rule, 20, backend, layout=layout).store(patterns_of(1, 5, 20, 0.3))
    memory.save(tmp_path / "m.store")
    loaded = load_memory(tmp_path / "m.store")
    assert type(loaded) is type(memory)
    assert (loaded.rule, loaded.dim, loaded.count, loaded.layout) == (rule, 20, 5, layout)
    assert loaded.learning_rule == memory.learning_rule
    torch.testing.assert_close(loaded.mean_pattern, memory.mean_pattern)
    states = patterns_of(2, 4, 20)
    torch.testing.assert_close(loaded.field(states), memory.field(states))
    torch.testing.assert_close(loaded.energy(states), memory.energy(states))
    assert loaded.nbytes == memory.nbytes
    loaded.store(patterns_of(3, 2, 20))  # keeps learning after a load
    assert loaded.count == 7


def test_empty_memory_round_trip(tmp_path):
    make_memory("pseudoinverse", 9, "implicit").save(tmp_path / "e.store")
    assert load_memory(tmp_path / "e.store").count == 0


def test_golden_bytes(tmp_path):
    golden_memory().save(tmp_path / "g.store")
    assert (tmp_path / "g.store").read_bytes().hex() == GOLDEN_HEX


def test_the_header_picks_the_class_through_the_registry(tmp_path):
    golden_memory().save(tmp_path / "g.store")
    assert type(load_memory(tmp_path / "g.store")) is DenseMemory
    make_memory("hebbian", 8, "implicit").save(tmp_path / "i.store")
    assert type(load_memory(tmp_path / "i.store")) is ImplicitMemory


@pytest.mark.parametrize("rule, backend", sorted(MEMORY_CLASSES))
def test_every_registered_pair_round_trips(tmp_path, patterns_of, rule, backend):
    memory = make_memory(rule, 24, backend).store(patterns_of(21, 4, 24))
    memory.save(tmp_path / "m.store")
    loaded = load_memory(tmp_path / "m.store")
    assert type(loaded) is MEMORY_CLASSES[rule, backend] and (loaded.rule, loaded.backend) == (rule, backend)
    assert loaded.learning_rule == memory.learning_rule and loaded.count == 4
    states = patterns_of(22, 3, 24)
    torch.testing.assert_close(loaded.field(states), memory.field(states))


def test_newer_and_older_format_versions(tmp_path):
    save_store(tmp_path / "new.store", {"weights": torch.zeros(2, 2)}, {"format_version": 3})
    with pytest.raises(ValueError, match="format_version 3, newer than this code reads \\(2\\); upgrade"):
        load_memory(tmp_path / "new.store")
    save_store(tmp_path / "old.store", {"weights": torch.zeros(2, 2)}, {"format_version": 1})
    with pytest.raises(ValueError, match="format_version 1, older than this code reads \\(2\\).*supsup encode"):
        load_memory(tmp_path / "old.store")


def test_an_edited_header_is_caught_by_the_checksum(tmp_path):
    # the rule's options and the count change the memory that loads, so the checksum covers them
    golden_memory().save(tmp_path / "g.store")
    tensors, metadata = load_tensors(tmp_path / "g.store")
    header = json.loads(metadata["hopfield_masks"])
    header["count"] = 50
    save_tensors(tmp_path / "e.store", tensors, {"hopfield_masks": json.dumps(header, sort_keys=True)})
    with pytest.raises(ValueError, match="is corrupted: its header and tensors do not match the checksum"):
        load_memory(tmp_path / "e.store")


def test_truncated_file(tmp_path):
    golden_memory().save(tmp_path / "g.store")
    data = (tmp_path / "g.store").read_bytes()
    (tmp_path / "t.store").write_bytes(data[: len(data) - 10])
    with pytest.raises(ValueError, match="not a readable safetensors file.*truncated"):
        load_memory(tmp_path / "t.store")


def test_corrupted_tensor_bytes(tmp_path):
    golden_memory().save(tmp_path / "g.store")
    data = bytearray((tmp_path / "g.store").read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "c.store").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is corrupted: its header and tensors do not match the checksum"):
        load_memory(tmp_path / "c.store")


def test_foreign_files(tmp_path):
    save_tensors(tmp_path / "f.safetensors", {"x": torch.zeros(3)})
    with pytest.raises(ValueError, match="not a Hopfield store \\(foreign file\\?\\)"):
        load_memory(tmp_path / "f.safetensors")
    save_tensors(tmp_path / "o.safetensors", {"x": torch.zeros(3)}, {"hopfield_masks": json.dumps({"format": "other"})})
    with pytest.raises(ValueError, match="has format 'other'"):
        load_memory(tmp_path / "o.safetensors")
    (tmp_path / "text.store").write_text("hello")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_memory(tmp_path / "text.store")
    with pytest.raises(FileNotFoundError, match="store file not found"):
        load_memory(tmp_path / "missing.store")


def test_inconsistent_header(tmp_path):
    save_store(tmp_path / "h.store", {"weights": torch.zeros(2, 2)},
               {"rule": "hebbian", "backend": "dense", "dim": 3, "count": 0, "dtype": "float32", "layout": None,
                "rule_options": {}})
    with pytest.raises(ValueError, match="tensor 'weights' has shape \\(2, 2\\).*expected \\(3, 3\\)"):
        load_memory(tmp_path / "h.store")
    save_store(tmp_path / "k.store", {}, {"rule": "hebbian"})
    with pytest.raises(ValueError, match="lacks header field"):
        load_memory(tmp_path / "k.store")
    save_store(tmp_path / "r.store", {}, {"rule": "oja", "backend": "dense", "dim": 3, "count": 0, "dtype": "float32",
                                          "layout": None, "rule_options": {}})
    with pytest.raises(ValueError, match="unreadable header \\(rule 'oja'"):
        load_memory(tmp_path / "r.store")


def test_the_run_identity_is_an_optional_header_field_covered_by_the_checksum(tmp_path):
    digest = "3c" * 32
    memory = make_memory("pseudoinverse", 12, "implicit", run_digest=digest).store(torch.ones(1, 12))
    memory.save(tmp_path / "r.store")
    tensors, header = load_store(tmp_path / "r.store")
    assert header["run_weights_sha256"] == digest and header["format_version"] == 2
    assert load_memory(tmp_path / "r.store").run_digest == digest
    # a store without it (written before the field existed, or without a run: the golden file) loads as unknown
    golden_memory().save(tmp_path / "g.store")
    assert "run_weights_sha256" not in load_store(tmp_path / "g.store")[1]
    assert load_memory(tmp_path / "g.store").run_digest is None
    # editing it is caught like any header edit; a malformed value with a valid checksum is refused by name
    edited = {k: v for k, v in header.items() if k not in ("format", "format_version", "checksum")}
    save_store(tmp_path / "bad.store", tensors, {**edited, "run_weights_sha256": "not a digest"})
    with pytest.raises(ValueError, match="run_weights_sha256 must be None or a SHA-256.*corrupted"):
        load_memory(tmp_path / "bad.store")


def test_a_store_replaces_only_an_earlier_store(tmp_path):
    golden_memory().save(tmp_path / "g.store")
    make_memory("hebbian", 8).save(tmp_path / "g.store")  # an earlier store: replaced
    assert load_memory(tmp_path / "g.store").count == 0
    (tmp_path / "notes.json").write_text('{"mine": 1}')
    with pytest.raises(ValueError, match="exists and is a file that is not a Hopfield store"):
        golden_memory().save(tmp_path / "notes.json")
    assert (tmp_path / "notes.json").read_text() == '{"mine": 1}'
    save_tensors(tmp_path / "other.safetensors", {"x": torch.zeros(2)})  # safetensors, but not a store
    with pytest.raises(ValueError, match="not a Hopfield store"):
        golden_memory().save(tmp_path / "other.safetensors")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="exists and is a folder"):
        golden_memory().save(tmp_path / "folder")


def test_writing_a_store_removes_the_stale_temp_files_of_a_killed_write_there(tmp_path):
    import os
    import time

    def temp(name, age):
        path = tmp_path / name
        path.write_bytes(b"x" * 100)
        os.utime(path, (time.time() - age, time.time() - age))
        return path

    stale = temp(".g.store.ab_cd123.tmp", 3600)
    fresh = temp(".g.store.zz999999.tmp", 5)  # a write in progress right now
    others = [temp(".g.store.tmp", 3600), temp(".g.store.abcdefgh.tmp.keep", 3600), temp(".h.store.abcdefgh.tmp", 3600),
              temp(".g.store.abc.tmp", 3600), temp(".g.store.ABCDEFGH.tmp", 3600)]
    golden_memory().save(tmp_path / "g.store")
    assert not stale.exists() and fresh.exists() and all(p.exists() for p in others)
