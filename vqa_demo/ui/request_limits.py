"""An ASGI middleware that bounds every request body before Gradio reads it.

Gradio applies ``max_file_size`` to each uploaded file only: the queue's JSON body (which may carry a
data URL) was read whole at any size, ``/upload`` accepted 1000 files per request, and an upload part
without a file name reached Gradio's upload handler as a plain form field and raised ``TypeError``
there (HTTP 500). Here every body is read into a spooled buffer up to its limit (HTTP 413 beyond it)
and only then handed to the app; an upload body is also parsed for its parts first: each must be a
file named ``files`` with a file name, at most ``max_files`` of them and ``max_file_bytes`` each
(HTTP 400 or 413 with a one-sentence reason otherwise).

Every other body (an event's JSON: ``/queue/join``, ``/run/...``) is held to ``max_body_bytes``, and
each value of its ``data`` list to ``max_input_bytes`` (JSON-encoded): Gradio stores each input value
in the session's state before any callback runs, even for a request the app then refuses, so these
two bound what one session can hold whatever a client sends (images travel as uploads, not inline).
Every response, refusals included, carries ``X-Content-Type-Options: nosniff``: an upload served back
is never run as HTML or script whatever its content.

Installed through ``demo.launch(app_kwargs={"middleware": [...]})`` (see ``AppConfig.launch_kwargs``).
"""

from __future__ import annotations

import json
import tempfile
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from vqa_demo.inputs.image import human_bytes

_CHUNK = 64 * 1024
_SPOOL_IN_MEMORY = 1024 * 1024
_BODY_METHODS = {b"POST", b"PUT", b"PATCH", b"DELETE"}
NOSNIFF = (b"x-content-type-options", b"nosniff")


class RefusedRequest(Exception):
    """A request the middleware answers itself; ``status`` is the HTTP code, ``str()`` the reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class UploadChecker:
    """Feeds an upload body to a multipart parser that only looks at part headers and sizes."""

    def __init__(self, content_type: bytes, max_files: int, max_file_bytes: int):
        kind, params = parse_options_header(content_type)
        if kind != b"multipart/form-data" or b"boundary" not in params:
            raise RefusedRequest(
                400, "Uploads must be multipart/form-data with a boundary: send the image as a file."
            )
        self.max_files, self.max_file_bytes = max_files, max_file_bytes
        self.files, self.part_bytes = 0, 0
        self.header_name, self.header_value, self.disposition = b"", b"", b""
        self.parser = MultipartParser(
            params[b"boundary"],
            {
                "on_part_begin": self.on_part_begin,
                "on_part_data": self.on_part_data,
                "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value,
                "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished,
            },
        )

    def write(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except MultipartParseError as exc:
            raise RefusedRequest(
                400, "The upload is not well-formed multipart data: send the file again."
            ) from exc

    def finish(self) -> None:
        if self.files == 0:
            raise RefusedRequest(400, "The upload holds no file: send the image as a part named 'files'.")

    def on_part_begin(self) -> None:
        self.part_bytes, self.disposition = 0, b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.disposition = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        if options.get(b"name") != b"files" or b"filename" not in options:
            raise RefusedRequest(
                400,
                "Every upload part must be a file (with a file name) in the field 'files': send the image as a file.",
            )
        self.files += 1
        if self.files > self.max_files:
            raise RefusedRequest(400, f"At most {self.max_files} files may be uploaded at once: send fewer.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.part_bytes += end - start
        if self.part_bytes > self.max_file_bytes:
            raise RefusedRequest(
                413, f"Each file may be at most {human_bytes(self.max_file_bytes)}: compress or downscale it."
            )


class RequestLimits:
    """ASGI middleware: ``max_body_bytes`` and ``max_input_bytes`` per event value for every request,
    the file checks for ``.../upload``, and ``nosniff`` on every response."""

    def __init__(
        self, app: Any, max_body_bytes: int, max_file_bytes: int, max_files: int, max_input_bytes: int
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_input_bytes = max_input_bytes
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        # A multipart body adds a few hundred bytes of headers per part.
        self.max_upload_bytes = max_files * (max_file_bytes + 64 * 1024)

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "http":
            send = with_nosniff(send)
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        has_body = scope.get("method", "").encode() in _BODY_METHODS or b"content-length" in headers
        if scope["type"] != "http" or not (has_body or b"transfer-encoding" in headers):
            await self.app(scope, receive, send)
            return
        upload = scope.get("method") == "POST" and scope.get("path", "").rstrip("/").endswith("/upload")
        try:
            checker = (
                UploadChecker(headers.get(b"content-type", b""), self.max_files, self.max_file_bytes)
                if upload
                else None
            )
            body, size = await self.read_body(
                receive, headers, self.max_upload_bytes if upload else self.max_body_bytes, checker
            )
            if not upload:  # FastAPI reads a body without a content type as JSON too
                self.check_inputs(body)
        except RefusedRequest as refusal:
            await self.refuse(send, refusal)
            return
        await self.app(scope, replay(body, size, receive), send)

    async def read_body(
        self, receive, headers: dict, limit: int, checker: UploadChecker | None
    ) -> tuple[IO[bytes], int]:
        """The whole body in a spooled file (rewound) and its length; raises :class:`RefusedRequest`."""
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
            raise too_large(limit)
        # Closed by replay() once the app has read it (or here, on refusal).
        body = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise RefusedRequest(400, "The client disconnected.")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                if checker is not None:
                    checker.write(chunk)
                body.write(chunk)
                if not message.get("more_body", False):
                    break
            if checker is not None:
                checker.finish()
        except RefusedRequest:
            body.close()
            raise
        body.seek(0)
        return body, size

    def check_inputs(self, body: IO[bytes]) -> None:
        """Each value of an event's ``data`` at most ``max_input_bytes`` JSON-encoded (``body`` is rewound)."""
        try:
            event = json.loads(body.read())
        except ValueError:  # not JSON after all: Gradio answers it (422)
            event = None
        finally:
            body.seek(0)
        values = event.get("data") if isinstance(event, dict) else None
        for index, value in enumerate(values if isinstance(values, list) else []):
            size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
            if size > self.max_input_bytes:
                body.close()
                raise RefusedRequest(
                    413,
                    f"Input {index + 1} of this request is {human_bytes(size)} and the limit is "
                    f"{human_bytes(self.max_input_bytes)}: shorten the text, or upload an image as a file.",
                )

    @staticmethod
    async def refuse(send, refusal: RefusedRequest) -> None:
        text = str(refusal).encode()
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(text)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": text})


def too_large(limit: int) -> RefusedRequest:
    return RefusedRequest(
        413,
        f"The request is larger than this server's limit of {human_bytes(limit)}: send a smaller file, "
        "and images as uploads rather than inline data.",
    )


def with_nosniff(send):
    """``send`` that adds ``X-Content-Type-Options: nosniff`` to the response's headers."""

    async def sending(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0].lower() != NOSNIFF[0]]
            message = {**message, "headers": [*headers, NOSNIFF]}
        await send(message)

    return sending


def replay(body: IO[bytes], size: int, receive):
    """A ``receive`` that yields the buffered body, then defers to the client's (for disconnects)."""
    sent = 0

    async def replayed() -> dict:
        nonlocal sent
        if body.closed:
            return await receive()
        chunk = body.read(_CHUNK)
        sent += len(chunk)
        if sent >= size:
            body.close()
        return {"type": "http.request", "body": chunk, "more_body": sent < size}

    return replayed
