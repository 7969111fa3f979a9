"""Hostile image files that pass every size and pixel limit but cost a decoder a lot: made in-process.

``scan_bomb_jpeg``: the red team's progressive JPEG (issue 21): a plain grey picture whose last scan
(a few dozen bytes) is repeated ``repeats`` times; libjpeg only warns about the repeats and makes a
pass over the whole image for each one.
"""

from __future__ import annotations

import io

from PIL import Image

_SOS, _EOI = b"\xff\xda", b"\xff\xd9"


def scan_bomb_jpeg(repeats: int, side: int = 6000) -> bytes:
    """A ``side`` x ``side`` progressive JPEG with its last scan repeated ``repeats`` more times."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(buffer, "JPEG", progressive=True, quality=50)
    data = buffer.getvalue()
    last_scan = data.rindex(_SOS)
    end = data.rindex(_EOI)
    return data[:end] + data[last_scan:end] * repeats + data[end:]


def jpeg_scan_count(data: bytes) -> int:
    """Scan headers in a JPEG (an upper bound: metadata may hold bytes that look like one)."""
    return data.count(_SOS)
