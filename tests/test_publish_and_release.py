"""`datasets push` (Hub client replaced at its boundary) and the release pipeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from fetal_bench.data import release
from fetal_bench.data.builders import build_dataset
from fetal_bench.data.publish import PUSH_LOG, push_dataset
from fetal_bench.data.release import ReleaseCheck, release_dataset, validate_build
from fetal_bench.errors import DataError, FetalBenchError
from fake_raw import make_hc18_raw


@dataclass
class FakeHubApi:
    """Records the calls fetal-bench makes on `huggingface_hub.HfApi` and answers like the Hub."""

    tags: set = field(default_factory=set)
    calls: list = field(default_factory=list)
    uploaded: dict = field(default_factory=dict)
    fail_upload: bool = False

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/datasets/{repo_id}"

    def list_repo_refs(self, repo_id, **kwargs):
        self.calls.append(("list_repo_refs", repo_id, kwargs))
        return SimpleNamespace(tags=[SimpleNamespace(name=t) for t in sorted(self.tags)])

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        if self.fail_upload:
            raise ConnectionError("network unreachable")
        from pathlib import Path

        folder = Path(kwargs["folder_path"])
        self.uploaded = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        return SimpleNamespace(oid="c0ffee" * 6 + "abcd", commit_url="https://huggingface.co/datasets/x/commit/c0ffee")

    def create_tag(self, repo_id, **kwargs):
        self.calls.append(("create_tag", repo_id, kwargs))
        self.tags.add(kwargs["tag"])


@pytest.fixture()
def built(tmp_path):
    make_hc18_raw(tmp_path / "raw", subjects=10)
    build_dataset("hc18", tmp_path / "built", raw_dir=tmp_path / "raw")
    return tmp_path / "built"


def test_push_uploads_the_folder_and_tags_that_commit(built):
    api = FakeHubApi()
    record = push_dataset(built, "fetal-bench/hc18", "v1.0", api=api)
    names = [c[0] for c in api.calls]
    assert names == ["create_repo", "list_repo_refs", "upload_folder", "create_tag"]
    upload = api.calls[2][2]
    assert upload["repo_type"] == "dataset" and "*.parquet" in upload["delete_patterns"]
    tag_call = api.calls[3][2]
    assert tag_call["tag"] == "v1.0" and tag_call["revision"] == record.commit
    assert record.fingerprint == json.loads((built / "build_info.json").read_text())["fingerprint"]
    logged = [json.loads(line) for line in (built / PUSH_LOG).read_text().splitlines()]
    assert logged[-1]["commit"] == record.commit and logged[-1]["tag"] == "v1.0"
    # A second push of the same tag is refused: a published revision never moves.
    with pytest.raises(FetalBenchError, match="already exists"):
        push_dataset(built, "fetal-bench/hc18", "v1.0", api=api)


def test_push_refuses_bad_input_and_reports_hub_failures(built, tmp_path):
    with pytest.raises(FetalBenchError, match="not a version tag"):
        push_dataset(built, "fetal-bench/hc18", "latest", api=FakeHubApi())
    with pytest.raises(FetalBenchError, match="OWNER/NAME"):
        push_dataset(built, "hc18", "v1.0", api=FakeHubApi())
    with pytest.raises(FetalBenchError, match="not a built dataset"):
        push_dataset(tmp_path, "fetal-bench/hc18", "v1.0", api=FakeHubApi())
    with pytest.raises(FetalBenchError, match="network unreachable.*\nFix: Check your token"):
        push_dataset(built, "fetal-bench/hc18", "v1.0", api=FakeHubApi(fail_upload=True))


def test_validate_build_refuses_partial_or_wrong_counts(built):
    with pytest.raises(DataError, match="build warning: Partial raw directory"):
        validate_build(built, ReleaseCheck(rows={}), ["Partial raw directory: 12 of 999"])
    with pytest.raises(DataError, match="'challenge_test': 0 rows, expected 335"):
        validate_build(built, ReleaseCheck(rows={"default": {"challenge_test": 335}}), [])
    validate_build(built, ReleaseCheck(rows={}, total_rows={"default": 14}), [])  # 10 subjects + 4 second images


def test_release_pipeline_runs_download_build_validate_push(tmp_path, monkeypatch):
    def fake_download(name, to_dir, mirror=None):
        make_hc18_raw(to_dir, subjects=10, with_test_set=True)
        return []

    monkeypatch.setattr(release, "download_dataset", fake_download)
    api = FakeHubApi()
    monkeypatch.setattr("huggingface_hub.HfApi", lambda token=None: api)
    check = ReleaseCheck(rows={"default": {"challenge_test": 4}}, total_rows={"default": 18}, allow_warnings=True)
    built = release_dataset("hc18", tmp_path / "work", check, push=True, log=lambda message: None)
    assert (built / "README.md").exists()
    assert api.tags == {"v1.0"} and api.calls[0][1] == "fetal-bench/hc18"
    assert "README.md" in api.uploaded and "build_info.json" in api.uploaded
    assert ".*" in api.calls[2][2]["ignore_patterns"]  # the local push log is never uploaded
