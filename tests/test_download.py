"""The official-download layer against a local HTTP server; never the real network.

The server (127.0.0.1, ephemeral port) serves archives the tests build in tmp dirs, under the
same paths as Zenodo (``/records/<id>/files/<name>``, ``/api/records/<id>``); ``mirror`` points
the downloader at it. Switches make it ignore ``Range`` or cut a response short mid-body, and
it logs every request so tests can check what was asked for.
"""

from __future__ import annotations

import hashlib
import io
import re
import socket
import stat
import tarfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from fake_zenodo import RECORD, FakeZenodo, md5

from fetal_bench.data import download as dl
from fetal_bench.data.catalog import DatasetInfo, SourceFile
from fetal_bench.errors import DownloadError, UnsafeArchiveError

RECIPE = "Open the test record in a browser and download the files by hand (test recipe)."


@pytest.fixture(autouse=True)
def fast_and_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """No waiting between retries, and a hard guarantee that nothing leaves 127.0.0.1."""
    monkeypatch.setattr(dl, "_BACKOFF_S", 0.0)
    monkeypatch.setattr(dl, "_RETRIES", 1)
    send = requests.Session.send

    def local_only(self: requests.Session, request: requests.PreparedRequest, **kwargs: object):
        assert urlsplit(request.url).hostname == "127.0.0.1", f"test tried to reach {request.url}"
        return send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", local_only)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def payload(n: int = 300_000, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking bytes (large enough to span several chunks)."""
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


def make_tar(members: dict[str, bytes], mode: str = "w:xz", extra: list[tarfile.TarInfo] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buffer.getvalue()


def source_for(zenodo: FakeZenodo, name: str, data: bytes, **kwargs: object) -> SourceFile:
    url = zenodo.publish(name, data)
    kwargs.setdefault("md5", md5(data))
    kwargs.setdefault("size", len(data))
    return SourceFile(name, url, **kwargs)


def dataset(*sources: SourceFile, record: int | None = RECORD) -> DatasetInfo:
    return DatasetInfo(
        name="test-set",
        title="test",
        description="test",
        hub_id=None,
        revision=None,
        license="cc-by-4.0",
        citation="",
        homepage="https://example.org",
        sources=tuple(sources),
        zenodo_record=record,
        manual_download=RECIPE,
    )


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------------------------
# Good downloads
# ----------------------------------------------------------------------------------------------


def test_dataset_with_zip_csv_and_tar_xz_is_downloaded_and_unpacked(zenodo, tmp_path):
    image = payload(50_000)
    zip_bytes = make_zip({"training_set/000_HC.png": image, "training_set/000_HC_Annotation.png": b"a"})
    csv = b"filename,pixel size(mm),head circumference (mm)\n000_HC.png,0.1,150\n"
    # The African archive with its (reported) wrapper folder: unwrapped into the same layout.
    tar_bytes = make_tar(
        {"Zenodo_dataset/African_planes_database.csv": b"x", "Zenodo_dataset/Malawi/p1.png": image}
    )
    info = dataset(
        source_for(zenodo, "training_set.zip", zip_bytes, extract=True),
        source_for(zenodo, "training_set_pixel_size_and_HC.csv", csv),
        source_for(zenodo, "Zenodo_dataset.tar.xz", tar_bytes, extract=True, unwrap="Zenodo_dataset"),
    )
    out = tmp_path / "raw"
    paths = dl.download_dataset(info, out, mirror=zenodo.base, progress=False)

    assert [p.name for p in paths] == [
        "training_set.zip",
        "training_set_pixel_size_and_HC.csv",
        "Zenodo_dataset.tar.xz",
    ]
    assert (out / "training_set" / "000_HC.png").read_bytes() == image
    assert (out / "training_set_pixel_size_and_HC.csv").read_bytes() == csv
    assert (out / "Malawi" / "p1.png").read_bytes() == image
    assert (out / "African_planes_database.csv").is_file()
    assert not (out / "Zenodo_dataset").exists()
    assert not list(out.glob("*.part")) and not list(out.glob(".*extract-*"))

    # A second run verifies what is there and neither downloads nor unpacks again.
    zenodo.requests.clear()
    (out / "Malawi" / "p1.png").write_bytes(b"edited")  # would be overwritten by a re-extract
    assert dl.download_dataset(info, out, mirror=zenodo.base, progress=False) == paths
    assert zenodo.requests == []
    assert (out / "Malawi" / "p1.png").read_bytes() == b"edited"


def test_tar_without_wrapper_folder_gives_the_same_layout(zenodo, tmp_path):
    tar_bytes = make_tar({"African_planes_database.csv": b"x", "Ghana/p2.png": b"png"}, mode="w:gz")
    info = dataset(source_for(zenodo, "Zenodo_dataset.tar.xz", tar_bytes, extract=True, unwrap="Zenodo_dataset"))
    dl.download_dataset(info, tmp_path, mirror=zenodo.base, progress=False)
    assert {"African_planes_database.csv", "Ghana/p2.png"} <= tree(tmp_path)


def test_download_file_with_progress_bar_and_sha256_pin(zenodo, tmp_path):
    data = payload()
    source = source_for(zenodo, "blob.bin", data, sha256=hashlib.sha256(data).hexdigest())
    path = dl.download_file(source, tmp_path, mirror=zenodo.base + "/", progress=True)
    assert path == tmp_path / "blob.bin" and path.read_bytes() == data
    assert zenodo.requests_for("blob.bin")[0]["Accept-Encoding"] == "identity"


# ----------------------------------------------------------------------------------------------
# Resuming
# ----------------------------------------------------------------------------------------------


def test_truncated_part_is_resumed_with_a_range_request(zenodo, tmp_path):
    data = payload()
    source = source_for(zenodo, "blob.bin", data)
    (tmp_path / "blob.bin.part").write_bytes(data[:123_456])

    path = dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)

    (headers,) = zenodo.requests_for("blob.bin")
    assert headers["Range"] == "bytes=123456-"
    assert md5(path.read_bytes()) == md5(data)
    assert not (tmp_path / "blob.bin.part").exists()


