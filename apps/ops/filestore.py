"""The filestore: JSON blobs by key (live-state snapshots, command outputs) in S3 or a local folder.

Which store, in this order:
1. the PIPEPORTAL_FILESTORE_* settings, when PIPEPORTAL_FILESTORE_TYPE is set (LOCAL, S3 or MINIO);
2. the control-plane config's `filestore` block (settings.PIPEPORTAL_FILESTORE: S3 or MINIO, PipeCD's keys);
3. a local folder, PIPEPORTAL_FILESTORE_DIR (default: `filestore/` under PIPEPORTAL_VAR_DIR).

S3 goes through django-storages (boto3's credential chain: the ECS task role, AWS_PROFILE, or the
config's profile / credentialsFile; AWS_ENDPOINT_URL is honoured, which is how tests reach moto).
"""

import configparser
import json
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage
from django.core.signals import setting_changed
from django.dispatch import receiver

_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=@+-]*(/[A-Za-z0-9_][A-Za-z0-9_.=@+-]*)*$")
_MISSING = object()


class FilestoreError(Exception):
    """The filestore could not do what was asked; the message is safe to log."""


def check_key(key: str) -> str:
    """Keys are relative paths of plain segments: `livestate/demo/<app-id>.json`."""
    if not isinstance(key, str) or len(key) > 900 or not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(
            f"invalid filestore key {key!r}: use segments of letters, digits, '_', '-', '.', '=', '@', '+' "
            "joined by '/', with no leading '/', no empty segment and no '..'"
        )
    return key


class AtomicFileSystemStorage(FileSystemStorage):
    """A local folder where a write replaces the file at once: a reader sees the old blob or the new one."""

    def __init__(self, location: str):
        super().__init__(location=location, allow_overwrite=True)

    def _save(self, name: str, content) -> str:
        full_path = Path(self.path(name))
        full_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=full_path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in content.chunks():
                    handle.write(chunk.encode() if isinstance(chunk, str) else chunk)
            os.chmod(tmp_path, 0o640)
            os.replace(tmp_path, full_path)
        except BaseException:
            Path(tmp_path).unlink(missing_ok=True)
            raise
        return name


def _from_config(block: Any) -> dict[str, Any]:
    """Options from the control-plane config's filestore block ({type, config: {...}}, PipeCD's keys)."""
    if hasattr(block, "model_dump"):
        block = block.model_dump(by_alias=True)
    block = dict(block or {})
    kind = str(block.get("type") or "").upper()
    config = dict(block.get("config") or {})
    if kind == "S3":
        if config.get("roleARN") or config.get("tokenFile"):
            raise ImproperlyConfigured(
                "filestore.config.roleARN/tokenFile: not supported by PipePortal's filestore; set AWS_ROLE_ARN "
                "and AWS_WEB_IDENTITY_TOKEN_FILE in the environment (boto3 reads them) or use the task role"
            )
        options = {
            "type": "S3",
            "bucket": config.get("bucket"),
            "region": config.get("region"),
            "profile": config.get("profile"),
        }
        if config.get("credentialsFile"):
            options.update(_credentials_file(config["credentialsFile"], config.get("profile") or "default"))
            options["profile"] = None
        return options
    if kind == "MINIO":
        options = {"type": "MINIO", "bucket": config.get("bucket"), "endpoint_url": config.get("endpoint")}
        for option, key in (("access_key", "accessKeyFile"), ("secret_key", "secretKeyFile")):
            if config.get(key):
                options[option] = _read_secret_file(config[key], f"filestore.config.{key}")
        return options
    raise ImproperlyConfigured(
        f"filestore.type: {block.get('type')!r} is not supported by PipePortal (use S3 or MINIO, or leave "
        "the filestore out for a local folder)"
    )


def _read_secret_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(f"{what}: cannot read {path} ({exc.strerror})") from exc


def _credentials_file(path: str, profile: str) -> dict[str, str]:
    parser = configparser.ConfigParser()
    try:
        with open(path) as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"filestore.config.credentialsFile: cannot read {path} ({exc.strerror})"
        ) from exc
    if not parser.has_option(profile, "aws_access_key_id"):
        raise ImproperlyConfigured(
            f"filestore.config.credentialsFile: {path} has no aws_access_key_id for profile {profile!r}"
        )
    section = parser[profile]
    options = {
        "access_key": section["aws_access_key_id"],
        "secret_key": section.get("aws_secret_access_key", ""),
    }
    if section.get("aws_session_token"):
        options["session_token"] = section["aws_session_token"]
    return options


