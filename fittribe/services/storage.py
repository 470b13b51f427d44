"""Where uploaded files live: a local folder (default, served at /media/) or an S3-compatible
bucket (PHOTO_STORAGE=s3). Both take a key ("trainers/7/3f2a….webp") and bytes, and give back the
file's public address."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from flask import current_app, url_for


class Storage(Protocol):
    def save(self, key: str, data: bytes, content_type: str) -> str:
        """Store `data` under `key`; return its public URL."""

    def delete(self, key: str) -> None:
        """Remove `key` (nothing happens when it is already gone)."""


class LocalStorage:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError("storage key outside the storage folder")
        return path

    def save(self, key: str, data: bytes, content_type: str) -> str:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half a file
        return url_for("media.file", key=key)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


class S3Storage:
    def __init__(self, bucket: str, public_url: str, endpoint_url: str | None = None):
        import boto3  # optional: only deployments that store in S3 install it (requirements-s3.txt)

        self.bucket, self.public_url = bucket, public_url.rstrip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def save(self, key: str, data: bytes, content_type: str) -> str:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                               CacheControl="public, max-age=31536000, immutable")
        return f"{self.public_url}/{key}"

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def current_storage() -> Storage:
    config = current_app.config
    if config["PHOTO_STORAGE"] == "s3":
        return S3Storage(config["S3_BUCKET"], config["S3_PUBLIC_URL"], config["S3_ENDPOINT_URL"])
    return LocalStorage(config["PHOTO_DIR"])
