"""SeaweedFS-backed storage for registry tests: one bucket, a fresh prefix per test, each removed when
the test process ends (``remove_used``, from tests/conftest.py): SeaweedFS grows a bucket's volumes as
it fills, and every run's leftovers once filled the peer until no bucket could be written.

Tests that use it carry ``@pytest.mark.seaweedfs`` (tests/peers.py starts the peer or skips)."""

from __future__ import annotations

import os
import uuid

from tests.peers import SEAWEEDFS_S3

BUCKET = "dockyard-tests"
# SeaweedFS without identities accepts any key; boto3 still wants one to sign with.
ENV = {"AWS_ENDPOINT_URL": SEAWEEDFS_S3, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "dockyard",
       "AWS_SECRET_ACCESS_KEY": "dockyard-secret"}


_USED: list[str] = []  # the prefixes this process handed out


def s3_url(label: str = "t") -> str:
    """A storage URL no other test (or earlier run) uses."""
    prefix = f"{label}-{uuid.uuid4().hex[:12]}"
    _USED.append(prefix)
    return f"s3://{BUCKET}/{prefix}"


def remove_used() -> int:
    """Delete every object under the prefixes this process handed out; how many were deleted."""
    if not _USED:
        return 0
    s3 = client()
    deleted = 0
    for prefix in _USED:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
    _USED.clear()
    return deleted


def set_env() -> None:
    """Point boto3 (in this process and in the CLI processes tests start) at the peer."""
    os.environ.update(ENV)


def client():  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=SEAWEEDFS_S3, region_name=ENV["AWS_REGION"],
                        aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"])
