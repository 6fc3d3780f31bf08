"""The artifact store on S3 (s3fs), against a real S3 API server (moto, in its own process)."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest
from tuneserve.errors import Conflict, NotFound
from tuneserve.registry import ArtifactStore, weights_sha256
from tuneserve.registry.store import COMPLETE_MARKER


@pytest.fixture
def store(s3_server: dict, tmp_path: Path) -> ArtifactStore:
    """A store under a fresh prefix of the test bucket, with its own download cache."""
    return ArtifactStore(f"s3://{s3_server['bucket']}/{uuid.uuid4().hex}", tmp_path / "cache")


def _objects(s3_server: dict, uri: str) -> set[str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=s3_server["endpoint"])
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return {item["Key"][len(prefix) + 1 :] for item in listed.get("Contents", [])}


def test_a_model_directory_goes_up_with_its_completion_marker_last(store, model_dir, s3_server):
    uri = store.put_dir(model_dir, "models/sentiment/2")
    assert uri.startswith(f"s3://{s3_server['bucket']}/") and uri.endswith("/models/sentiment/2")
    # the real S3 API holds every file, and the marker that says the upload finished
    assert _objects(s3_server, uri) == {
        "model.safetensors",
        "config.json",
        "tokenizer/vocab.txt",
        COMPLETE_MARKER,
    }
    assert store.exists(uri)


def test_keys_are_written_once(store, model_dir):
    store.put_dir(model_dir, "models/sentiment/2")
    with pytest.raises(Conflict, match="already exists"):
        store.put_dir(model_dir, "models/sentiment/2")
    store.put_file(model_dir / "config.json", "files/file-1.arrow")
    with pytest.raises(Conflict, match="already exists"):
        store.put_file(model_dir / "config.json", "files/file-1.arrow")


def test_a_reader_downloads_once_then_reads_its_cache(store, model_dir, s3_server):
    uri = store.put_dir(model_dir, "models/sentiment/2")
    local = store.local_path(uri)
    assert local.is_relative_to(store.cache_dir)
    assert weights_sha256(local) == weights_sha256(model_dir)
    assert (local / "tokenizer" / "vocab.txt").read_text() == "a\nb\n"
    assert not (local / COMPLETE_MARKER).exists()
    # gone from S3, still served from the cache: the second read did not download
    store.delete(uri)
    assert not store.exists(uri)
    assert store.local_path(uri) == local and weights_sha256(local) == weights_sha256(model_dir)


def test_an_upload_without_its_marker_is_never_read(store, model_dir, s3_server):
    """A writer that died mid-upload leaves files but no marker: readers refuse them."""
    uri = store.put_dir(model_dir, "models/sentiment/3")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    boto3.client("s3", endpoint_url=s3_server["endpoint"]).delete_object(
        Bucket=bucket, Key=f"{key}/{COMPLETE_MARKER}"
    )
    assert not store.exists(uri)
    with pytest.raises(NotFound, match="incomplete"):
        store.local_path(uri)


def test_folder_objects_from_other_writers_are_not_files(store, model_dir, s3_server):
    """pyarrow (Ray Train's checkpoints) puts empty "folder/" objects on S3; a download
    must make them folders, not files that block the real files under them."""
    uri = store.put_dir(model_dir, "checkpoints/job/epoch_1")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=s3_server["endpoint"])
    for folder in (f"{key}/", f"{key}/tokenizer/"):
        client.put_object(Bucket=bucket, Key=folder, Body=b"")
    local = store.local_path(uri)
    assert (local / "tokenizer" / "vocab.txt").read_text() == "a\nb\n"
    assert weights_sha256(local) == weights_sha256(model_dir)


def test_single_files_round_trip(store, model_dir):
    uri = store.put_file(model_dir / "config.json", "files/file-abc.arrow")
    assert uri.startswith("s3://")
    assert store.local_file(uri).read_text() == '{"labels": 2}'
    with pytest.raises(NotFound):
        store.local_file(uri + "-missing")
