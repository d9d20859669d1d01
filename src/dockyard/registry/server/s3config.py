"""Where an S3 storage URL and its settings come from: flags, a TOML file, or the AWS variables."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from dockyard.errors import InvalidArgument
from dockyard.record import record, replace

_KEYS = {"endpoint", "region", "access_key", "secret_key", "redirect", "redirect_ttl", "part_size"}


@record(frozen=True)
class S3Settings:
    """One bucket and prefix, and how to reach it. ``None`` fields fall back to botocore's defaults."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    redirect: bool = False  # blob GETs answer 307 to a pre-signed URL of the object
    redirect_ttl: int = 1200
    part_size: int = 16 << 20  # upload bytes are stored in objects of about this size


def is_s3_url(storage: str | os.PathLike[str]) -> bool:
    return str(storage).startswith("s3://")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET/PREFIX`` -> (bucket, prefix without slashes at either end)."""
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    # S3 bucket names: 3..63 characters of lower-case letters, digits, dots and hyphens.
    if not 3 <= len(bucket) <= 63 or not all(c.islower() or c.isdigit() or c in ".-" for c in bucket) \
            or not bucket[0].isalnum() or not bucket[-1].isalnum():
        raise InvalidArgument(f"--storage {url!r}: bucket name must be 3-63 characters of a-z, 0-9, '.', '-'")
    return bucket, prefix.strip("/")


def load_config(path: str) -> dict[str, object]:
    """The ``[s3]`` table (or the top level) of a TOML file, keys checked, with the file named on errors."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise InvalidArgument(f"--s3-config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"--s3-config {path}: {exc}") from exc
    table = data.get("s3", data)
    if not isinstance(table, dict):
        raise InvalidArgument(f"--s3-config {path}: [s3] must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise InvalidArgument(f"--s3-config {path}: unknown key {unknown[0]!r} "
                              f"(known: {', '.join(sorted(_KEYS))})")
    for key, value in table.items():
        want: type | tuple[type, ...] = bool if key == "redirect" else int if key in (
            "redirect_ttl", "part_size") else str
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise InvalidArgument(f"--s3-config {path}: {key} must be a {getattr(want, '__name__', want)}")
    return dict(table)


def resolve(url: str, config_file: str | None = None, **flags: object) -> S3Settings:
    """Settings for ``url``: a flag wins over the config file, which wins over the AWS_* variables."""
    bucket, prefix = parse_s3_url(url)
    settings = S3Settings(bucket, prefix, endpoint=os.environ.get("AWS_ENDPOINT_URL_S3")
                          or os.environ.get("AWS_ENDPOINT_URL"),
                          region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                          access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
                          secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    if config_file:
        settings = replace(settings, **load_config(config_file))
    given = {k: v for k, v in flags.items() if v is not None and k in _KEYS}
    settings = replace(settings, **given)
    if settings.part_size < 5 << 20:
        raise InvalidArgument("S3 part_size must be at least 5 MiB (S3's smallest multipart part)")
    return settings
