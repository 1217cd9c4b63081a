"""S3-compatible object storage (MEDIA_STORAGE=s3): AWS S3, MinIO, Ceph RGW, Viettel/FPT cloud
object storage... Tested against moto's S3 server on 127.0.0.1, with the same tests as the local
backend.

Large files go up as a multipart upload, one part (8 MiB) in memory at a time; reads stream the
object body. Keys are the same as on the local backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from app.media.config import MediaSettings
from app.media.storage import CHUNK, StorageBackend

PART_BYTES = 8 * 1024 * 1024


class S3Storage(StorageBackend):
    name = "s3"

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        bucket: str,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        self.endpoint_url = endpoint_url or None
        self.bucket = bucket
        self.region = region
        self._credentials = (access_key_id or None, secret_access_key or None)
        self._session = get_session()
        self._config = AioConfig(
            s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}
        )

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> S3Storage:
        return cls(
            endpoint_url=settings.media_s3_endpoint_url,
            bucket=settings.media_s3_bucket,
            region=settings.media_s3_region,
            access_key_id=settings.media_s3_access_key_id,
            secret_access_key=settings.media_s3_secret_access_key,
        )

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        async with self._session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self._credentials[0],
            aws_secret_access_key=self._credentials[1],
            config=self._config,
        ) as client:
            yield client

    async def ensure_bucket(self) -> None:
        async with self._client() as s3:
            try:
                await s3.head_bucket(Bucket=self.bucket)
            except ClientError:
                await s3.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": self.region},
                )

    async def put_file(self, key: str, staged: Path) -> None:
        try:
            size = (await anyio.Path(staged).stat()).st_size
            async with self._client() as s3, await anyio.open_file(staged, "rb") as source:
                if size <= PART_BYTES:
                    await s3.put_object(Bucket=self.bucket, Key=key, Body=await source.read())
                    return
                upload = await s3.create_multipart_upload(Bucket=self.bucket, Key=key)
                upload_id, parts = upload["UploadId"], []
                try:
                    number = 1
                    while data := await source.read(PART_BYTES):
                        part = await s3.upload_part(
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=number,
                            Body=data,
                        )
                        parts.append({"ETag": part["ETag"], "PartNumber": number})
                        number += 1
                    await s3.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                    )
                except BaseException:
                    await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                    raise
        finally:
            await anyio.Path(staged).unlink(missing_ok=True)

    async def open(self, key: str, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        async with self._client() as s3:
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                raise FileNotFoundError(key) from exc
            async with response["Body"] as body:
                while chunk := await body.read(chunk_size):
                    yield chunk

    async def open_range(
        self, key: str, start: int, end: int, chunk_size: int = CHUNK
    ) -> AsyncIterator[bytes]:
        """Bytes start..end (inclusive) of an object, streamed."""
        async with self._client() as s3:
            response = await s3.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}"
            )
            async with response["Body"] as body:
                while chunk := await body.read(chunk_size):
                    yield chunk

    async def delete(self, key: str) -> None:
        async with self._client() as s3:
            await s3.delete_object(Bucket=self.bucket, Key=key)

    async def exists(self, key: str) -> bool:
        async with self._client() as s3:
            try:
                await s3.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True
