"""`fetal-bench datasets push`: publish a built dataset directory to the Hub under a tag.

The directory is already in the Hub layout, so it is uploaded as is (one commit), stale data
shards of an earlier version are deleted in the same commit, and the tag is put on exactly that
commit. The resolved commit is what tasks pin, so it is returned and logged beside the data.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from fetal_bench.data.report import read_card_configs
from fetal_bench.data.writer import BUILD_INFO_FILE
from fetal_bench.errors import FetalBenchError

PUSH_LOG = ".push_log.jsonl"  # hidden: never uploaded (see ignore patterns)
_TAG = re.compile(r"^v\d+\.\d+(\.\d+)?([-.][0-9A-Za-z.]+)?$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class PushRecord:
    repo_id: str
    tag: str
    commit: str
    commit_url: str
    fingerprint: str | None
    pushed_at: str


def push_dataset(
    directory: str | Path,
    repo_id: str,
    tag: str,
    *,
    private: bool = False,
    token: str | None = None,
    api=None,
) -> PushRecord:
    """Upload ``directory`` to the dataset repo ``repo_id`` and tag the resulting commit.

    ``api`` is a :class:`huggingface_hub.HfApi` (one is made when omitted). A tag that already
    exists is refused: a published revision never moves.
    """
    directory = Path(directory)
    read_card_configs(directory)  # refuses a directory that is not a built dataset
    build_info_path = directory / BUILD_INFO_FILE
    if not build_info_path.is_file():
        raise FetalBenchError(f"{directory} has no {BUILD_INFO_FILE}.",
                              "Push only directories made by `fetal-bench datasets build`.")
    if not _REPO_ID.match(repo_id):
        raise FetalBenchError(f"Repo id {repo_id!r} is not of the form OWNER/NAME.", "Pass e.g. --repo-id fetal-bench/hc18.")
    if not _TAG.match(tag):
        raise FetalBenchError(f"Tag {tag!r} is not a version tag.", "Use a tag like v1.0 or v1.2.3.")
    from fetal_bench._io import UnreadableFile, read_json_file

    try:
        build_info = read_json_file(build_info_path, max_bytes=64 * 1024 * 1024)
    except (UnreadableFile, ValueError) as error:
        raise FetalBenchError(f"{build_info_path} cannot be read: {error}.",
                              "Push only directories made by `fetal-bench datasets build`.") from None
    fingerprint = build_info.get("fingerprint") if isinstance(build_info, dict) else None

    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        existing = {ref.name for ref in api.list_repo_refs(repo_id, repo_type="dataset").tags}
        if tag in existing:
            raise FetalBenchError(
                f"Tag {tag} already exists on {repo_id}; a published revision must never change.",
                "Bump the version (e.g. v1.1) and push again.",
            )
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(directory),
            commit_message=f"fetal-bench: publish {tag} (fingerprint {str(fingerprint)[:12]})",
            # Remove shards of an earlier version that this build does not have, in the same commit.
            delete_patterns=["*.parquet", "**/*.parquet"],
            ignore_patterns=[".*", "**/.*"],
        )
        api.create_tag(repo_id, tag=tag, revision=commit.oid, repo_type="dataset",
                       tag_message=f"fetal-bench dataset {tag}")
    except FetalBenchError:
        raise
    except Exception as error:  # the Hub client raises many types; all mean "push failed"
        raise FetalBenchError(
            f"Pushing {directory} to {repo_id} failed: {type(error).__name__}: {error}",
            "Check your token (`hf auth login` or HF_TOKEN), your write access to the repo, and the network.",
        ) from error
    record = PushRecord(
        repo_id=repo_id,
        tag=tag,
        commit=commit.oid,
        commit_url=str(commit.commit_url),
        fingerprint=fingerprint,
        pushed_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    with open(directory / PUSH_LOG, "a", encoding="utf-8") as log:
        log.write(json.dumps(asdict(record)) + "\n")
    return record
