"""Download a catalog dataset's official raw files, verify them, and unpack them.

``download_dataset("hc18", "raw/hc18")`` fetches every source file listed in the catalog into
``raw/hc18``, checks each one against the publisher's checksum, and unpacks the archives there,
so that the directory becomes the *official raw layout* that ``fetal-bench datasets build NAME
--raw DIR`` reads:

``hc18``
    ``training_set.zip`` holds a top folder ``training_set/`` (999 images plus 999
    ``*_Annotation.png`` outlines) and ``test_set.zip`` holds ``test_set/`` (335 images); the two
    CSVs are separate files. Result: ``DIR/training_set/``, ``DIR/test_set/``,
    ``DIR/training_set_pixel_size_and_HC.csv``, ``DIR/test_set_pixel_size.csv``.
``fetal-planes-es``
    ``FETAL_PLANES_ZENODO.zip`` holds ``Images/``, ``FETAL_PLANES_DB_data.csv`` and
    ``FETAL_PLANES_DB_data.xlsx`` at its root. Result: the same under ``DIR``.
``fetal-planes-africa``
    ``Zenodo_dataset.tar.xz`` holds ``<Center>/<Filename>.png`` and
    ``African_planes_database.csv``. Public accounts disagree on whether they sit under a
    ``Zenodo_dataset/`` folder, so that folder is removed when present. Result either way:
    ``DIR/<Center>/``, ``DIR/African_planes_database.csv``.
``acouslic-iqa``
    ``acouslic-ai-train-set.zip`` (v1.1) holds ``images/stacked_fetal_ultrasound/<uuid>.mha``,
    ``masks/stacked_fetal_abdomen/<uuid>.mha`` and
    ``circumferences/fetal_abdominal_circumferences_per_sweep.csv``; a wrapping
    ``acouslic-ai-train-set/`` folder is removed when present. Its size and md5 are not pinned in
    the catalog (not seen here): they are read from the Zenodo record at download time.

The downloaded files themselves stay in ``DIR``: a second run verifies them and neither
downloads nor unpacks again.

Every file is verified before use: its size and md5 (and our own sha256 pin, where the catalog has
one) must match. The md5 comes from the catalog or, where the catalog has none, from the Zenodo
record's metadata (``/api/records/<id>``), so a file is never accepted unchecked. Through a
``mirror``, that metadata comes from the mirror as well: for a file fetal-bench pins no checksum
for (the African archive), a match then proves only a complete transfer, and the file is reported
as not verified (:class:`DownloadedFiles`), never as "verified". Downloads stream
into ``<name>.part``, resume with an HTTP ``Range`` request after an interruption, and are renamed
into place only once verified. Archives are unpacked into a temporary directory, refusing any
member that could land outside it, and moved into place only when complete.

``mirror`` replaces ``https://zenodo.org`` in every URL (files and API), for users behind a
mirror and for tests.
"""

from __future__ import annotations

import logging
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.util.retry import Retry

from fetal_bench import __version__
from fetal_bench._io import file_digests, write_json_atomic
from fetal_bench.data.catalog import DatasetInfo, SourceFile, get_dataset_info
from fetal_bench.errors import DownloadError, UnsafeArchiveError

__all__ = ["DownloadedFiles", "download_dataset", "download_file", "extract_archive"]

log = logging.getLogger(__name__)

ZENODO = "https://zenodo.org"

# Network policy. Module-level so that tests can make retries instant.
_TIMEOUT = (15.0, 120.0)  # (connect, read) seconds; "read" is the longest silence between chunks
_RETRIES = 5  # connection-level retries per request (urllib3), with exponential backoff
_RESUMES = 8  # how often a transfer that broke off mid-body is resumed before giving up
_BACKOFF_S = 1.0  # backoff base in seconds: waits are _BACKOFF_S * 2**n
_CHUNK = 1 << 20
_USER_AGENT = f"fetal-bench/{__version__} (+https://github.com/fetal-bench/fetal-bench)"

