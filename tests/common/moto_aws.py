"""moto's S3 server with two checks AWS S3 makes and moto 5.1 does not.

Started by tests/common/harness.rs in place of `moto_server` (same arguments):

1. A body whose `x-amz-checksum-*` (or `Content-MD5`) does not match the bytes that
   arrived is refused with 400 BadDigest, as S3 does; moto stores the claimed value
   without looking at the bytes.
2. A call whose `x-amz-expected-bucket-owner` is not the bucket's account is refused
   with 403 AccessDenied, as S3 does; moto ignores the header.

Everything else is moto as it is: these checks only refuse, they never answer in
moto's place, so a test passing here still passes against moto's own behaviour.
"""

import base64
import functools
import hashlib
import sys
import zlib

from moto.s3.exceptions import S3ClientError
from moto.s3.responses import S3Response
from moto.server import main

_CRC64NVME_POLY = 0x9A6C9329AC4BC9B5  # reflected
_CRC64_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ _CRC64NVME_POLY if _c & 1 else _c >> 1
    _CRC64_TABLE.append(_c)


def _crc64nvme(data: bytes) -> bytes:
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc = _CRC64_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return (crc ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def _crc32c(data: bytes) -> bytes:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return (crc ^ 0xFFFFFFFF).to_bytes(4, "big")


_DIGESTS = {
    "sha256": lambda d: hashlib.sha256(d).digest(),
    "sha1": lambda d: hashlib.sha1(d).digest(),
    "crc32": lambda d: zlib.crc32(d).to_bytes(4, "big"),
    "crc32c": _crc32c,
    "crc64nvme": _crc64nvme,
}


class _Refused(S3ClientError):
    def __init__(self, status: int, code: str, message: str):
        self.code = status
        super().__init__(code, message)


def _aws_checks(response: S3Response, request) -> None:
    owner = request.headers.get("x-amz-expected-bucket-owner")
    if owner is not None and owner != response.current_account:
        raise _Refused(403, "AccessDenied", "Access Denied")
    if request.method != "PUT" or "x-amz-copy-source" in request.headers:
        return
    body = response.body if isinstance(response.body, bytes) else (response.body or b"")
    if isinstance(body, str):
        body = body.encode()
    for name, digest in _DIGESTS.items():
        claimed = request.headers.get(f"x-amz-checksum-{name}")
        if claimed is not None and base64.b64encode(digest(body)).decode() != claimed:
            raise _Refused(
                400,
                "BadDigest",
                f"The {name.upper()} you specified did not match the calculated checksum.",
            )
    md5 = request.headers.get("Content-MD5")
    if md5 is not None and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
        raise _Refused(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")


def _checked(name: str):
    original = getattr(S3Response, name)

    # moto's router calls the handler by its name: the wrapper keeps it.
    @functools.wraps(original)
    def handler(self, request, full_url, headers):
        self.setup_class(request, full_url, headers)
        try:
            _aws_checks(self, request)
        except S3ClientError as refused:
            return self._send_response((refused.code, {}, refused.description))
        return original(self, request, full_url, headers)

    setattr(S3Response, name, handler)


_checked("bucket_response")
_checked("key_response")

if __name__ == "__main__":
    main(sys.argv[1:])