def test_transfer_cut_mid_body_is_resumed(zenodo, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "_CHUNK", 16_384)  # bytes of a chunk cut in the middle are lost
    data = payload()
    source = source_for(zenodo, "blob.bin", data)
    zenodo.cut[urlsplit(source.url).path] = 100_000

    path = dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)

    first, second = zenodo.requests_for("blob.bin")
    assert "Range" not in first
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", second["Range"]).group(1))
    assert 100_000 - 16_384 <= resumed_at <= 100_000
    assert path.read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(zenodo, tmp_path):
    data = payload()
    source = source_for(zenodo, "blob.bin", data)
    (tmp_path / "blob.bin.part").write_bytes(data[:50_000])
    zenodo.ignore_range = True

    path = dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)

    (headers,) = zenodo.requests_for("blob.bin")
    assert headers["Range"] == "bytes=50000-"  # asked for, got a 200 with the whole file
    assert path.read_bytes() == data  # not the old prefix plus the whole file


def test_stale_part_longer_than_the_file_is_discarded(zenodo, tmp_path):
    data = payload(10_000)
    source = source_for(zenodo, "blob.bin", data)
    (tmp_path / "blob.bin.part").write_bytes(b"\0" * 20_000)
    assert dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False).read_bytes() == data


def test_present_file_that_verifies_is_not_downloaded_again(zenodo, tmp_path):
    data = payload(10_000)
    source = source_for(zenodo, "blob.bin", data)
    (tmp_path / "blob.bin").write_bytes(data)
    dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)
    assert zenodo.requests == []


def test_present_file_that_does_not_verify_is_replaced(zenodo, tmp_path):
    data = payload(10_000)
    source = source_for(zenodo, "blob.bin", data)
    (tmp_path / "blob.bin").write_bytes(b"stale")
    assert dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False).read_bytes() == data


# ----------------------------------------------------------------------------------------------
# Verification failures
# ----------------------------------------------------------------------------------------------


def test_checksum_mismatch_deletes_the_file_and_names_expected_and_got(zenodo, tmp_path):
    data = payload(10_000)
    wrong = "0" * 32
    source = source_for(zenodo, "blob.bin", data, md5=wrong)

    with pytest.raises(DownloadError) as caught:
        dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)

    message = str(caught.value)
    assert "blob.bin" in message and wrong in message and md5(data) in message
    assert caught.value.fix and "again" in caught.value.fix
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_is_refused(zenodo, tmp_path):
    data = payload(10_000)
    source = source_for(zenodo, "blob.bin", data, size=12_345)
    with pytest.raises(DownloadError, match=r"blob\.bin.*10,000 bytes.*12,345"):
        dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_sha256_pin_mismatch_is_refused(zenodo, tmp_path):
    source = source_for(zenodo, "blob.bin", payload(1000), sha256="f" * 64)
    with pytest.raises(DownloadError, match="sha256"):
        dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# Checksums from the Zenodo record
