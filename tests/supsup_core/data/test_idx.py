"""IDX reader: round trips (gzip and raw, all dtypes) and every bad-file error."""
import gzip

import numpy as np
import pytest

from supsup_core.data.idx import read_idx, write_idx


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_round_trip(tmp_path, name, dtype, rng):
    array = (rng.standard_normal((5, 3, 2)) * 100).astype(dtype)
    out = read_idx(write_idx(tmp_path / name, array))
    np.testing.assert_array_equal(out, array)
    assert out.dtype.isnative


def test_gzip_is_detected_from_content_not_name(tmp_path):
    write_idx(tmp_path / "plain", np.arange(6, dtype=np.uint8), compress=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain"), np.arange(6))


def test_golden_bytes_of_a_label_file(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([7, 2, 1], dtype=np.uint8))
    assert path.read_bytes() == bytes.fromhex("00000801" "00000003" "070201")


def test_bad_magic(tmp_path):
    (tmp_path / "x").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(ValueError, match="magic number"):
        read_idx(tmp_path / "x")


def test_truncated_data(tmp_path):
    raw = write_idx(tmp_path / "x", np.zeros((4, 5, 5), np.uint8)).read_bytes()
    (tmp_path / "x").write_bytes(raw[:-7])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "x")


def test_truncated_header_and_trailing_bytes(tmp_path):
    (tmp_path / "h").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "h")
    raw = write_idx(tmp_path / "t", np.zeros(3, np.uint8)).read_bytes()
    (tmp_path / "t").write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="longer than its header"):
        read_idx(tmp_path / "t")


def test_corrupt_gzip(tmp_path):
    data = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 100]) + bytes(100))
    (tmp_path / "x.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot be decompressed"):
        read_idx(tmp_path / "x.gz")


def test_missing_file_and_unsupported_dtype(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")
    with pytest.raises(ValueError, match="cannot hold dtype"):
        write_idx(tmp_path / "c", np.zeros(2, np.complex64))