# Finder metadata that macOS zip tools add; never part of a dataset.
_JUNK_TOP_DIRS = frozenset({"__MACOSX"})


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def download_dataset(
    name_or_info: str | DatasetInfo,
    to_dir: str | os.PathLike,
    *,
    include_optional: bool = True,
    mirror: str | None = None,
    extract: bool = True,
    progress: bool = True,
    session: requests.Session | None = None,
) -> DownloadedFiles:
    """Download, verify and unpack every official source file of a catalog dataset.

    Args:
        name_or_info: a catalog name (``"hc18"``) or a :class:`DatasetInfo`.
        to_dir: where the files go; after the call it holds the official raw layout (see the
            module docstring) plus the downloaded files themselves.
        include_optional: also fetch sources marked ``required=False`` (e.g. HC18's unlabelled
            challenge test set). A failing optional source is warned about, not fatal.
        mirror: base URL that replaces ``https://zenodo.org`` in every URL.
        extract: unpack the archives (sources with ``extract=True``) into ``to_dir``.
        progress: show a progress bar per file.
        session: a ``requests.Session`` to use (default: one with retries and backoff).

    Returns:
        The paths of the source files, in catalog order (optional sources that failed are left
        out), as a :class:`DownloadedFiles` list saying how each was verified: against a
        checksum fetal-bench pins, against the md5 zenodo.org publishes, or, through ``mirror``
        for a file fetal-bench pins nothing for, not at all (the md5 came from the mirror too).

    Raises:
        DownloadError: a required file could not be downloaded, verified or unpacked; the
            message names the file and the cause, and the fix includes the dataset's manual
            download recipe. ``UnsafeArchiveError`` (a ``DownloadError``) for a refused archive.
    """
    info = name_or_info if isinstance(name_or_info, DatasetInfo) else get_dataset_info(name_or_info)
    to_dir = Path(to_dir)
    if not info.sources:
        fix = (
            "It is simulated in-process and needs no download: build it with "
            f"`fetal-bench datasets build {info.name} --out OUT`."
            if info.simulated
            else info.manual_download or f"See {info.homepage}."
        )
        raise DownloadError(f"Dataset {info.name!r} has no files to download.", fix)

    try:
        _check_mirror(mirror)
    except DownloadError as err:
        raise _with_manual_recipe(err, info, None) from err

    own_session = session is None
    http = session or _new_session()
    zenodo_cache: dict[str, dict[str, _PublishedFile]] = {}  # one metadata fetch per record
    downloaded = DownloadedFiles()
    try:
        for source in info.sources:
            if not source.required and not include_optional:
                continue
            try:
                path, expected = _download(source, to_dir, mirror, http, progress, zenodo_cache)
                downloaded.trust[path], downloaded.origin[path] = expected.trust, expected.origin
                if expected.trust == "mirror":
                    log.warning("%s: NOT verified: fetal-bench pins no checksum for it and its md5 came from the "
                                "mirror that served it (%s)", path.name, expected.origin)
                if extract and source.extract:
                    _extract_once(path, to_dir, unwrap=source.unwrap)
            except (DownloadError, OSError) as err:  # requests' exceptions are OSErrors too
                error = _with_manual_recipe(err, info, source)
                if source.required:
                    raise error from err
                message = f"Skipped the optional file {source.filename} of {info.name}: {error.problem}"
                log.warning(message)
                warnings.warn(message, UserWarning, stacklevel=2)
                continue
            downloaded.append(path)
    finally:
        if own_session:
            http.close()
    return downloaded


def download_file(
    source: SourceFile,
    dest_dir: str | os.PathLike,
    *,
    mirror: str | None = None,
    session: requests.Session | None = None,
    progress: bool = True,
) -> Path:
    """Download one source file into ``dest_dir`` and verify it; return its path.

    A file already in ``dest_dir`` that verifies is not downloaded again. An interrupted
    download left as ``<name>.part`` is resumed with a ``Range`` request (or restarted cleanly
    when the server ignores ``Range``). The file is renamed into place only after its size and
    checksums match; a mismatch deletes it and raises :class:`DownloadError`.

    The expected md5 comes from ``source.md5`` or, when that is missing, from the metadata of
    the Zenodo record the URL points into. A file with neither is refused.
    """
    _check_mirror(mirror)
    own_session = session is None
    http = session or _new_session()
    try:
        return _download(source, Path(dest_dir), mirror, http, progress, None)[0]
    finally:
        if own_session:
            http.close()