# ----------------------------------------------------------------------------------------------


def test_missing_md5_is_taken_from_the_zenodo_record(zenodo, tmp_path):
    data = payload(20_000)
    source = SourceFile("blob.bin", zenodo.publish("blob.bin", data))  # no md5, no size
    zenodo.publish_record()

    path = dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)

    assert path.read_bytes() == data
    assert (f"/api/records/{RECORD}") in [p for p, _ in zenodo.requests]


def test_zenodo_record_md5_is_enforced(zenodo, tmp_path):
    source = SourceFile("blob.bin", zenodo.publish("blob.bin", payload(20_000)))
    zenodo.publish_record(**{"blob.bin": {"checksum": "md5:" + "1" * 32}})
    with pytest.raises(DownloadError, match=f"Zenodo record {RECORD} lists md5 1111"):
        dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_file_missing_from_zenodo_record_is_refused(zenodo, tmp_path):
    source = SourceFile("blob.bin", zenodo.publish("blob.bin", b"data"))
    zenodo.api[f"/api/records/{RECORD}"] = {"files": [{"key": "other.zip", "size": 1, "checksum": "md5:" + "2" * 32}]}
    with pytest.raises(DownloadError, match=r"publishes no md5 for blob\.bin.*other\.zip"):
        dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)


def test_no_md5_and_no_zenodo_record_is_refused(zenodo, tmp_path):
    zenodo.files["/elsewhere/blob.bin"] = b"data"
    source = SourceFile("blob.bin", f"{zenodo.base}/elsewhere/blob.bin")
    with pytest.raises(DownloadError, match="No checksum to verify blob.bin"):
        dl.download_file(source, tmp_path, progress=False)
    assert zenodo.requests == [] and list(tmp_path.iterdir()) == []


def test_invenio_rdm_style_files_entries_are_understood():
    files = dl._parse_zenodo_files(
        {"files": {"enabled": True, "entries": {"a.zip": {"key": "a.zip", "size": 3, "checksum": "md5:" + "A" * 32}}}}
    )
    assert files == {"a.zip": dl._PublishedFile(3, "a" * 32)}


# ----------------------------------------------------------------------------------------------
# Failures of a whole dataset
# ----------------------------------------------------------------------------------------------


def test_failing_optional_source_warns_and_the_rest_succeeds(zenodo, tmp_path):
    good = source_for(zenodo, "train.csv", b"a,b\n")
    missing = SourceFile(
        "test_set.zip", f"https://zenodo.org/records/{RECORD}/files/test_set.zip", md5="3" * 32, required=False
    )
    with pytest.warns(UserWarning, match=r"optional file test_set\.zip.*404"):
        paths = dl.download_dataset(dataset(good, missing), tmp_path, mirror=zenodo.base, progress=False)
    assert paths == [tmp_path / "train.csv"]


def test_optional_sources_can_be_left_out(zenodo, tmp_path):
    good = source_for(zenodo, "train.csv", b"a,b\n")
    optional = source_for(zenodo, "extra.csv", b"c\n", required=False)
    paths = dl.download_dataset(
        dataset(good, optional), tmp_path, mirror=zenodo.base, include_optional=False, progress=False
    )
    assert paths == [tmp_path / "train.csv"] and not zenodo.requests_for("extra.csv")


def test_connection_refused_gives_the_manual_recipe(tmp_path):
    source = SourceFile("blob.bin", f"https://zenodo.org/records/{RECORD}/files/blob.bin", md5="4" * 32)
    with pytest.raises(DownloadError) as caught:
        dl.download_dataset(dataset(source), tmp_path, mirror=f"http://127.0.0.1:{free_port()}", progress=False)
    message = str(caught.value)
    assert "blob.bin" in message and "Connection refused" in message
    assert RECIPE in message
    assert not (tmp_path / "blob.bin").exists()


def test_unreachable_zenodo_api_gives_the_manual_recipe(tmp_path):
    source = SourceFile("blob.bin", f"https://zenodo.org/records/{RECORD}/files/blob.bin")  # no md5
    with pytest.raises(DownloadError) as caught:
        dl.download_dataset(dataset(source), tmp_path, mirror=f"http://127.0.0.1:{free_port()}", progress=False)
    message = str(caught.value)
    assert f"checksums of Zenodo record {RECORD}" in message and "Connection refused" in message
    assert RECIPE in message


