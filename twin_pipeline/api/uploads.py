"""Uploads: a multipart body streamed straight into the restricted raw area, never whole in memory, cut off as
soon as it passes the size limit, then validated as the landing sensor validates a landed file.

Each upload lives in `<data>/raw/uploads/RAW_<32 hex>/` (directory 0700, files 0600): `upload.csv` or
`upload.parquet` (the client's file name is recorded, never used as a path) and `upload.json` (what the
response said). Anything that fails leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from ..defs.landing import probe_table
from ..defs.raw import PRIVATE_DIR, PRIVATE_FILE
from ..errors import TwinInputError

FILE_ID = re.compile(r"RAW_[0-9a-f]{32}")
FIELD = "file"
MULTIPART_SLACK = 64 << 10  # room for boundaries and part headers above the file's own bytes
PARQUET_MAGIC = b"PAR1"
NAME_CHARS = 255


class UploadError(Exception):
    """A refused upload: HTTP status and a one-line problem for the client."""

    def __init__(self, status: int, problem: str):
        super().__init__(problem)
        self.status, self.problem = status, problem


def uploads_root(data: Path) -> Path:
    return data / "raw" / "uploads"


def upload_dir(data: Path, file_id: str) -> Path:
    """The folder of an upload; raises UploadError 404 for anything that is not a well-formed, existing id."""
    if not isinstance(file_id, str) or not FILE_ID.fullmatch(file_id):
        raise UploadError(422, "file_id must be RAW_ followed by 32 lower-case hex digits")
    folder = uploads_root(data) / file_id
    if not (folder / "upload.json").is_file():
        raise UploadError(404, f"no upload {file_id}")
    return folder


def discard(data: Path, file_id: str) -> None:
    """Remove an upload that could not be recorded."""
    shutil.rmtree(uploads_root(data) / file_id, ignore_errors=True)


def describe(data: Path, file_id: str) -> dict:
    """What was recorded at upload time (file name, SHA-256, columns, stored file)."""
    folder = upload_dir(data, file_id)
    record = json.loads((folder / "upload.json").read_text())
    return {**record, "path": folder / record["stored_as"]}


@dataclass
class _Part:
    name: str | None = None
    filename: str | None = None


class _Receiver:
    """python-multipart callbacks: the `file` part goes to `target`, counted against `limit`; other parts are
    ignored (their size still counts, so nothing unbounded is read)."""

    def __init__(self, target: Path, limit: int):
        self.target, self.limit = target, limit
        self.handle = None
        self.digest = hashlib.sha256()  # hashed as it arrives: no second pass over a large upload
        self.written = self.seen = 0
        self.filename: str | None = None
        self.files = 0
        self.part = _Part()
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
                "on_header_field": self._field, "on_header_value": self._value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done}

    def _begin(self):
        self.part, self._headers = _Part(), {}

    def _field(self, data, start, end):
        self._header_field += data[start:end]

    def _value(self, data, start, end):
        self._header_value += data[start:end]

    def _header_end(self):
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_done(self):
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            self.part.filename = options[b"filename"].decode("utf-8", "replace")
        if self.part.name == FIELD:
            self.files += 1
            if self.files > 1:
                raise UploadError(400, "send one file per upload (several 'file' parts)")
            self.filename = self.part.filename or ""
            fd = os.open(self.target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
            self.handle = os.fdopen(fd, "wb")

    def _data(self, data, start, end):
        self.seen += end - start
        if self.part.name == FIELD and self.handle is not None:
            self.written += end - start
            if self.written > self.limit:
                raise UploadError(413, f"file is larger than the upload limit of {self.limit:,} bytes")
            self.handle.write(data[start:end])
            self.digest.update(data[start:end])
        elif self.seen > self.limit + MULTIPART_SLACK:
            raise UploadError(413, f"request is larger than the upload limit of {self.limit:,} bytes")

    def _end(self):
        if self.part.name == FIELD and self.handle is not None:
            self.handle.close()
            self.handle = None

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _safe_name(name: str) -> str:
    """The client's file name as text to show back (control characters dropped, length capped): never a path."""
    return "".join(ch for ch in name if ch.isprintable())[:NAME_CHARS]


async def receive(request, data: Path, limit: int) -> dict:
    """Stream the request's multipart `file` into a new upload folder, validate it, return the upload record.

    Raises UploadError (and removes the folder) on any problem: not multipart, no file, too large, not a table.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UploadError(415, "send the table as multipart/form-data with a 'file' field")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise UploadError(413, f"request of {int(declared):,} bytes is larger than the upload limit of {limit:,} bytes")
    file_id = f"RAW_{secrets.token_hex(16)}"
    folder = uploads_root(data) / file_id
    for directory in (folder.parent.parent, folder.parent, folder):
        directory.mkdir(mode=PRIVATE_DIR, exist_ok=True, parents=True)
        os.chmod(directory, PRIVATE_DIR)
    receiver = _Receiver(folder / "upload.part", limit)
    try:
        parser = MultipartParser(boundary, receiver.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        receiver.close()
        if receiver.files == 0:
            raise UploadError(400, "no 'file' field in the multipart body")
        return await run_in_threadpool(_keep, folder, file_id, _safe_name(receiver.filename or ""),
                                       receiver.written, receiver.digest.hexdigest())
    except UploadError:
        receiver.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except Exception as error:  # a malformed multipart body, a disk error: refused, nothing kept
        receiver.close()
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(error, OSError):
            raise
        raise UploadError(400, f"malformed multipart body ({type(error).__name__}: {error})") from None


def _keep(folder: Path, file_id: str, filename: str, size: int, sha256: str) -> dict:
    """Name the received bytes by their format, validate them as a landed table would be, record the upload
    (in a worker thread: probing a large file must not stall the other requests)."""
    part = folder / "upload.part"
    with open(part, "rb") as handle:
        magic = handle.read(len(PARQUET_MAGIC))
    stored = folder / ("upload.parquet" if magic == PARQUET_MAGIC else "upload.csv")
    os.replace(part, stored)
    shown = filename or "the upload"
    if size == 0:
        raise UploadError(400, f"{shown}: is empty (0 bytes)")
    try:
        columns = probe_table(stored)
    except TwinInputError as error:
        raise UploadError(400, f"{shown}: {error.problem}") from None
    record = {"file_id": file_id, "filename": filename, "stored_as": stored.name, "bytes": size,
              "sha256": sha256, "detected_columns": columns,
              "uploaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    meta = folder / "upload.json"
    fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    return record
