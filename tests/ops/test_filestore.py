"""The filestore: JSON blobs by key in a local folder and in S3 (the moto server)."""

import json
import os

import boto3
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from apps.ops import filestore

BUCKET = "pipeportal-filestore"


def s3():
    return boto3.client("s3", region_name="us-east-1", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


@pytest.fixture
def local(tmp_path):
    with override_settings(
        PIPEPORTAL_FILESTORE_TYPE="", PIPEPORTAL_FILESTORE=None, PIPEPORTAL_FILESTORE_DIR=tmp_path
    ):
        yield tmp_path


@pytest.fixture
def bucket(aws):
    s3().create_bucket(Bucket=BUCKET)
    return BUCKET


def round_trip() -> None:
    snapshot = {"application": "hello", "resources": [{"kind": "TaskSet", "id": "ecs-svc/1", "weight": 10}]}
    filestore.save_json("livestate/demo/app-1.json", snapshot)
    assert filestore.exists("livestate/demo/app-1.json")
    assert filestore.load_json("livestate/demo/app-1.json") == snapshot
    # Saving again replaces the blob under the same key.
    filestore.save_json("livestate/demo/app-1.json", {"resources": []})
    assert filestore.load_json("livestate/demo/app-1.json") == {"resources": []}
    filestore.delete("livestate/demo/app-1.json")
    assert not filestore.exists("livestate/demo/app-1.json")
    with pytest.raises(KeyError):
        filestore.load_json("livestate/demo/app-1.json")
    assert filestore.load_json("livestate/demo/app-1.json", default=None) is None
    filestore.delete("livestate/demo/app-1.json")  # deleting what is gone is not an error


def test_it_keeps_blobs_in_a_local_folder_by_default(local):
    round_trip()
    filestore.save_json("command-outputs/c-1.json", {"output": "ok ✓"})
    path = local / "command-outputs" / "c-1.json"
    assert json.loads(path.read_text()) == {"output": "ok ✓"}
    # Written to a temporary file and renamed: nothing half-written is ever left behind.
    assert [p.name for p in path.parent.iterdir()] == ["c-1.json"]


@pytest.mark.parametrize(
    "key", ["../escape.json", "/absolute.json", "a//b.json", "a/../b.json", "", "a/b/", " x"]
)
def test_it_refuses_keys_that_are_not_plain_relative_paths(local, key):
    with pytest.raises(ValueError, match="invalid filestore key"):
        filestore.save_json(key, {})
    assert list(local.iterdir()) == []


def test_it_says_when_a_blob_is_not_json(local):
    (local / "broken.json").write_text("{not json")
    with pytest.raises(filestore.FilestoreError, match=r"broken\.json does not hold JSON"):
        filestore.load_json("broken.json")


def test_it_keeps_blobs_in_s3_when_configured(bucket):
    settings = {
        "PIPEPORTAL_FILESTORE_TYPE": "S3",
        "PIPEPORTAL_FILESTORE_BUCKET": bucket,
        "PIPEPORTAL_FILESTORE_REGION": "us-east-1",
        "PIPEPORTAL_FILESTORE_PREFIX": "control-plane",
    }
    with override_settings(**settings):
        round_trip()
        filestore.save_json("command-outputs/c-2.json", {"output": "done"})
    stored = s3().get_object(Bucket=bucket, Key="control-plane/command-outputs/c-2.json")
    assert json.loads(stored["Body"].read()) == {"output": "done"}
    assert stored["ContentType"] == "application/json"


def test_it_reads_the_control_plane_configs_filestore_block(bucket, tmp_path):
    # PipeCD's S3 block, with a credentials file as a team moving from PipeCD may have it.
    credentials = tmp_path / "credentials"
    credentials.write_text("[filestore]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    block = {
        "type": "S3",
        "config": {
            "bucket": bucket,
            "region": "us-east-1",
            "profile": "filestore",
            "credentialsFile": str(credentials),
        },
    }
    with override_settings(PIPEPORTAL_FILESTORE_TYPE="", PIPEPORTAL_FILESTORE=block):
        filestore.save_json("livestate/x.json", {"from": "config"})
        assert filestore.load_json("livestate/x.json") == {"from": "config"}
    assert s3().head_object(Bucket=bucket, Key="livestate/x.json")["ContentLength"] > 0


def test_it_reports_a_missing_bucket_clearly(aws):
    missing = override_settings(PIPEPORTAL_FILESTORE_TYPE="S3", PIPEPORTAL_FILESTORE_BUCKET="no-such-bucket")
    with (
        missing,
        pytest.raises(filestore.FilestoreError, match=r"cannot save livestate/y\.json: .*NoSuchBucket"),
    ):
        filestore.save_json("livestate/y.json", {})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"PIPEPORTAL_FILESTORE_TYPE": "S3", "PIPEPORTAL_FILESTORE_BUCKET": ""}, "needs a bucket"),
        ({"PIPEPORTAL_FILESTORE_TYPE": "FTP"}, "expected LOCAL, S3 or MINIO"),
        (
            {
                "PIPEPORTAL_FILESTORE_TYPE": "",
                "PIPEPORTAL_FILESTORE": {"type": "GCS", "config": {"bucket": "b"}},
            },
            "filestore.type: 'GCS' is not supported",
        ),
        (
            {
                "PIPEPORTAL_FILESTORE_TYPE": "",
                "PIPEPORTAL_FILESTORE": {
                    "type": "S3",
                    "config": {"bucket": "b", "roleARN": "arn:aws:iam::1:role/x"},
                },
            },
            "roleARN/tokenFile",
        ),
        (
            {
                "PIPEPORTAL_FILESTORE_TYPE": "",
                "PIPEPORTAL_FILESTORE": {
                    "type": "S3",
                    "config": {"bucket": "b", "credentialsFile": "/nonexistent"},
                },
            },
            "credentialsFile: cannot read /nonexistent",
        ),
    ],
)
def test_it_names_the_setting_that_is_wrong(overrides, message):
    with override_settings(**overrides), pytest.raises(ImproperlyConfigured, match=message):
        filestore.save_json("k.json", {})