def filestore_options() -> dict[str, Any]:
    kind = (settings.PIPEPORTAL_FILESTORE_TYPE or "").upper()
    config_block = getattr(settings, "PIPEPORTAL_FILESTORE", None)
    if not kind and config_block:
        options = _from_config(config_block)
    elif kind in ("S3", "MINIO"):
        options = {
            "type": kind,
            "bucket": settings.PIPEPORTAL_FILESTORE_BUCKET,
            "region": settings.PIPEPORTAL_FILESTORE_REGION,
            "endpoint_url": settings.PIPEPORTAL_FILESTORE_ENDPOINT_URL,
        }
    elif kind in ("", "LOCAL"):
        return {"type": "LOCAL", "directory": str(settings.PIPEPORTAL_FILESTORE_DIR)}
    else:
        raise ImproperlyConfigured(
            f"PIPEPORTAL_FILESTORE_TYPE={settings.PIPEPORTAL_FILESTORE_TYPE!r}: expected LOCAL, S3 or MINIO"
        )
    if not options.get("bucket"):
        raise ImproperlyConfigured(
            f"the {options['type']} filestore needs a bucket (PIPEPORTAL_FILESTORE_BUCKET)"
        )
    options.setdefault("prefix", settings.PIPEPORTAL_FILESTORE_PREFIX)
    if not options.get("endpoint_url"):
        options["endpoint_url"] = settings.PIPEPORTAL_FILESTORE_ENDPOINT_URL or None
    return options


@lru_cache(maxsize=1)
def get_filestore() -> Storage:
    options = filestore_options()
    if options["type"] == "LOCAL":
        return AtomicFileSystemStorage(options["directory"])
    from storages.backends.s3 import S3Storage

    kwargs = {
        "bucket_name": options["bucket"],
        "region_name": options.get("region") or None,
        "endpoint_url": options.get("endpoint_url") or None,
        "location": (options.get("prefix") or "").strip("/"),
        "file_overwrite": True,
        "default_acl": None,
        "querystring_auth": False,
        "object_parameters": {"ContentType": "application/json"},
    }
    if options.get("profile"):
        kwargs["session_profile"] = options["profile"]
    if options.get("access_key"):
        kwargs["access_key"] = options["access_key"]
        kwargs["secret_key"] = options.get("secret_key", "")
        if options.get("session_token"):
            kwargs["security_token"] = options["session_token"]
    return S3Storage(**kwargs)


@receiver(setting_changed)
def _forget_filestore(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("PIPEPORTAL_FILESTORE"):
        get_filestore.cache_clear()


def save_json(key: str, data: Any) -> None:
    """Store `data` as JSON under `key`, replacing what was there."""
    check_key(key)
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    storage = get_filestore()
    try:
        stored = storage.save(key, ContentFile(body))
    except OSError:
        raise
    except Exception as exc:  # botocore's errors, without importing botocore here
        raise FilestoreError(f"filestore: cannot save {key}: {type(exc).__name__}: {exc}") from exc
    if stored != key:
        raise FilestoreError(f"filestore: {key} was stored as {stored}; the store must allow overwrites")


def load_json(key: str, default: Any = _MISSING) -> Any:
    """The JSON stored under `key`; `default` (or KeyError without one) when there is none."""
    check_key(key)
    storage = get_filestore()
    try:
        with storage.open(key, "rb") as handle:
            body = handle.read()
    except FileNotFoundError:
        if default is _MISSING:
            raise KeyError(key) from None
        return default
    except OSError:
        raise
    except Exception as exc:
        if _is_not_found(exc):
            if default is _MISSING:
                raise KeyError(key) from None
            return default
        raise FilestoreError(f"filestore: cannot read {key}: {type(exc).__name__}: {exc}") from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise FilestoreError(f"filestore: {key} does not hold JSON ({exc})") from exc


def delete(key: str) -> None:
    """Remove the blob under `key`; a missing blob is not an error."""
    check_key(key)
    storage = get_filestore()
    try:
        storage.delete(key)
    except FileNotFoundError:
        return
    except Exception as exc:
        if _is_not_found(exc):
            return
        raise FilestoreError(f"filestore: cannot delete {key}: {type(exc).__name__}: {exc}") from exc


def exists(key: str) -> bool:
    return get_filestore().exists(check_key(key))


def _is_not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound")