def extract_archive(
    archive: str | os.PathLike, dest_dir: str | os.PathLike, *, unwrap: str | None = None,
    max_bytes: int | None = None,
) -> list[Path]:
    """Unpack a zip, tar, tar.gz, tar.bz2 or tar.xz archive into ``dest_dir``, all or nothing.

    Every member is checked first; an absolute path, a ``..`` component, a symlink, a hard link
    or a device member makes the whole archive refused with :class:`UnsafeArchiveError` and
    nothing is written. The archive is unpacked into a temporary directory inside ``dest_dir``
    and its top-level entries are moved into place only when all of it is out, replacing
    entries of the same name from an earlier run.

    The members' total size is checked before anything is written: over ``max_bytes`` (default
    :func:`extraction_limit`, about 100 times the archive's size) the archive is refused as a
    decompression bomb, and it must fit in the free space of ``dest_dir``.

    Args:
        unwrap: name of a wrapper folder: if the archive's content all sits in this one
            top-level folder, the folder's content is moved into ``dest_dir`` instead.
        max_bytes: the most bytes the archive may unpack to.

    Returns:
        The top-level paths created in ``dest_dir``.
    """
    archive = Path(archive)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    unpack = _unpack_zip if _is_zip(archive) else _unpack_tar
    limit = extraction_limit(archive) if max_bytes is None else max_bytes
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.extract-", dir=dest))
    try:
        try:
            unpack(archive, staging, limit)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, lzma.LZMAError, zlib.error) as err:
            raise DownloadError(
                f"Could not unpack {archive}: the archive is damaged ({err}).",
                f"Delete {archive} and download it again.",
            ) from err
        except OSError as err:  # a write error, or a read error of a damaged gzip stream
            raise DownloadError(
                f"Could not unpack {archive} into {dest}: {err}.",
                f"Check the free disk space and the permissions of {dest}; if they are fine, "
                f"the archive is damaged: delete {archive} and download it again.",
            ) from err
        root = staging
        if unwrap:
            entries = list(staging.iterdir())
            if len(entries) == 1 and entries[0].name == unwrap and entries[0].is_dir():
                root = entries[0]
        return _move_into_place(root, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# Expected checksums: the catalog first, else the publisher's (Zenodo) record metadata
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PublishedFile:
    size: int | None
    md5: str | None


@dataclass(frozen=True)
class _Expected:
    size: int | None
    md5: str
    sha256: str | None
    origin: str  # where the md5 comes from, named in error messages
    # What a match proves: "pinned" (fetal-bench's catalog pins the checksum), "publisher" (the
    # md5 zenodo.org itself publishes, fetched over HTTPS), "mirror" (the md5 came from the mirror
    # that also served the file: a match proves only that the transfer was complete).
    trust: str = "pinned"


class DownloadedFiles(list):
    """The verified paths :func:`download_dataset` returns (a list), with how each was verified:
    ``trust[path]`` is ``"pinned"``, ``"publisher"`` or ``"mirror"`` (see ``_Expected``), and
    ``origin[path]`` names where its checksum came from."""

    def __init__(self):
        super().__init__()
        self.trust: dict[Path, str] = {}
        self.origin: dict[Path, str] = {}

    @property
    def unverified(self) -> list[Path]:
        """Files whose checksum came from the mirror that served them: not verified at all."""
        return [path for path in self if self.trust.get(path) == "mirror"]


def _expected(
    source: SourceFile,
    mirror: str | None,
    http: requests.Session,
    cache: dict[str, dict[str, _PublishedFile]] | None,
) -> _Expected:
    sha256 = source.sha256.lower() if source.sha256 else None
    if source.md5:
        return _Expected(source.size, source.md5.lower(), sha256, "the fetal-bench catalog")
    record = _zenodo_record_id(source.url)
    if record is None:
        raise DownloadError(
            f"No checksum to verify {source.filename} against: the catalog lists no md5 for it and "
            f"{source.url} is not a Zenodo file whose record would publish one.",
            "Add the publisher's md5 to this file's entry in fetal_bench/data/catalog.py.",
        )
    api_url = _mirrored(f"{ZENODO}/api/records/{record}", mirror)
    # Through a mirror, the "published" md5 comes from the same server as the file: matching it
    # proves the transfer complete, not the file genuine.
    trust = "publisher" if api_url.startswith(ZENODO + "/") else "mirror"
    files = _zenodo_files(api_url, record, http, cache)
    published = files.get(source.filename)
    if published is None or not published.md5:
        listed = ", ".join(sorted(files)) or "no files"
        raise DownloadError(
            f"Zenodo record {record} ({api_url}) publishes no md5 for {source.filename} "
            f"(it lists: {listed}).",
            "The record may have changed: check the file name in fetal_bench/data/catalog.py "
            f"against https://zenodo.org/records/{record}.",
        )
    if source.size is not None and published.size is not None and source.size != published.size:
        raise DownloadError(
            f"{source.filename}: the catalog says {source.size:,} bytes but Zenodo record {record} "
            f"says {published.size:,}.",
            "The published file changed: check the record and update fetal_bench/data/catalog.py.",
        )
    size = source.size if source.size is not None else published.size
    if sha256 is not None:
        trust = "pinned"  # our own sha256 pin is checked too: the file is the one fetal-bench knows
    return _Expected(size, published.md5.lower(), sha256, f"Zenodo record {record}", trust)


def _zenodo_files(
    api_url: str,
    record: int,
    http: requests.Session,
    cache: dict[str, dict[str, _PublishedFile]] | None,
) -> dict[str, _PublishedFile]:
    if cache is not None and api_url in cache:
        return cache[api_url]
    try:
        response = http.get(api_url, timeout=_TIMEOUT, headers={"Accept": "application/json"})
        response.raise_for_status()
        payload = response.json()
    except (requests.RequestException, ValueError) as err:
        raise DownloadError(
            f"Could not read the published checksums of Zenodo record {record} from {api_url}: "
            f"{_reason(err)}.",
            "Check the internet connection (and --mirror, if set) and run the command again.",
        ) from err
    try:
        files = _parse_zenodo_files(payload)
    except DownloadError as err:
        raise DownloadError(f"The checksum list at {api_url} is malformed: {err.problem}", err.fix) from None
    if cache is not None:
        cache[api_url] = files
    return files


def _parse_zenodo_files(payload: Any) -> dict[str, _PublishedFile]:
    """``files`` of a Zenodo record: a list of ``{key, size, checksum: "md5:..."}`` entries.

    InvenioRDM's native format nests them as ``{"entries": {key: entry}}``; both are accepted,
    as is the legacy ``filename``/``filesize`` spelling and a bare hex md5.
    """
    raw = payload.get("files") if isinstance(payload, dict) else None
    if isinstance(raw, dict):
        raw = raw.get("entries") or []
        if isinstance(raw, dict):
            raw = list(raw.values())
    files: dict[str, _PublishedFile] = {}
    for entry in raw or []:
        if not isinstance(entry, dict):
            continue
        key = entry.get("key") or entry.get("filename")
        if not key:
            continue
        size = entry.get("size", entry.get("filesize"))
        checksum = str(entry.get("checksum") or "")
        algorithm, _, digest = checksum.rpartition(":")
        md5 = digest.lower() if algorithm.lower() in ("md5", "") and re.fullmatch(r"[0-9a-fA-F]{32}", digest) else None
        files[str(key)] = _PublishedFile(_published_size(size, key), md5)
    return files


def _published_size(value: Any, key: Any) -> int | None:
    """A listed file size: a whole number of bytes (JSON number or digits), or absent."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise DownloadError(
        f"file {str(key)[:100]!r} has size {str(value)[:40]!r}, not a whole number of bytes.",
        "The record metadata (or the --mirror serving it) is damaged: check --mirror, or try again without it.",
    )


def _zenodo_record_id(url: str) -> int | None:
    match = re.match(r"https?://(?:www\.)?zenodo\.org/(?:api/)?records?/(\d+)(?:/|$)", url)
    return int(match.group(1)) if match else None


def _mirrored(url: str, mirror: str | None) -> str:
    if mirror and (url == ZENODO or url.startswith(ZENODO + "/")):
        return mirror.rstrip("/") + url[len(ZENODO) :]
    return url


def _check_mirror(mirror: str | None) -> None:
    if mirror is not None and not re.match(r"https?://[^/]+", mirror):
        raise DownloadError(
            f"The mirror {mirror!r} is not an http(s) base URL.",
            "Pass a base URL that replaces https://zenodo.org, e.g. --mirror https://mirror.example.org/zenodo",
        )


# ----------------------------------------------------------------------------------------------
# Downloading
# ----------------------------------------------------------------------------------------------


def _new_session() -> requests.Session:
    retry = Retry(
        total=_RETRIES,
        backoff_factor=_BACKOFF_S,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET", "HEAD"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last response comes back and is reported with its status
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = _USER_AGENT
    return session


def _download(
    source: SourceFile,
    dest_dir: Path,
    mirror: str | None,
    http: requests.Session,
    progress: bool,
    cache: dict[str, dict[str, _PublishedFile]] | None,
) -> tuple[Path, _Expected]:
    name = source.filename
    if not name or name in (".", "..") or PurePosixPath(name).name != name or "\\" in name:
        raise DownloadError(
            f"The catalog file name {name!r} is not a plain file name.",
            "Fix the SourceFile entry in fetal_bench/data/catalog.py.",
        )
    expected = _expected(source, mirror, http, cache)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"Cannot create {dest_dir}: {err}.", "Choose a directory you can write to.") from err
    final = dest_dir / name
    if final.is_file():
        problem = _mismatch(final, expected)
        if problem is None:
            log.info("%s is already present and matches %s", final, expected.origin)
            return final, expected
        log.warning("%s is present but %s; downloading it again", final, problem)
        final.unlink()

    url = _mirrored(source.url, mirror)
    part = final.with_name(name + ".part")
    _fetch(url, part, expected.size, http, progress=progress, label=name)
    problem = _mismatch(part, expected)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{name} downloaded from {url} {problem}; the bad file was deleted.",
            "Run the download again to fetch a fresh copy. If the mismatch repeats, the server "
            "(or --mirror) serves a different file from the published one: download it by hand "
            f"and compare its md5 with {expected.md5}.",
        )
    os.replace(part, final)
    log.info("downloaded %s; it matches %s", final, expected.origin)
    return final, expected


def _fetch(
    url: str, part: Path, size: int | None, http: requests.Session, *, progress: bool, label: str
) -> None:
    """Stream ``url`` into ``part``, resuming what is already there. Does not verify."""
    interruptions = 0
    restarted = False
    with tqdm(
        total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress
    ) as bar:
        while True:
            offset = part.stat().st_size if part.exists() else 0
            if size is not None and offset > size:
                part.unlink()  # longer than the published file: cannot be a prefix of it
                offset = 0
            if size is not None and offset == size:
                return
            _check_free_space(part, None if size is None else size - offset, label)

            # identity: a compressed transfer would make byte counts and Range offsets meaningless
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                response = http.get(url, headers=headers, stream=True, timeout=_TIMEOUT)
            except requests.RequestException as err:
                # urllib3 has already retried the connection with backoff.
                raise DownloadError(
                    f"Could not download {label} from {url}: {_reason(err)}.",
                    "Check the internet connection (and --mirror, if set) and run the command "
                    "again; a partial download is kept and resumed.",
                ) from err

            with response:
                status = response.status_code
                if status == 416 and offset and not restarted:
                    # The server cannot serve from our offset, so the .part is not a prefix of
                    # the file it has now. Start again from zero, once.
                    part.unlink()
                    restarted = True
                    continue
                if status >= 400:
                    raise DownloadError(
                        f"Could not download {label}: {url} answered HTTP {status} {response.reason}.",
                        "The file is not at this address (has the record moved?): check the "
                        "dataset page and the URL in the catalog, or --mirror."
                        if status in (404, 410)
                        else "Run the command again later; the server may be busy or down.",
                    )
                if status == 206 and (not offset or _range_start(response) != offset):
                    # A partial answer for another offset than ours: unusable. Start again, once.
                    if restarted:
                        raise DownloadError(
                            f"Could not download {label}: {url} answers Range requests inconsistently.",
                            "Run the command again later, or download the file by hand.",
                        )
                    part.unlink(missing_ok=True)
                    restarted = True
                    continue
                resuming = offset > 0 and status == 206
                if offset and not resuming:
                    # A 200 means the server ignored Range and sends the whole file: start over.
                    log.info("%s: the server does not resume; downloading from the start", label)
                    offset = 0
                _check_announced_size(response, size, resuming, part, label, url)
                bar.reset(total=size)
                bar.update(offset)
                try:
                    with open(part, "ab" if resuming else "wb") as handle:
                        for chunk in response.iter_content(chunk_size=_CHUNK):
                            handle.write(chunk)
                            bar.update(len(chunk))
                        handle.flush()
                        os.fsync(handle.fileno())
                    broken: BaseException | None = None
                except requests.RequestException as err:  # the body broke off mid-transfer
                    broken = err
                except OSError as err:
                    raise DownloadError(
                        f"Could not write {part}: {err}.",
                        f"Check the free disk space and the permissions of {part.parent}.",
                    ) from err

            received = part.stat().st_size
            if broken is None and (size is None or received >= size):
                return
            # Interrupted: either an error mid-body, or the connection closed early.
            interruptions += 1
            reason = _reason(broken) if broken else f"connection closed after {received:,} bytes"
            if interruptions > _RESUMES:
                raise DownloadError(
                    f"The download of {label} from {url} kept breaking off "
                    f"({interruptions} times; last: {reason}).",
                    f"Run the command again later: it resumes from the {received:,} bytes kept in {part}.",
                )
            delay = _BACKOFF_S * 2 ** (interruptions - 1)
            log.warning("%s: transfer interrupted (%s); resuming in %.0f s", label, reason, delay)
            time.sleep(delay)


def _range_start(response: requests.Response) -> int | None:
    match = re.match(r"bytes\s+(\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _check_announced_size(
    response: requests.Response, size: int | None, resuming: bool, part: Path, label: str, url: str
) -> None:
    """Fail before transferring when the server announces a file of the wrong size."""
    if size is None:
        return
    announced: int | None = None
    if resuming:
        match = re.search(r"/(\d+)\s*$", response.headers.get("Content-Range", ""))
        announced = int(match.group(1)) if match else None
    elif "Content-Encoding" not in response.headers and response.headers.get("Content-Length", "").isdigit():
        announced = int(response.headers["Content-Length"])
    if announced is not None and announced != size:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{label} at {url} has {announced:,} bytes but {size:,} are published; nothing was kept.",
            "The server (or --mirror) serves a different file from the published one: check the "
            "URL, or download the file by hand from the dataset page.",
        )


def _check_free_space(part: Path, needed: int | None, label: str) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(part.parent).free
    if free < needed:
        raise DownloadError(
            f"Not enough free disk space for {label}: {needed:,} more bytes needed in "
            f"{part.parent}, {free:,} free.",
            "Free some space or download into another directory.",
        )


def _reason(err: BaseException) -> str:
    # requests nests the useful cause (e.g. "Connection refused") a few levels deep.
    text = str(err)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return match.group(1).strip() if match else text


def _mismatch(path: Path, expected: _Expected) -> str | None:
    """Describe how ``path`` differs from what is published, or None if it matches."""
    got_size = path.stat().st_size
    if expected.size is not None and got_size != expected.size:
        return f"has {got_size:,} bytes but {expected.origin} lists {expected.size:,}"
    digests = _digests(path, sha256=expected.sha256 is not None)
    if digests["md5"] != expected.md5:
        return f"has md5 {digests['md5']} but {expected.origin} lists md5 {expected.md5}"
    if expected.sha256 is not None and digests["sha256"] != expected.sha256:
        return f"has sha256 {digests['sha256']} but the catalog pins sha256 {expected.sha256}"
    return None


def _digests(path: Path, *, sha256: bool) -> dict[str, str]:
    # md5: what Zenodo publishes; sha256 where the catalog pins one.
    return file_digests(path, ("md5", "sha256") if sha256 else ("md5",))


def _with_manual_recipe(err: BaseException, info: DatasetInfo, source: SourceFile | None) -> DownloadError:
    """The same error, prefixed with the dataset name and with the manual recipe in its fix."""
    recipe = info.manual_download or f"Download the files listed at {info.homepage} by hand."
    if isinstance(err, DownloadError):
        cls: type[DownloadError] = type(err)
        problem, fix = err.problem, err.fix
    else:
        cls = DownloadError
        what = source.filename if source is not None else "the download"
        problem, fix = f"{what}: {_reason(err)}", None
    fix = f"{fix}\nOr download by hand: {recipe}" if fix else f"Download by hand: {recipe}"
    return cls(f"{info.name}: {problem}", fix)


# ----------------------------------------------------------------------------------------------
# Unpacking
# ----------------------------------------------------------------------------------------------


def _extract_once(archive: Path, dest: Path, *, unwrap: str | None) -> None:
    """Unpack ``archive`` unless this very file was already unpacked into ``dest``."""
    marker = dest / f".{archive.name}.extracted.json"
    state = archive.stat()
    stamp = {"archive": archive.name, "size": state.st_size, "mtime_ns": state.st_mtime_ns}
    if marker.is_file():
        from fetal_bench._io import UnreadableFile, read_json_file

        try:
            recorded = read_json_file(marker, max_bytes=16 * 1024 * 1024)
            entries = recorded.get("entries", []) if isinstance(recorded, dict) else None
            if (isinstance(entries, list) and all(isinstance(entry, str) for entry in entries)
                    and {k: recorded.get(k) for k in stamp} == stamp
                    and all((dest / entry).exists() for entry in entries)):
                log.info("%s is already unpacked in %s", archive.name, dest)
                return
        except (UnreadableFile, ValueError):
            pass  # unreadable marker (a FIFO, a list, garbage): unpack again
    entries = extract_archive(archive, dest, unwrap=unwrap)
    write_json_atomic(marker, {**stamp, "entries": sorted(p.name for p in entries)})


def _is_zip(archive: Path) -> bool:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return True
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")):
        return False
    if zipfile.is_zipfile(archive):
        return True
    if tarfile.is_tarfile(archive):
        return False
    raise DownloadError(
        f"{archive} is neither a zip nor a tar archive.",
        "Check the file; only zip, tar, tar.gz, tar.bz2 and tar.xz archives can be unpacked.",
    )


def _unsafe(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive.name} was refused: its member {member!r} {why}; nothing was extracted.",
        "Do not use this archive: delete it and download it again from the official source. "
        "If the official file itself contains this member, report it to the fetal-bench maintainers.",
    )


def _member_path(archive: Path, name: str) -> PurePosixPath | None:
    """The safe relative path of a member, None for the archive root, or UnsafeArchiveError."""
    if "\x00" in name:
        raise _unsafe(archive, name, "has a NUL byte in its name")
    posix = name.replace("\\", "/")  # zips made on Windows may use backslashes
    if posix.startswith("/") or re.match(r"[A-Za-z]:", posix):
        raise _unsafe(archive, name, "has an absolute path")
    parts = [part for part in posix.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(archive, name, "has a '..' path component")
    if not parts or parts[0] in _JUNK_TOP_DIRS:
        return None
    return PurePosixPath(*parts)


# Dataset archives hold images and image stacks that compress little (PNG, ultrasound): a total
# far above the archive's own size is a decompression bomb, refused before anything is written.
_EXPANSION_RATIO = 100
# Members of one archive: the official ones hold at most about 12,500 (FETAL_PLANES_DB). A tiny
# tar.xz can list hundreds of thousands of empty files (300,000 in 248 kB took 64 s to unpack):
# counted while the listing is read, and refused at the first member over the limit.
_MAX_MEMBERS = 50_000
_MIN_EXTRACT_LIMIT = 1 << 30  # small archives may still unpack to 1 GiB


def extraction_limit(archive: Path) -> int:
    """The most bytes ``archive`` may unpack to: :data:`_EXPANSION_RATIO` times its size, at least 1 GiB."""
    return max(_MIN_EXTRACT_LIMIT, _EXPANSION_RATIO * archive.stat().st_size)


def _check_total(archive: Path, total: int, limit: int, staging: Path) -> None:
    if total > limit:
        raise UnsafeArchiveError(
            f"{archive.name} was refused: it would unpack to {total:,} bytes, over the limit of {limit:,} "
            f"({archive.stat().st_size:,}-byte archive); nothing was extracted.",
            "Do not use this archive (a decompression bomb or a wrong file): delete it and download it again "
            "from the official source. A genuine larger archive can be unpacked with extract_archive(max_bytes=...).",
        )
    _check_free_space(staging / "x", total, f"unpacking {archive.name}")


def _copy_bounded(src, dst, size: int, archive: Path, name: str) -> None:
    """Copy a member's bytes, never more than its declared ``size`` (the total checked above)."""
    left = size
    while chunk := src.read(min(_CHUNK, left + 1)):
        left -= len(chunk)
        if left < 0:
            raise _unsafe(archive, name, "holds more bytes than its header declares")
        dst.write(chunk)


def _too_many_members(archive: Path) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive.name} was refused: it holds more than {_MAX_MEMBERS:,} members (the official archives hold at "
        "most about 12,500); nothing was extracted.",
        "Do not use this archive (an archive bomb or a wrong file): delete it and download it again from the "
        "official source.")


