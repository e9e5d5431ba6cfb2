"""The basics every part shares: file digests, the seeded key, the JSON walker, registry lookups."""

from __future__ import annotations

import hashlib
import math

import pytest

from fetal_bench import _io
from fetal_bench.errors import FetalBenchError, registry_entry


def test_file_digests_read_the_file_once_for_every_algorithm(tmp_path):
    path = tmp_path / "blob"
    data = bytes(range(256)) * 9000  # over two 1 MiB chunks
    path.write_bytes(data)
    assert _io.file_digests(path, ("md5", "sha256")) == {"md5": hashlib.md5(data).hexdigest(),
                                                         "sha256": hashlib.sha256(data).hexdigest()}
    assert _io.sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert _io.sha256_file(path, "md5") == hashlib.md5(data).hexdigest()


def test_seeded_key_is_the_recorded_formula():
    # The split rule of every built dataset (docs/design.md): sha256("<seed>:<key>").
    assert _io.seeded_key(20240, "subject-7") == hashlib.sha256(b"20240:subject-7").digest()
    assert _io.seeded_key(1, "a") != _io.seeded_key(2, "a")


def test_json_leaves_walk_every_value_in_document_order():
    document = {"scores": {"dice": {"value": 0.9, "ci95": [0.8, None]}}, "notes": ["a"], "n": 3}
    assert list(_io.json_leaves(document)) == [
        ("/scores/dice/value", 0.9), ("/scores/dice/ci95/0", 0.8), ("/scores/dice/ci95/1", None),
        ("/notes/0", "a"), ("/n", 3)]
    assert list(_io.json_leaves(math.nan))[0][0] == ""  # a bare value is at the top level
    deep: list = []
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = [deep]
    assert list(_io.json_leaves(deep)) == []


def test_registry_entry_names_what_is_known():
    registry = {"b": 2, "a": 1}
    assert registry_entry(registry, "a", "thing") == 1
    with pytest.raises(FetalBenchError, match=r"Unknown thing 'c'\.") as error:
        registry_entry(registry, "c", "thing", known=sorted(registry), listed_by="fetal-bench things list")
    assert error.value.fix == "Use one of: a, b (see `fetal-bench things list`)."
    with pytest.raises(FetalBenchError) as error:
        registry_entry(registry, "c", "thing")
    assert error.value.fix == "Use one of: b, a."
