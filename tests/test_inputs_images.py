"""Hostile and unusual images through prepare_image: every file is built in-process with PIL."""

from __future__ import annotations

import io
import pickle
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from vqa_demo.inputs import CATEGORIES, InputError, PreparedImage, prepare_image


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise(width: int = 64, height: int = 48, channels: int = 3, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze())


def png_declaring(width: int, height: int, *, fix_crc: bool = True) -> bytes:
    """A tiny PNG whose IHDR claims ``width x height`` without allocating that many pixels."""
    data = bytearray(encode(Image.new("L", (8, 8))))
    struct.pack_into(">II", data, 16, width, height)  # signature 8 + length 4 + b"IHDR" 4
    if fix_crc:
        struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (12, 10), colour) for colour in ("red", "green", "blue")]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=40, loop=0)


def jpeg_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.new("RGB", (40, 20), "white"), "JPEG", exif=exif)


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'

# (id, source factory, keyword limits, expected category)
REJECTED = [
    ("1x1_png", lambda: encode(Image.new("RGB", (1, 1))), {}, "image_too_small"),
    ("1x500_png", lambda: encode(Image.new("L", (1, 500))), {}, "image_too_small"),
    ("20000x10_png", lambda: encode(Image.new("L", (20000, 10))), {}, "image_aspect"),
    ("10x300_png", lambda: encode(Image.new("L", (10, 300))), {}, "image_aspect"),
    ("header_100000x100000", lambda: png_declaring(100_000, 100_000), {}, "image_too_large"),
    ("header_9000x9000", lambda: png_declaring(9000, 9000), {}, "image_too_large"),
    # Above Pillow's own warning threshold but below our raised limit: the warning must become an error.
    (
        "header_pillow_warning",
        lambda: png_declaring(12_000, 10_000),
        {"max_pixels": 200_000_000},
        "image_too_large",
    ),
    ("ihdr_bad_crc", lambda: png_declaring(16, 16, fix_crc=False), {}, "image_unreadable"),
    ("png_cut_in_half", lambda: (d := encode(noise()))[: len(d) // 2], {}, "image_truncated"),
    ("jpeg_cut_in_half", lambda: (d := encode(noise(), "JPEG"))[: len(d) // 2], {}, "image_truncated"),
    ("webp_cut_in_half", lambda: (d := encode(noise(), "WEBP"))[: len(d) // 2], {}, "image_truncated"),
    ("random_bytes", lambda: np.random.default_rng(1).bytes(4096), {}, "image_unreadable"),
    ("png_signature_then_garbage", lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, {}, "image_unreadable"),
    ("tga_not_allowed", lambda: encode(noise(), "TGA"), {}, "image_unreadable"),
    ("svg", lambda: SVG, {}, "image_not_raster"),
    ("svg_utf16", lambda: SVG.decode().encode("utf-16"), {}, "image_not_raster"),
    (
        "html",
        lambda: b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        {},
        "image_not_raster",
    ),
    ("html_with_bom", lambda: b"\xef\xbb\xbf  \n<html><img src=x></html>", {}, "image_not_raster"),
    ("pdf", lambda: b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n", {}, "image_not_raster"),
    (
        "postscript",
        lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
        {},
        "image_not_raster",
    ),
    ("over_max_bytes", lambda: encode(noise()), {"max_bytes": 1000}, "image_too_large"),
    ("empty_bytes", lambda: b"", {}, "image_empty"),
    ("nothing_uploaded", lambda: None, {}, "image_missing"),
    ("pil_over_max_pixels", lambda: Image.new("RGB", (100, 100)), {"max_pixels": 5000}, "image_too_large"),
    ("pil_1x40", lambda: Image.new("RGB", (40, 1)), {}, "image_too_small"),
    ("array_4d", lambda: np.zeros((2, 8, 8, 3), np.uint8), {}, "image_array_shape"),
    ("array_5_channels", lambda: np.zeros((8, 8, 5), np.uint8), {}, "image_array_shape"),
    ("array_1d", lambda: np.zeros(64, np.uint8), {}, "image_array_shape"),
    ("array_empty", lambda: np.zeros((0, 8, 3), np.uint8), {}, "image_too_small"),
    ("array_complex", lambda: np.zeros((8, 8), np.complex64), {}, "image_array_dtype"),
    ("array_strings", lambda: np.full((8, 8), "x"), {}, "image_array_dtype"),
    ("array_nan", lambda: np.full((8, 8, 3), np.nan, np.float32), {}, "image_array_values"),
    ("array_inf", lambda: np.full((8, 8), np.inf), {}, "image_array_values"),
    ("array_1x1", lambda: np.zeros((1, 1, 3), np.uint8), {}, "image_too_small"),
]


@pytest.mark.parametrize(
    ("make", "limits", "category"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED]
)
def test_rejected_images_raise_their_category(make, limits, category):
    with pytest.raises(InputError) as caught:
        prepare_image(make(), **limits)
    assert caught.value.category == category
    assert caught.value.category in CATEGORIES
    assert str(caught.value) == caught.value.message and caught.value.message.endswith(".")


@pytest.mark.parametrize(
    ("name", "content", "category"),
    [
        ("random.png", np.random.default_rng(2).bytes(2048), "image_unreadable"),
        ("drawing.png", SVG, "image_not_raster"),
        ("page.jpg", b"<html><body>hello</body></html>", "image_not_raster"),
    ],
)
def test_file_content_decides_not_extension(tmp_path, name, content, category):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        prepare_image(path)
    assert caught.value.category == category


def test_missing_path_and_directory_and_oversized_file(tmp_path):
    for missing in (tmp_path / "nope.png", str(tmp_path), "x" * 5000 + ".png", "nul\x00byte.png"):
        with pytest.raises(InputError) as caught:
            prepare_image(missing)
        assert caught.value.category == "image_not_found"
    big = tmp_path / "big.png"
    big.write_bytes(encode(noise()))
    with pytest.raises(InputError) as caught:
        prepare_image(str(big), max_bytes=100)
    assert caught.value.category == "image_too_large"


def transparent_palette() -> Image.Image:
    image = Image.new("P", (6, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.info["transparency"] = 0
    return image


def half_transparent(mode: str) -> Image.Image:
    image = Image.new("RGBA", (6, 4), (255, 0, 0, 255)).convert(mode)
    image.putpixel((0, 0), (0, 0) if mode == "LA" else (0, 0, 0, 0))
    return image


# (id, source factory, expected size, expected note fragments, expected pixel at (0, 0) or None)
ACCEPTED = [
    (
        "gif_3_frames",
        lambda: animated("GIF"),
        (12, 10),
        ["animated image: used the first frame"],
        (255, 0, 0),
    ),
    (
        "cmyk_jpeg",
        lambda: encode(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "JPEG"),
        (8, 8),
        ["CMYK"],
        (0, 255, 255),
    ),
    (
        "palette_transparency_png",
        lambda: encode(transparent_palette()),
        (6, 4),
        ["composited on white"],
        (255, 255, 255),
    ),
    (
        "palette_transparency_gif",
        lambda: encode(transparent_palette(), "GIF"),
        (6, 4),
        ["composited on white"],
        (255, 255, 255),
    ),
    ("rgba_png", lambda: encode(half_transparent("RGBA")), (6, 4), ["composited on white"], (255, 255, 255)),
    ("la_png", lambda: encode(half_transparent("LA")), (6, 4), ["composited on white"], (255, 255, 255)),
    (
        "rgb_colour_key_png",
        lambda: encode(Image.new("RGB", (5, 5)), transparency=(0, 0, 0)),
        (5, 5),
        ["on white"],
        (255, 255, 255),
    ),
    ("rgba_opaque", lambda: encode(Image.new("RGBA", (5, 5), (0, 0, 255, 255))), (5, 5), [], (0, 0, 255)),
    ("exif_orientation_6", lambda: jpeg_with_orientation(6), (20, 40), ["EXIF orientation applied"], None),
    ("exif_orientation_8", lambda: jpeg_with_orientation(8), (20, 40), ["EXIF orientation applied"], None),
    ("exif_orientation_1", lambda: jpeg_with_orientation(1), (40, 20), [], None),
    ("exif_orientation_99", lambda: jpeg_with_orientation(99), (40, 20), [], None),
    ("bilevel_png", lambda: encode(Image.new("1", (9, 7), 1)), (9, 7), [], (255, 255, 255)),
    ("bmp", lambda: encode(noise(10, 10), "BMP"), (10, 10), [], None),
    ("tiff", lambda: encode(noise(10, 10), "TIFF"), (10, 10), [], None),
    ("exactly_min_side_and_max_aspect", lambda: encode(Image.new("L", (40, 2))), (40, 2), [], (0, 0, 0)),
    ("float_array_0_1", lambda: np.ones((6, 9, 3), np.float64), (9, 6), [], (255, 255, 255)),
    (
        "float_array_out_of_range",
        lambda: np.linspace(-1, 3, 54).reshape(6, 9),
        (9, 6),
        ["rescaled from [-1, 3]"],
        (0, 0, 0),
    ),
    ("bool_array", lambda: np.ones((5, 7), bool), (7, 5), [], (255, 255, 255)),
    ("uint8_hxw", lambda: np.full((5, 7), 128, np.uint8), (7, 5), [], (128, 128, 128)),
    ("uint8_hxwx1", lambda: np.full((5, 7, 1), 7, np.uint8), (7, 5), [], (7, 7, 7)),
    (
        "rgba_array_transparent",
        lambda: np.zeros((5, 7, 4), np.uint8),
        (7, 5),
        ["composited on white"],
        (255, 255, 255),
    ),
    ("uint16_array", lambda: np.full((4, 4, 3), 65535, np.uint16), (4, 4), ["16-bit"], (255, 255, 255)),
]
if features.check("webp"):
    ACCEPTED.append(("webp_3_frames", lambda: animated("WEBP"), (12, 10), ["animated image"], (255, 0, 0)))


@pytest.mark.parametrize(
    ("make", "size", "note_parts", "pixel"), [a[1:] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED]
)
def test_accepted_images_become_rgb_with_notes(make, size, note_parts, pixel):
    prepared = prepare_image(make())
    assert isinstance(prepared, PreparedImage)
    assert prepared.image.mode == "RGB"
    assert prepared.image.size == size
    for part in note_parts:
        assert any(part in note for note in prepared.notes), (part, prepared.notes)
    if not note_parts:
        assert prepared.notes == []
    if pixel is not None:
        assert np.allclose(prepared.image.getpixel((0, 0)), pixel, atol=3)


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    ramp = np.array([[0, 257, 32768, 65535]], np.uint16).repeat(2, axis=0)
    source = Image.fromarray(ramp)
    assert source.mode == "I;16"
    prepared = prepare_image(encode(source))
    assert "16-bit greyscale converted to 8 bit" in prepared.notes
    assert np.asarray(prepared.image)[0, :, 0].tolist() == [0, 1, 128, 255]


def test_32_bit_integer_greyscale_in_16_bit_range_is_scaled():
    source = Image.fromarray(np.array([[0, 65535], [32768, 65535]], np.int32))
    assert source.mode == "I"
    prepared = prepare_image(source)
    assert np.asarray(prepared.image)[:, 0, 0].tolist() == [0, 128]


@pytest.mark.parametrize("kind", ["bytes", "str_path", "path", "pil"])
def test_every_source_kind_gives_the_same_rgb_pixels(tmp_path, kind):
    original = noise(16, 12)
    data = encode(original)
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    source = {"bytes": data, "str_path": str(path), "path": path, "pil": original}[kind]
    prepared = prepare_image(source)
    assert prepared.image.mode == "RGB" and prepared.image.size == (16, 12)
    assert np.array_equal(np.asarray(prepared.image), np.asarray(original))


def test_caller_image_is_not_modified():
    original = half_transparent("RGBA")
    before = original.tobytes()
    prepared = prepare_image(original)
    assert original.mode == "RGBA" and original.tobytes() == before
    assert prepared.image.getpixel((0, 0)) == (255, 255, 255)
    rgb = Image.new("RGB", (4, 4))
    assert prepare_image(rgb).image is not rgb


def test_global_pillow_and_warning_state_untouched():
    filters_before = list(warnings.filters)
    max_pixels_before = Image.MAX_IMAGE_PIXELS
    for source in (png_declaring(12_000, 10_000), png_declaring(100_000, 100_000)):
        with pytest.raises(InputError):
            prepare_image(source, max_pixels=10**12)
    with pytest.raises(InputError):
        prepare_image(encode(noise())[:300])
    assert warnings.filters == filters_before
    assert max_pixels_before == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_input_error_survives_pickling():
    error = pickle.loads(pickle.dumps(InputError("image_aspect", "Crop it.")))
    assert (error.category, error.message) == ("image_aspect", "Crop it.")


def test_wrong_python_type_is_a_caller_bug():
    with pytest.raises(TypeError):
        prepare_image(12345)