def _unpack_zip(archive: Path, staging: Path, limit: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        seen: set[PurePosixPath] = set()
        if len(zf.infolist()) > _MAX_MEMBERS:
            raise _too_many_members(archive)
        for info in zf.infolist():  # check everything before writing anything
            path = _member_path(archive, info.filename)
            file_type = stat.S_IFMT(info.external_attr >> 16)
            if file_type == stat.S_IFLNK:
                raise _unsafe(archive, info.filename, "is a symbolic link")
            if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _unsafe(archive, info.filename, "is a device or other special file")
            if path is None:
                continue
            if path in seen and not info.is_dir():
                raise _unsafe(archive, info.filename, "appears twice")
            seen.add(path)
            plan.append((info, path))
        _check_total(archive, sum(info.file_size for info, _ in plan), limit, staging)
        root = staging.resolve()
        for info, path in plan:
            target = staging.joinpath(*path.parts)
            if not target.resolve().is_relative_to(root):  # defence in depth
                raise _unsafe(archive, info.filename, "would be written outside the target")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "xb") as dst:  # reading checks the CRC
                _copy_bounded(src, dst, info.file_size, archive, info.filename)


def _unpack_tar(archive: Path, staging: Path, limit: int) -> None:
    with tarfile.open(archive, "r:*") as tf:
        members: list[tarfile.TarInfo] = []
        seen: set[PurePosixPath] = set()
        # Iterated, not getmembers(): the listing is read (decompressed) only up to the limit.
        for count, member in enumerate(tf, start=1):  # check everything before writing anything
            if count > _MAX_MEMBERS:
                raise _too_many_members(archive)
            path = _member_path(archive, member.name)
            if member.issym() or member.islnk():
                raise _unsafe(archive, member.name, f"is a link (to {member.linkname!r})")
            if member.isdev():
                raise _unsafe(archive, member.name, "is a device or FIFO")
            if not (member.isfile() or member.isdir()):
                raise _unsafe(archive, member.name, "is of an unsupported type")
            if path is None:
                continue
            if path in seen and member.isfile():
                raise _unsafe(archive, member.name, "appears twice")
            seen.add(path)
            members.append(member)
        # A tar member's size is the exact number of data bytes that follow its header.
        _check_total(archive, sum(m.size for m in members if m.isfile()), limit, staging)
        # The data filter (Python >= 3.11.4 / 3.12) re-checks paths and drops unsafe mode bits;
        # the checks above do not rely on it being there.
        if hasattr(tarfile, "data_filter"):
            tf.extractall(staging, members=members, filter="data")
        else:  # pragma: no cover - old Python
            tf.extractall(staging, members=members)


def _move_into_place(root: Path, dest: Path) -> list[Path]:
    entries = sorted(root.iterdir())
    trash = Path(tempfile.mkdtemp(prefix=".replaced-", dir=dest))
    moved: list[Path] = []
    try:
        for index, entry in enumerate(entries):
            target = dest / entry.name
            if target.exists() or target.is_symlink():
                # Left by an earlier run: the freshly unpacked, verified copy replaces it.
                os.replace(target, trash / str(index))
            os.replace(entry, target)
            moved.append(target)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
    return moved
