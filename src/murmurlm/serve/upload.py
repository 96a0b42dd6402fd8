"""Taking an uploaded file out of a request body held in memory, without touching the disk.

The service reads the body itself (bounded by its size limit) instead of letting the web framework
spool multipart uploads into the system's temporary folder; this module parses what it read.
Two request forms are accepted: ``multipart/form-data`` with a file field (what browsers and
``curl -F file=@x.wav`` send), and a raw body (``Content-Type: audio/wav``, ``audio/flac`` or
``application/octet-stream``, what ``curl --data-binary @x.wav`` sends).

Examples
--------
>>> body = (b'--XyZ\\r\\nContent-Disposition: form-data; name="file"; filename="../../a.wav"\\r\\n'
...         b'Content-Type: audio/wav\\r\\n\\r\\nRIFF....\\r\\n--XyZ--\\r\\n')
>>> up = parse_upload("multipart/form-data; boundary=XyZ", body)
>>> up.filename, up.data
('a.wav', b'RIFF....')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from python_multipart.multipart import MultipartParser, parse_options_header

from murmurlm.errors import MurmurlmError

RAW_TYPES = ("audio/", "application/octet-stream")
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]")


class UploadError(MurmurlmError, ValueError):
    """The request does not carry a usable file (HTTP 400 or 415)."""

    def __init__(self, message: str, status: int = 400, reason: str = "bad_request"):
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def safe_filename(name: str | None, default: str = "upload") -> str:
    """A display name for an uploaded file: the last path component, odd characters replaced,
    at most 100 characters. It is echoed in responses only, never used to open a file.

    >>> safe_filename("..\\\\..\\\\windows/system32/../x<script>.wav")
    'x_script_.wav'
    >>> safe_filename("../../")
    'upload'
    """
    if not name:
        return default
    base = name.replace("\\", "/").rstrip("/").split("/")[-1]
    base = _UNSAFE.sub("_", base).strip(" .")[:100]
    return base or default


def _file_parts(parts: list[dict], field: str | None = None) -> list[tuple[str, Upload]]:
    """(field name, upload) of every file part (or part named ``field``) of a parsed form."""
    files = []
    for part in parts:
        disposition = part["headers"].get("content-disposition")
        if not disposition:
            continue
        _, options = parse_options_header(disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options or (field is not None and name == field):
            filename = options.get(b"filename", b"").decode("utf-8", "replace")
            files.append((name, Upload(safe_filename(filename), part["data"])))
    return files


def parse_site_uploads(content_type: str | None, body: bytes, sites: tuple[str, ...]) -> list[tuple[str, Upload]]:
    """One patient's recordings: a multipart form whose file fields are named by their site (``AV``,
    ``PV``, ``TV``, ``MV``, ``Phc``; a site may repeat). Returns (site, upload) in form order."""
    mime = parse_options_header(content_type or "")[0].decode("latin-1").lower()
    if mime != "multipart/form-data":
        raise UploadError("send the patient's recordings as multipart/form-data, one file field per site "
                          f"({', '.join(sites)})", 415, "unsupported_media_type")
    files = _file_parts(_multipart_parts(content_type, body))
    if not files:
        raise UploadError(f"the form has no file; put each recording in a field named by its site ({', '.join(sites)})",
                          400, "no_file")
    unknown = [f"{name or '(unnamed)'} ({up.filename})" for name, up in files if name not in sites]
    if unknown:
        raise UploadError(f"unknown site field(s): {', '.join(unknown)}; name each file field by its site: "
                          f"{', '.join(sites)}", 422, "invalid_parameter")
    return files


def _multipart_parts(content_type: str | None, body: bytes) -> list[dict]:
    """The parts of a multipart body (headers and data), or an UploadError."""
    _, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError("multipart body without a boundary parameter", 400, "bad_multipart")
    parts: list[dict] = []
    current: dict = {}
    header_field: list[bytes] = []
    header_value: list[bytes] = []

    def on_part_begin() -> None:
        current.clear()
        current.update(headers={}, data=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.append(data[start:end])

    def on_header_end() -> None:
        current["headers"][b"".join(header_field).decode("latin-1").lower()] = b"".join(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        current["data"].append(data[start:end])

    def on_part_end() -> None:
        parts.append({"headers": dict(current["headers"]), "data": b"".join(current["data"])})

    ended: list[bool] = []

    def on_end() -> None:
        ended.append(True)

    parser = MultipartParser(boundary, {
        "on_end": on_end,
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    try:
        parser.write(body)
        parser.finalize()
    except Exception as err:  # python_multipart's MultipartParseError and friends
        raise UploadError(f"malformed multipart body: {err}", 400, "bad_multipart") from None
    if not ended:
        raise UploadError("incomplete multipart body: the closing boundary is missing (upload cut short?)",
                          400, "bad_multipart")
    return parts


def parse_upload(content_type: str | None, body: bytes, field: str = "file") -> Upload:
    """The uploaded file of a request ``body``: the ``field`` part of a multipart form (or its only
    file part), or the whole body for a raw audio upload."""
    if not content_type:
        raise UploadError("missing Content-Type; send multipart/form-data with a 'file' field, "
                          "or the audio itself as audio/wav or audio/flac", 415, "unsupported_media_type")
    mime_text = parse_options_header(content_type)[0].decode("latin-1").lower()
    if mime_text.startswith(RAW_TYPES):
        return Upload(safe_filename(None), body)
    if mime_text != "multipart/form-data":
        raise UploadError(f"unsupported Content-Type {mime_text!r}; send multipart/form-data with a "
                          "'file' field, or audio/wav, audio/flac, application/octet-stream",
                          415, "unsupported_media_type")
    parts = _multipart_parts(content_type, body)
    files = _file_parts(parts, field)
    chosen = [u for n, u in files if n == field] or [u for _, u in files]
    if not chosen:
        raise UploadError(f"the form has no file; put the recording in a field named {field!r}",
                          400, "no_file")
    if len(chosen) > 1:
        raise UploadError(f"{len(chosen)} files uploaded; send one recording per request", 400, "many_files")
    return chosen[0]