def test_required_checksum_failure_gives_the_manual_recipe(zenodo, tmp_path):
    source = source_for(zenodo, "blob.bin", b"data", md5="5" * 32)
    with pytest.raises(DownloadError, match=re.escape(RECIPE)):
        dl.download_dataset(dataset(source), tmp_path, mirror=zenodo.base, progress=False)


def test_bad_mirror_is_refused_with_the_recipe(tmp_path):
    source = SourceFile("blob.bin", f"https://zenodo.org/records/{RECORD}/files/blob.bin", md5="6" * 32)
    with pytest.raises(DownloadError, match=re.escape(RECIPE)):
        dl.download_dataset(dataset(source), tmp_path, mirror="ftp://mirror", progress=False)


def test_dataset_without_sources_is_refused():
    from fetal_bench.data.catalog import PHANTOM

    with pytest.raises(DownloadError, match="no files to download"):
        dl.download_dataset(PHANTOM, "unused", progress=False)


def test_mirror_replaces_zenodo_in_file_and_api_urls():
    assert dl._mirrored("https://zenodo.org/records/1/files/a.zip", "http://m/z/") == "http://m/z/records/1/files/a.zip"
    assert dl._mirrored("https://zenodo.org/api/records/1", "http://m") == "http://m/api/records/1"
    assert dl._mirrored("https://example.org/a.zip", "http://m") == "https://example.org/a.zip"
    assert dl._mirrored("https://zenodo.org/records/1", None) == "https://zenodo.org/records/1"
    assert dl._zenodo_record_id("https://zenodo.org/records/1327317/files/training_set.zip") == 1327317
    assert dl._zenodo_record_id("https://zenodo.org/api/records/7540448/files/x/content") == 7540448
    assert dl._zenodo_record_id("https://example.org/records/1/files/x") is None


# ----------------------------------------------------------------------------------------------
# Unsafe archives
# ----------------------------------------------------------------------------------------------


