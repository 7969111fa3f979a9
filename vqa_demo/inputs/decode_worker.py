"""Decoding an uploaded image under a wall-clock budget, in a worker process that can be abandoned.

The checks of :func:`~vqa_demo.inputs.image.open_checked` bound what an image may declare, but not
every way a decoder can be made slow; a thread cannot be stopped, so the one decode of an upload
runs in a separate process (started once, then reused) and the process is killed when it takes
longer than the budget. The caller then gets ``image_too_slow`` and the next decode starts a fresh
worker. One decode at a time: the app's model slot is one at a time too.

Protocol on the worker's pipes: the parent writes one JSON line (byte count and limits) and the
file's bytes; the worker answers one JSON line (``{"size": [w, h], "notes": [...]}`` or
``{"category": ..., "message": ...}``) followed, on success, by ``w * h * 3`` bytes of RGB pixels.

Run as ``python -m vqa_demo.inputs.decode_worker`` by :class:`DecodeWorker` only.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from PIL import Image

from vqa_demo.inputs.errors import InputError
from vqa_demo.inputs.image import PreparedImage, prepare_image
from vqa_demo.libc import libc_function

# A 36 MP PNG decodes in about 1 s on one idle core, but took over 10 s on a 2-core machine at load 17.
DECODE_SECONDS = 30.0
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class DecodeWorker:
    """One worker process for :func:`prepare_image`, started on first use and replaced when killed."""

    def __init__(self, seconds: float = DECODE_SECONDS):
        self.seconds = seconds
        self.decodes = 0  # requests sent to a worker, for tests and benchmarks
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def prepare(self, data: bytes, **limits) -> PreparedImage:
        """:func:`prepare_image` of the encoded ``data`` with ``limits``, within ``self.seconds``.

        Raises :class:`InputError` as :func:`prepare_image` does, and ``image_too_slow`` past the budget.
        """
        with self._lock:
            process = self._running()
            self.decodes += 1
            reply: dict = {}
            reader = threading.Thread(target=_exchange, args=(process, data, limits, reply), daemon=True)
            reader.start()
            reader.join(self.seconds)
            timed_out = reader.is_alive()
            if timed_out or "error" in reply:
                self.stop()  # also unblocks the reader: its pipes close
                reader.join()
                self._running()  # the next upload finds a worker started
        if timed_out:
            raise InputError(
                "image_too_slow",
                f"Decoding the image took longer than {self.seconds:g} s: re-save it as a baseline JPEG or PNG.",
            )
        if "result" in reply:
            return reply["result"]
        if "input_error" in reply:
            raise InputError(*reply["input_error"])
        raise InputError(
            "image_unreadable", "The image could not be decoded: re-save it as PNG or JPEG and try again."
        )

    def _running(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            env = dict(
                os.environ, PYTHONPATH=os.pathsep.join([_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")])
            )
            self._process = subprocess.Popen(
                [sys.executable, "-m", "vqa_demo.inputs.decode_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        return self._process

    def stop(self) -> None:
        """Kill the worker (if any); the next :meth:`prepare` starts a new one."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def _exchange(process: subprocess.Popen, data: bytes, limits: dict, reply: dict) -> None:
    """One request and its answer on ``process``'s pipes; fills ``reply`` (runs in a reader thread)."""
    try:
        process.stdin.write(json.dumps({"bytes": len(data), "limits": limits}).encode() + b"\n" + data)
        process.stdin.flush()
        header = json.loads(process.stdout.readline() or b"{}")
        if "category" in header:
            reply["input_error"] = (header["category"], header["message"])
            return
        width, height = header["size"]
        pixels = _read_exactly(process.stdout, width * height * 3)
        reply["result"] = PreparedImage(Image.frombytes("RGB", (width, height), pixels), header["notes"])
    except Exception as error:  # a dead or killed worker: broken pipe, short read, bad JSON
        reply["error"] = repr(error)


def _read_exactly(stream: IO[bytes], count: int) -> bytearray:
    buffer = bytearray(count)
    view, done = memoryview(buffer), 0
    while done < count:
        got = stream.readinto(view[done:])
        if not got:
            raise EOFError(f"the decode worker stopped after {done} of {count} bytes")
        done += got
    return buffer


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker's loop: one request at a time until the parent closes the pipe."""
    trim = libc_function("malloc_trim", [ctypes.c_size_t])
    while line := stdin.readline():
        request = json.loads(line)
        data = _read_exactly(stdin, request["bytes"])
        try:
            prepared = prepare_image(bytes(data), **request["limits"])
        except InputError as error:
            stdout.write(json.dumps({"category": error.category, "message": error.message}).encode() + b"\n")
        else:
            image = prepared.image
            stdout.write(json.dumps({"size": list(image.size), "notes": prepared.notes}).encode() + b"\n")
            stdout.write(image.tobytes())
        stdout.flush()
        del data, request
        prepared = image = None
        if trim is not None:  # the worker idles between uploads: give a big image's pages back
            trim(0)


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