def _zip_with_symlink() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("good/ok.txt", b"fine")
        link = zipfile.ZipInfo("good/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    return buffer.getvalue()


def _tar_info(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _abs(tmp: Path) -> str:
    return str(tmp / "abs-evil.txt")  # an absolute path the test can check afterwards


FINE = {"good/ok.txt": b"fine"}

# case -> (archive file name, builder(tmp_path) -> archive bytes, what the error must say)
UNSAFE = {
    "zip-dotdot": ("a.zip", lambda tmp: make_zip({**FINE, "../evil.txt": b"x"}), "'..'"),
    "zip-absolute": ("a.zip", lambda tmp: make_zip({**FINE, _abs(tmp): b"x"}), "absolute"),
    "zip-symlink": ("a.zip", lambda tmp: _zip_with_symlink(), "symbolic link"),
    "tar-dotdot": ("a.tar.xz", lambda tmp: make_tar({**FINE, "good/../../evil.txt": b"x"}), "'..'"),
    "tar-absolute": ("a.tar.gz", lambda tmp: make_tar({**FINE, _abs(tmp): b"x"}, mode="w:gz"), "absolute"),
    "tar-symlink": (
        "a.tar.xz",
        lambda tmp: make_tar(FINE, extra=[_tar_info("good/link", tarfile.SYMTYPE, "/etc/passwd")]),
        "link",
    ),
    "tar-hardlink": (
        "a.tar",
        lambda tmp: make_tar(FINE, mode="w", extra=[_tar_info("good/hard", tarfile.LNKTYPE, "good/ok.txt")]),
        "link",
    ),
    "tar-device": ("a.tar.xz", lambda tmp: make_tar(FINE, extra=[_tar_info("good/dev", tarfile.CHRTYPE)]), "device"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_archive_is_refused_and_nothing_is_written(case, tmp_path):
    filename, build, why = UNSAFE[case]
    archive = tmp_path / filename
    archive.write_bytes(build(tmp_path))
    dest = tmp_path / "work" / "out"

    with pytest.raises(UnsafeArchiveError, match=why):
        dl.extract_archive(archive, dest)

    assert tree(dest) == set()  # no partial extraction, no leftover temporary directory
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([filename, "work"])
    assert tree(tmp_path / "work") == {"out"}


def test_unsafe_archive_in_a_dataset_gives_the_recipe(zenodo, tmp_path):
    bad = make_zip({"Images/ok.png": b"fine", "../../evil.png": b"x"})
    info = dataset(source_for(zenodo, "FETAL_PLANES_ZENODO.zip", bad, extract=True))
    out = tmp_path / "raw"
    with pytest.raises(UnsafeArchiveError) as caught:
        dl.download_dataset(info, out, mirror=zenodo.base, progress=False)
    assert RECIPE in str(caught.value)
    assert tree(out) == {"FETAL_PLANES_ZENODO.zip"}  # verified download kept, nothing unpacked
    assert not (tmp_path / "evil.png").exists()


def test_damaged_archive_is_reported(tmp_path):
    archive = tmp_path / "a.tar.xz"
    archive.write_bytes(make_tar({"x/y.txt": payload(100_000)})[:5_000])
    with pytest.raises(DownloadError, match="damaged"):
        dl.extract_archive(archive, tmp_path / "out")
    assert tree(tmp_path / "out") == set()


def test_extract_replaces_an_earlier_extraction_and_skips_macos_junk(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"Images/new.png": b"new", "__MACOSX/Images/._new.png": b"junk", "data.csv": b"c"}))
    dest = tmp_path / "out"
    (dest / "Images").mkdir(parents=True)
    (dest / "Images" / "old.png").write_bytes(b"old")
    (dest / "keep.txt").write_bytes(b"mine")

    created = dl.extract_archive(archive, dest)

    assert sorted(p.name for p in created) == ["Images", "data.csv"]
    assert tree(dest) == {"Images", "Images/new.png", "data.csv", "keep.txt"}


# ----------------------------------------------------------------------------------------------
# Hostile archives and metadata (issue 15)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_decompression_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(dl, "_MIN_EXTRACT_LIMIT", 1_000_000)  # stands in for 1 GiB: the test stays small
    zeros = b"\0" * 8_000_000  # compresses about 1000-fold, like the 4 MB zip that unpacked to 4 GiB
    archive = tmp_path / f"bomb.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a.bin", zeros)
    else:
        archive.write_bytes(make_tar({"a.bin": zeros}, mode="w:gz"))
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError) as error:
        dl.extract_archive(archive, dest)
    size = archive.stat().st_size
    assert error.value.problem == (f"{archive.name} was refused: it would unpack to 8,000,000 bytes, over the limit of "
                                   f"{max(1_000_000, 100 * size):,} ({size:,}-byte archive); nothing was extracted.")
    assert tree(dest) == set()


def test_extraction_limit_can_be_raised_for_a_genuine_archive(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"a.bin": b"\0" * 50_000}))
    with pytest.raises(UnsafeArchiveError, match="over the limit of 10,000"):
        dl.extract_archive(archive, tmp_path / "out", max_bytes=10_000)
    dl.extract_archive(archive, tmp_path / "out", max_bytes=50_000)
    assert (tmp_path / "out" / "a.bin").stat().st_size == 50_000


def test_a_zip_member_longer_than_its_header_says_is_refused(tmp_path, monkeypatch):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"a.bin": b"x" * 1000}))
    real_open = zipfile.ZipFile.open

    def lying_open(self, info, *args, **kwargs):  # as if the header declared fewer bytes than stored
        handle = real_open(self, info, *args, **kwargs)
        info.file_size = 10
        return handle

    monkeypatch.setattr(zipfile.ZipFile, "open", lying_open)
    with pytest.raises(UnsafeArchiveError, match="holds more bytes than its header declares"):
        dl.extract_archive(archive, tmp_path / "out")
    assert tree(tmp_path / "out") == set()


@pytest.mark.parametrize("size", ["abc", -5, 1.5, True, [1]])
def test_malformed_size_in_a_mirrors_checksum_list_is_a_clear_error(zenodo, tmp_path, size):
    source = SourceFile("blob.bin", zenodo.publish("blob.bin", payload(1_000)))  # no md5: the record gives it
    zenodo.publish_record(**{"blob.bin": {"size": size}})
    with pytest.raises(DownloadError) as error:
        dl.download_file(source, tmp_path, mirror=zenodo.base, progress=False)
    assert error.value.problem == (f"The checksum list at {zenodo.base}/api/records/{RECORD} is malformed: file "
                                   f"'blob.bin' has size {str(size)!r}, not a whole number of bytes.")
    assert "--mirror" in error.value.fix
    assert list(tmp_path.iterdir()) == []
