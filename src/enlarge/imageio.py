"""Image files in and out without losing what they carry: alpha, 16-bit samples, ICC profile and EXIF.

Reading turns a file into a `DecodedImage` (float32 pixels in [0, 1] plus metadata); writing turns one back into
a file, atomically. Pillow decodes most formats, but it reduces 16-bit colour to 8 bits, so 16-bit PNGs go through
pypng and 16-bit TIFFs through tifffile. Every failure a user can cause is raised as an `InputError`,
`ImageTooLargeError` or `OutputError` whose message says what was wrong and what to do.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import png
import tifffile
from PIL import ExifTags, Image, ImageCms, ImageColor, ImageFile, UnidentifiedImageError

from enlarge.errors import ImageTooLargeError, InputError, OutputError
from enlarge.fileutil import TempFileError, atomic_file
from enlarge.formats import FORMAT_ALIASES, FORMAT_BY_EXTENSION, OUTPUT_EXTENSIONS

__all__ = [
    "DEFAULT_MAX_INPUT_PIXELS",
    "DEFAULT_QUALITY",
    "SUPPORTED_OUTPUT_EXTENSIONS",
    "DecodedImage",
    "decode_image_bytes",
    "encode_image_bytes",
    "parse_color",
    "probe_image",
    "read_image",
    "write_image",
]

DEFAULT_MAX_INPUT_PIXELS = 100_000_000
"""Largest input (width × height) decoded by default: a guard against decompression bombs."""

DEFAULT_QUALITY = 95
"""JPEG/WEBP quality used when none is given: high, since enlarged detail is what the user is after."""

_FORMAT_BY_EXTENSION = FORMAT_BY_EXTENSION
SUPPORTED_OUTPUT_EXTENSIONS = OUTPUT_EXTENSIONS
_FORMAT_ALIASES = FORMAT_ALIASES
_HOLDS_16_BIT = frozenset({"PNG", "TIFF"})
_HOLDS_ALPHA = frozenset({"PNG", "WEBP", "TIFF"})
_HOLDS_GRAY = frozenset({"PNG", "JPEG", "TIFF"})
_MAX_SIDE = {"JPEG": 65_500, "WEBP": 16_383}  # libjpeg's and libwebp's largest width or height
_JPEG_MAX_EXIF_BYTES = 65_533  # one APP1 marker segment
_JPEG_SUBSAMPLING_444 = 0  # full-resolution chroma: halving it would throw away the detail we just made
_TIFF_PILLOW_COMPRESSION = "tiff_adobe_deflate"
_TIFF_TIFFFILE_COMPRESSION = "zlib"  # needs no imagecodecs
_MIN_QUALITY, _MAX_QUALITY = 1, 100

_MAX_8_BIT = 255
_MAX_16_BIT = 65_535
_MODE_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_RGB_CHANNELS = 3

_SNIFF_BYTES = 32
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
_KNOWN_SIGNATURES = (_PNG_SIGNATURE, b"\xff\xd8\xff", b"GIF87a", b"GIF89a", *_TIFF_SIGNATURES, b"BM")
_RIFF_TYPE, _RIFF_FORM = slice(0, 4), slice(8, 12)
_PNG_BIT_DEPTH_OFFSET = 24  # signature (8) + IHDR length (4) + b"IHDR" (4) + width (4) + height (4)
_PNG_IHDR_END = 33  # signature (8) + IHDR chunk (4 + 4 + 13 + 4)
_PNG_ICC_NAME = b"ICC profile"
_PNG_ZLIB_METHOD = b"\x00"
_TIFF_WIDTH_TAG, _TIFF_LENGTH_TAG, _TIFF_BITS_PER_SAMPLE_TAG = 256, 257, 258
_ISO_BMFF_TYPE = slice(4, 8)
_ISO_BMFF_BRAND = slice(8, 12)
_HEIC_HINT = "install a plugin such as pillow-heif (pip install pillow-heif)"
_AVIF_HINT = "upgrade to a Pillow with AVIF support (pip install -U pillow)"
_HEIF_KINDS = {  # ISO-BMFF brand → (what the file is, how to read it)
    b"heic": ("a HEIC image", _HEIC_HINT),
    b"heix": ("a HEIC image", _HEIC_HINT),
    b"hevc": ("a HEIC image sequence", _HEIC_HINT),
    b"hevx": ("a HEIC image sequence", _HEIC_HINT),
    b"heim": ("a HEIC image", _HEIC_HINT),
    b"heis": ("a HEIC image", _HEIC_HINT),
    b"mif1": ("a HEIF image", _HEIC_HINT),
    b"msf1": ("a HEIF image sequence", _HEIC_HINT),
    b"avif": ("an AVIF image", _AVIF_HINT),
    b"avis": ("an AVIF image sequence", _AVIF_HINT),
}

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION_TAG = ExifTags.Base.Orientation
_UPRIGHT = 1
_EXIF_SUB_IFDS = (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo)
# Descriptive IFD0 tags only: the rest (strip offsets, sample layout, XMP, Photoshop data with its own thumbnail)
# describes the source file's encoding and would be wrong in any other file.
_EXIF_IFD0_KEPT = frozenset(
    {
        ExifTags.Base.ImageDescription,
        ExifTags.Base.Make,
        ExifTags.Base.Model,
        ExifTags.Base.Orientation,
        ExifTags.Base.XResolution,
        ExifTags.Base.YResolution,
        ExifTags.Base.ResolutionUnit,
        ExifTags.Base.Software,
        ExifTags.Base.DateTime,
        ExifTags.Base.Artist,
        ExifTags.Base.HostComputer,
        ExifTags.Base.Copyright,
    }
)
# EXIF orientation → the transform that makes the pixels upright (rows are y, columns are x).
_ORIENTATION_TRANSFORMS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),
}
_ORIENTATIONS_SWAPPING_AXES = frozenset({5, 6, 7, 8})

_ICC_COLOUR_SPACE = slice(16, 20)
_ICC_GRAY = b"GRAY"
_ICC_RGB = b"RGB "

# Pillow mode → the mode we hand over, for images without transparency; those with it get an alpha channel.
_PILLOW_TARGET_MODE = {
    "1": "L",
    "L": "L",
    "LA": "LA",
    "La": "LA",
    "P": "RGB",
    "PA": "RGBA",
    "RGB": "RGB",
    "RGBX": "RGB",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "YCbCr": "RGB",
    "HSV": "RGB",
}
_WITH_ALPHA = {"L": "LA", "RGB": "RGBA"}
_PILLOW_16_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})

_MAX_DETAIL_CHARS = 200
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")  # `<_io.BytesIO object at 0x…>`: no use to a reader
_UNREADABLE_HEADER = "its header cannot be read"
_EXIF_WARNING = "Corrupt EXIF data"  # the start of Pillow's warning for each EXIF tag it cannot read  # what Pillow's "cannot identify image file" means here

_PILLOW_SETTINGS_LOCK = threading.Lock()


@dataclass
class DecodedImage:
    """An image as float pixels plus everything its file carried, so writing it back loses nothing.

    `pixels` is H×W×C float32 in [0, 1] with C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA, straight alpha).
    `bit_depth` (8 or 16) is what the source stored; writing keeps it where the format allows.
    `exif` holds EXIF (starting with b"Exif\\0\\0") whose orientation is already applied to the pixels, so the
    tag is reset to 1 and the thumbnail dropped. `notes` are human-readable remarks about conversions; writing
    appends to them what the output format could not hold.
    """

    pixels: np.ndarray
    bit_depth: int = 8
    icc_profile: bytes | None = None
    exif: bytes | None = None
    source_format: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Reject arrays that would be written as garbage (wrong rank, channel count or dtype)."""
        if self.pixels.ndim != 3 or self.pixels.shape[2] not in _MODE_BY_CHANNELS:
            raise ValueError(f"pixels must be H×W×C with C in 1..4, got shape {self.pixels.shape}")
        if not np.issubdtype(self.pixels.dtype, np.floating):
            raise ValueError(f"pixels must be floats in [0, 1], got dtype {self.pixels.dtype}")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] in (2, 4)

    @property
    def is_gray(self) -> bool:
        return self.pixels.shape[2] in (1, 2)

    @property
    def mode(self) -> str:
        """Pillow-style mode name: "L", "LA", "RGB" or "RGBA"."""
        return _MODE_BY_CHANNELS[self.pixels.shape[2]]


# ---------------------------------------------------------------------------------------------------- reading


def probe_image(path: str | Path) -> tuple[int, int, str]:
    """Return (width, height, format) as `read_image` would give them, from the header only (no pixel decode).

    Width and height are those after the EXIF rotation `read_image` applies.
    """
    path = Path(path)
    name = str(path)
    with _open_input(path) as stream, _strict_pillow():
        head = _read_head(stream, name)
        with _open_pillow(stream, name, head) as im:
            width, height = _stored_size(im)
            _, orientation = _read_exif(im, [])
            fmt = _source_format(im)
    if orientation in _ORIENTATIONS_SWAPPING_AXES:
        width, height = height, width
    return width, height, fmt


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> DecodedImage:
    """Decode an image file completely (alpha, 16 bits, ICC, EXIF), refusing inputs above `max_pixels`."""
    path = Path(path)
    with _open_input(path) as stream:
        return _decode(stream, str(path), max_pixels)


def decode_image_bytes(
    data: bytes, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS, name: str = "upload"
) -> DecodedImage:
    """Decode an image held in memory (an upload), like `read_image`; `name` is used in error messages."""
    return _decode(io.BytesIO(data), name, max_pixels)


@contextmanager
def _open_input(path: Path) -> Iterator[BinaryIO]:
    """Open an input file for binary reading, turning every way that can fail into one clear InputError."""
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an image file; pass the path of an image file")
    try:
        stream = path.open("rb")
    except FileNotFoundError as exc:
        raise InputError(f"input file not found: {path}; check the path") from exc
    except PermissionError as exc:
        raise InputError(f"cannot read {path}: permission denied; check the file's permissions") from exc
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror or exc}; check the path") from exc
    with stream:
        yield stream


@contextmanager
def _strict_pillow(notes: list[str] | None = None) -> Iterator[None]:
    """Run Pillow with its own pixel limit lifted, truncated data always an error, and its warnings caught.

    Our limit, checked from the header first, replaces Pillow's (whose error or warning would otherwise leak
    with its own wording and threshold), and truncated files must fail rather than be padded with grey. Both are
    process-wide Pillow settings, so they change only under a lock and are restored afterwards. What Pillow warns
    about (corrupt EXIF, say, once per bad tag) becomes one note each in `notes`, never text on stderr.
    """
    with _PILLOW_SETTINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved
            if notes is not None:
                for warning in caught:
                    _add_to(notes, _warning_note(str(warning.message)))


def _warning_note(message: str) -> str:
    """One note for a decoder warning: every corrupt-EXIF warning is the same note."""
    if _EXIF_WARNING in message:
        return "EXIF metadata is partly corrupt; what could be read was kept"
    return f"decoder warning: {_detail(Exception(message))}"


def _read_head(stream: BinaryIO, name: str) -> bytes:
    """Return the first bytes (for sniffing the container), leaving the stream at its start."""
    head = stream.read(_SNIFF_BYTES)
    stream.seek(0)
    if not head:
        raise InputError(f"{name} is empty (0 bytes); pass an image file")
    return head


def _open_pillow(stream: BinaryIO, name: str, head: bytes) -> Image.Image:
    """Open the header with Pillow (no pixel decode), explaining formats that need a plugin."""
    try:
        return Image.open(stream)
    except UnidentifiedImageError as exc:
        if head.startswith(_TIFF_SIGNATURES):
            _refuse_valid_tiff(stream, name)
        if _has_known_signature(head):  # a known format Pillow could not parse: its header is cut short or broken
            raise InputError(_corrupt_message(name, exc)) from exc
        heif = _heif_kind(head)
        if heif is None:
            raise InputError(
                f"{name} is not an image in a supported format; use PNG, JPEG, WEBP, TIFF, BMP or GIF"
            ) from exc
        if _register_heif_plugin():
            stream.seek(0)
            return _open_pillow_once_more(stream, name)
        kind, hint = heif
        raise InputError(f"{name} is {kind}, which this installation cannot decode: {hint}, or convert it") from exc
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(_corrupt_message(name, exc)) from exc


def _open_pillow_once_more(stream: BinaryIO, name: str) -> Image.Image:
    """Open again after registering a plugin; a second failure is a corrupt file."""
    try:
        return Image.open(stream)
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(_corrupt_message(name, exc)) from exc


def _refuse_valid_tiff(stream: BinaryIO, name: str) -> None:
    """A TIFF that Pillow cannot open but tifffile can parse is valid, only of a kind we do not read: say so."""
    stream.seek(0)
    try:
        with tifffile.TiffFile(stream) as tif:
            page = tif.pages.first
            kind = f"{page.samplesperpixel} channel(s) of {page.dtype} samples ({page.photometric.name.lower()})"
            complete = all(o + n <= tif.filehandle.size for o, n in zip(page.dataoffsets, page.databytecounts))
    except Exception:  # tifffile cannot parse it either: it is damaged, as Pillow said
        complete = False
    stream.seek(0)
    if not complete:
        return
    raise InputError(
        f"{name} is a valid TIFF with {kind}, which is not supported; supported TIFFs hold gray or RGB, with or "
        "without alpha, in 8- or 16-bit unsigned samples (float only as one gray channel): convert it to one of those"
    )


def _has_known_signature(head: bytes) -> bool:
    """Whether the first bytes announce a format we read, so a parse failure means damage, not a foreign file."""
    return head.startswith(_KNOWN_SIGNATURES) or (head[_RIFF_TYPE] == b"RIFF" and head[_RIFF_FORM] == b"WEBP")


def _heif_kind(head: bytes) -> tuple[str, str] | None:
    """(What it is, how to read it) for a HEIC/HEIF/AVIF file, from its `ftyp` brand; None for anything else."""
    if head[_ISO_BMFF_TYPE] != b"ftyp":
        return None
    return _HEIF_KINDS.get(head[_ISO_BMFF_BRAND])


def _register_heif_plugin() -> bool:
    """Register pillow-heif's opener with Pillow if that plugin is installed; True when it was."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def _decode(stream: BinaryIO, name: str, max_pixels: int) -> DecodedImage:
    """Header → size limit → still-image check → pixels (by the decoder that keeps all bits) → metadata."""
    notes: list[str] = []
    with _strict_pillow(notes):
        head = _read_head(stream, name)
        with _open_pillow(stream, name, head) as im:
            _check_pixel_limit(im.size, name, max_pixels)
            _check_still(im, name, notes)
            exif, orientation = _read_exif(im, notes)  # from the header: Pillow drops a TIFF's tag once it loads
            icc = im.info.get("icc_profile") or None
            pixels, bit_depth, icc = _decode_upright(im, stream, head, name, icc, orientation, notes)
            fmt = _source_format(im)
    if orientation != _UPRIGHT:
        notes.append(f"turned upright as its EXIF orientation ({orientation}) asked")
    return DecodedImage(pixels, bit_depth, icc, exif, fmt, notes)


def _stored_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) as stored, before any EXIF turn (recent Pillows report a TIFF's size already turned)."""
    if im.format == "TIFF":
        return int(im.tag_v2[_TIFF_WIDTH_TAG]), int(im.tag_v2[_TIFF_LENGTH_TAG])
    return im.size



def _check_pixel_limit(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}x{height} = {width * height:,} pixels, above the input limit of {max_pixels:,}; "
            "raise the input limit only if you trust this file",
            setting="max_input_mp",
        )


def _check_still(im: Image.Image, name: str, notes: list[str]) -> None:
    """Refuse animations and multi-page files; a camera's multi-picture JPEG keeps its primary image."""
    try:
        frames = getattr(im, "n_frames", 1)
    except Exception as exc:  # counting frames parses them: a broken one is a bad file
        raise InputError(_corrupt_message(name, exc)) from exc
    if frames <= 1:
        return
    if im.format == "MPO":
        notes.append(f"multi-picture JPEG ({frames} pictures): used the primary image")
    elif im.format == "TIFF":
        raise InputError(f"{name} has {frames} pages; only single-image files are supported: save one page alone")
    else:
        raise InputError(
            f"{name} is animated ({frames} frames); only still images are supported: export one frame as PNG"
        )


def _source_format(im: Image.Image) -> str:
    """Pillow's format name, with a multi-picture JPEG reported as the JPEG it is."""
    return "JPEG" if im.format == "MPO" else str(im.format)


def _decode_upright(
    im: Image.Image, stream: BinaryIO, head: bytes, name: str, icc: bytes | None, orientation: int, notes: list[str]
) -> tuple[np.ndarray, int, bytes | None]:
    """Decode with what keeps every bit (pypng for 16-bit PNG, tifffile for deep TIFF, Pillow otherwise) and
    turn the pixels upright, except where Pillow's TIFF loader has already done so (it has since Pillow 7)."""
    if im.format == "PNG" and head[_PNG_BIT_DEPTH_OFFSET] == 16:
        return _turn_upright(_decode_png16(stream, name), orientation), 16, icc
    if im.format == "TIFF" and _tiff_bits_per_sample(im) > 8:
        deep = _decode_deep_tiff(stream, name, notes)
        if deep is not None:
            return _turn_upright(deep, orientation), 16, icc
        pixels, bit_depth, icc = _decode_with_pillow(im, name, icc, notes)
        if bit_depth == 8:
            notes.append(
                "read as 8-bit: this TIFF's compression needs the imagecodecs package to keep its 16 bits "
                "(pip install imagecodecs)"
            )
        return pixels, bit_depth, icc
    pixels, bit_depth, icc = _decode_with_pillow(im, name, icc, notes)
    if im.format != "TIFF":
        pixels = _turn_upright(pixels, orientation)
    return pixels, bit_depth, icc


def _turn_upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    if orientation == _UPRIGHT:
        return pixels
    return np.ascontiguousarray(_ORIENTATION_TRANSFORMS[orientation](pixels))


def _decode_with_pillow(
    im: Image.Image, name: str, icc: bytes | None, notes: list[str]
) -> tuple[np.ndarray, int, bytes | None]:
    """Decode with Pillow and bring any mode to L/LA/RGB/RGBA (or 16-bit L); CMYK becomes RGB."""
    try:
        im.load()
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(_corrupt_message(name, exc)) from exc
    mode = im.mode
    if mode in _PILLOW_16_BIT_MODES:
        samples = np.clip(np.asarray(im), 0, _MAX_16_BIT)
        return _to_unit_float(samples[..., np.newaxis], _MAX_16_BIT), 16, icc
    if mode == "CMYK":
        im, icc = _cmyk_to_rgb(im, icc, notes)
        mode = im.mode
    target = _PILLOW_TARGET_MODE.get(mode)
    if target is None:
        raise InputError(f"{name} has pixel format {mode}, which is not supported; convert it to RGB or grayscale")
    if im.has_transparency_data:
        target = _WITH_ALPHA.get(target, target)
    if target != mode:
        im = im.convert(target)
    samples = np.asarray(im)
    if samples.ndim == 2:
        samples = samples[..., np.newaxis]
    return _to_unit_float(samples, _MAX_8_BIT), 8, icc


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None, notes: list[str]) -> tuple[Image.Image, bytes | None]:
    """Convert CMYK to RGB: through its ICC profile to sRGB when it has a usable one, else Pillow's formula."""
    if icc is not None:
        try:
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            rgb = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            notes.append("CMYK converted to RGB; its ICC profile was unusable, so colours are approximate")
            return im.convert("RGB"), None
        notes.append("CMYK converted to RGB (sRGB) through its ICC profile")
        return rgb, srgb.tobytes()
    notes.append("CMYK converted to RGB without an ICC profile, so colours are approximate")
    return im.convert("RGB"), None


def _decode_png16(stream: BinaryIO, name: str) -> np.ndarray:
    """Decode a 16-bit PNG with pypng, all 16 bits kept; a tRNS colour key becomes an alpha channel."""
    stream.seek(0)
    try:
        width, height, rows, info = png.Reader(file=stream).read()
        planes = info["planes"]
        samples = np.empty((height, width * planes), dtype=np.uint16)
        for y, row in enumerate(rows):
            samples[y] = row
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(_corrupt_message(name, exc)) from exc
    samples = samples.reshape(height, width, planes)
    key = info.get("transparent")
    if key is not None and not info["alpha"]:
        opaque = np.any(samples != np.asarray(key, dtype=np.uint16), axis=2, keepdims=True)
        samples = np.concatenate([samples, opaque.astype(np.uint16) * _MAX_16_BIT], axis=2)
    return _to_unit_float(samples, _MAX_16_BIT)


def _tiff_bits_per_sample(im: Image.Image) -> int:
    bits = im.tag_v2.get(_TIFF_BITS_PER_SAMPLE_TAG, 8)
    return max(bits) if isinstance(bits, tuple) else int(bits)


def _decode_deep_tiff(stream: BinaryIO, name: str, notes: list[str]) -> np.ndarray | None:
    """Decode a TIFF deeper than 8 bits with tifffile, or None when its codec needs the absent imagecodecs."""
    stream.seek(0)
    try:
        with tifffile.TiffFile(stream) as tif:
            page = tif.pages.first
            decodable = page.compression in tifffile.TIFF.DECOMPRESSORS and page.predictor in tifffile.TIFF.UNPREDICTORS
            if not decodable:
                return None
            samples = page.asarray()
            axes, photometric, extras = page.axes, page.photometric, tuple(page.extrasamples)
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(_corrupt_message(name, exc)) from exc
    if "S" not in axes:
        samples, axes = samples[..., np.newaxis], axes + "S"
    if sorted(axes) != sorted("YXS"):
        raise InputError(f"{name} has a TIFF layout ({axes}) that is not supported; save it as a plain 2-D image")
    samples = samples.transpose([axes.index(axis) for axis in "YXS"])
    if photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE):
        colour_channels = 1
    elif photometric == tifffile.PHOTOMETRIC.RGB:
        colour_channels = _RGB_CHANNELS
    else:
        colour = "CMYK" if photometric == tifffile.PHOTOMETRIC.SEPARATED else photometric.name
        raise InputError(f"{name} is a 16-bit {colour} TIFF, which is not supported; convert it to 16-bit RGB or gray")
    pixels = _deep_samples_to_unit_float(samples, name, notes)
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        pixels[..., 0] = 1.0 - pixels[..., 0]
    return _tiff_alpha(pixels, colour_channels, extras, notes)


def _deep_samples_to_unit_float(samples: np.ndarray, name: str, notes: list[str]) -> np.ndarray:
    """Unsigned integers scale by their maximum; floats are taken as [0, 1] and clipped to it."""
    if samples.dtype.kind == "u":
        return _to_unit_float(samples, np.iinfo(samples.dtype).max)
    if samples.dtype.kind == "f":
        pixels = samples.astype(np.float32)
        if pixels.min() < 0.0 or pixels.max() > 1.0:
            notes.append("floating-point samples outside [0, 1] were clipped")
        return np.clip(pixels, 0.0, 1.0, out=pixels)
    raise InputError(f"{name} has {samples.dtype} samples, which are not supported; convert it to 16-bit unsigned")


def _tiff_alpha(pixels: np.ndarray, colour_channels: int, extras: tuple[int, ...], notes: list[str]) -> np.ndarray:
    """Keep the first extra sample as straight alpha (un-premultiplying associated alpha); drop the others."""
    colour, extra = pixels[..., :colour_channels], pixels[..., colour_channels:]
    if extra.shape[2] == 0:
        return colour
    kind = extras[0] if extras else tifffile.EXTRASAMPLE.UNSPECIFIED
    if extra.shape[2] > 1:
        notes.append(f"{extra.shape[2] - 1} extra TIFF channel(s) beyond alpha were dropped")
    if kind == tifffile.EXTRASAMPLE.UNSPECIFIED:
        notes.append("an unspecified extra TIFF channel was dropped")
        return colour
    alpha = extra[..., :1]
    if kind == tifffile.EXTRASAMPLE.ASSOCALPHA:
        colour = np.clip(np.divide(colour, alpha, out=np.zeros_like(colour), where=alpha > 0), 0.0, 1.0)
        notes.append("premultiplied alpha converted to straight alpha")
    return np.concatenate([colour, alpha], axis=2)


def _to_unit_float(samples: np.ndarray, max_value: int) -> np.ndarray:
    pixels = samples.astype(np.float32)
    pixels /= max_value
    return pixels


def _read_exif(im: Image.Image, notes: list[str]) -> tuple[bytes | None, int]:
    """Return (EXIF to carry over, orientation): descriptive tags and sub-IFDs, orientation reset, no thumbnail."""
    try:
        source = _source_exif(im)
        orientation = source.get(_ORIENTATION_TAG, _UPRIGHT)
        kept = Image.Exif()
        for tag in _EXIF_IFD0_KEPT.intersection(source):
            kept[tag] = source[tag]
        for ifd in _EXIF_SUB_IFDS:
            sub = dict(source.get_ifd(ifd)) if ifd in source else {}
            if ExifTags.IFD.Interop in sub:
                sub[ExifTags.IFD.Interop] = source.get_ifd(ExifTags.IFD.Interop)
            if sub:
                kept[ifd] = sub
        if _ORIENTATION_TAG in kept:
            kept[_ORIENTATION_TAG] = _UPRIGHT
        exif = kept.tobytes() if len(kept) else None
    except Exception:  # metadata is a bonus: malformed EXIF must not cost the user the image
        notes.append("EXIF metadata was malformed and was dropped")
        return None, _UPRIGHT
    if orientation != _UPRIGHT and orientation not in _ORIENTATION_TRANSFORMS:
        notes.append(f"ignored an invalid EXIF orientation ({orientation})")
        orientation = _UPRIGHT
    return exif, orientation


def _source_exif(im: Image.Image) -> Image.Exif:
    """The file's EXIF from its header (Pillow's PNG getexif would decode the whole image for a late eXIf chunk)."""
    if im.format != "PNG":
        return im.getexif()
    exif = Image.Exif()
    raw = im.info.get("exif")
    if raw:
        exif.load(raw)
    return exif


def _corrupt_message(name: str, exc: Exception) -> str:
    return f"{name} is truncated or corrupt ({_detail(exc)}); re-download or re-export it"


def _detail(exc: Exception) -> str:
    """An exception as one short line without object reprs, for the middle of our own message."""
    if isinstance(exc, UnidentifiedImageError):  # its text is only "cannot identify image file <the stream>"
        return _UNREADABLE_HEADER
    text = " ".join(_OBJECT_REPR.sub("", str(exc)).split()) or type(exc).__name__
    return text[:_MAX_DETAIL_CHARS]


# ---------------------------------------------------------------------------------------------------- writing


def encode_image_bytes(
    image: DecodedImage,
    format: str,
    quality: int | None = None,
    background: tuple[int, int, int] | None = None,
) -> bytes:
    """Encode to PNG, JPEG, WEBP or TIFF in memory; see `write_image` for quality, background and notes."""
    buffer = io.BytesIO()
    _encode(buffer, image, _format_from_name(format), quality, background)
    return buffer.getvalue()


def write_image(
    path: str | Path,
    image: DecodedImage,
    quality: int | None = None,
    background: tuple[int, int, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `image` atomically in the format its extension names, keeping 16 bits, alpha, ICC and EXIF
    where the format can hold them. Returns the path written.

    `quality` (1-100, default 95) is for JPEG and WEBP. `background` flattens transparency onto that colour; JPEG
    needs it for images with alpha. What the format could not hold (16 bits in JPEG, say) is appended to
    `image.notes`. The file appears complete or not at all, and an existing one is replaced only if `overwrite`.
    """
    path = Path(path)
    fmt = _format_from_path(path)
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it first or choose another path")
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name ending in {', '.join(SUPPORTED_OUTPUT_EXTENSIONS)}")
    if path.exists() and not overwrite:
        raise OutputError.exists(path)
    try:
        with atomic_file(path, overwrite=overwrite) as stream:
            _encode(stream, image, fmt, quality, background)
    except FileExistsError:
        raise OutputError.exists(path) from None
    except TempFileError as exc:
        if exc.permission_denied:
            raise OutputError(f"cannot write to folder {folder}: permission denied; choose a writable folder") from exc
        raise OutputError(f"cannot create a file in {folder}: {exc.strerror or exc}; choose another folder") from exc
    except OSError as exc:
        raise OutputError(f"could not write {path}: {exc.strerror or exc}; check free space and permissions") from exc
    return path


def _format_from_path(path: Path) -> str:
    fmt = _FORMAT_BY_EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(
            f"cannot write {path.name}: unsupported extension {path.suffix or '(none)'}; "
            f"use one of {', '.join(SUPPORTED_OUTPUT_EXTENSIONS)}"
        )
    return fmt


def _format_from_name(name: str) -> str:
    fmt = _FORMAT_ALIASES.get(name.strip().lstrip(".").upper())
    if fmt is None:
        raise OutputError(f"unsupported output format {name!r}; use png, jpeg, webp or tiff")
    return fmt


def _encode(
    stream: BinaryIO,
    image: DecodedImage,
    fmt: str,
    quality: int | None,
    background: tuple[int, int, int] | None,
) -> None:
    """Fit the image to what `fmt` can hold (noting each loss in `image.notes`) and encode it into `stream`."""
    quality = _checked_quality(quality)
    _check_side_limit(image, fmt)
    pixels = image.pixels
    if image.has_alpha and background is not None:
        pixels = _flatten(pixels, background)
    elif image.has_alpha and fmt not in _HOLDS_ALPHA:
        raise OutputError(
            f"the image has transparency, which {fmt} cannot store: give a background colour to flatten it onto, "
            "or choose .png",
            setting="background",
        )
    if pixels.shape[2] < _RGB_CHANNELS and fmt not in _HOLDS_GRAY:
        pixels = np.concatenate([np.repeat(pixels[..., :1], _RGB_CHANNELS, axis=2), pixels[..., 1:]], axis=2)
    bit_depth = image.bit_depth
    if bit_depth == 16 and fmt not in _HOLDS_16_BIT:
        _add_note(image, f"16-bit reduced to 8-bit: {fmt} stores 8 bits per channel (choose .png or .tiff to keep 16)")
        bit_depth = 8
    icc = _matching_icc(image, pixels.shape[2])
    exif = image.exif
    if exif and fmt == "JPEG" and len(exif) > _JPEG_MAX_EXIF_BYTES:
        _add_note(image, "EXIF dropped: it is larger than one JPEG marker can hold")
        exif = None
    samples = _quantise(pixels, bit_depth)
    try:
        if bit_depth == 16 and fmt == "PNG":
            _write_png16(stream, samples, icc, exif)
        elif bit_depth == 16:
            if exif:
                _add_note(image, "EXIF not written: 16-bit TIFF output carries no EXIF (choose .png to keep it)")
            _write_tiff16(stream, samples, icc)
        else:
            _write_with_pillow(stream, samples, fmt, quality, icc, exif)
    except (ValueError, OSError, png.Error) as exc:
        raise OutputError(f"could not encode the image as {fmt} ({_detail(exc)})") from exc


def _checked_quality(quality: int | None) -> int:
    if quality is None:
        return DEFAULT_QUALITY
    if isinstance(quality, bool) or not isinstance(quality, int) or not _MIN_QUALITY <= quality <= _MAX_QUALITY:
        raise OutputError(f"quality must be a whole number from {_MIN_QUALITY} to {_MAX_QUALITY}, got {quality!r}")
    return quality


def _check_side_limit(image: DecodedImage, fmt: str) -> None:
    limit = _MAX_SIDE.get(fmt)
    if limit is not None and max(image.width, image.height) > limit:
        raise OutputError(
            f"the image is {image.width}x{image.height}, but {fmt} holds at most {limit} pixels per side; "
            "choose .png or .tiff"
        )


def _flatten(pixels: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Composite straight-alpha pixels over an opaque colour; gray stays gray only on a gray background."""
    colour, alpha = pixels[..., :-1], pixels[..., -1:]
    backdrop = np.asarray(background, dtype=np.float32) / _MAX_8_BIT
    if colour.shape[2] == 1:
        if np.all(backdrop == backdrop[0]):
            backdrop = backdrop[:1]
        else:
            colour = np.repeat(colour, _RGB_CHANNELS, axis=2)
    return (colour * alpha + backdrop * (1.0 - alpha)).astype(np.float32)


def _matching_icc(image: DecodedImage, channels: int) -> bytes | None:
    """The ICC profile if it describes the output's colour space (gray or RGB); a mismatched one is dropped."""
    icc = image.icc_profile
    if not icc:
        return None
    wanted = _ICC_GRAY if channels < _RGB_CHANNELS else _ICC_RGB
    space = icc[_ICC_COLOUR_SPACE]
    if space != wanted:
        described = space.decode("latin-1").strip() or "unknown"
        output = "grayscale" if wanted == _ICC_GRAY else "RGB"
        _add_note(image, f"ICC profile dropped: it describes {described} colour but the output is {output}")
        return None
    return icc


def _quantise(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Round [0, 1] floats to 8- or 16-bit integers (values outside the range are clipped)."""
    max_value, dtype = (_MAX_16_BIT, np.uint16) if bit_depth == 16 else (_MAX_8_BIT, np.uint8)
    scaled = np.clip(pixels, 0.0, 1.0).astype(np.float32, copy=False) * max_value
    return np.rint(scaled, out=scaled).astype(dtype)


def _write_with_pillow(
    stream: BinaryIO, samples: np.ndarray, fmt: str, quality: int, icc: bytes | None, exif: bytes | None
) -> None:
    """8-bit output of any format through Pillow."""
    im = Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options.update(quality=quality, subsampling=_JPEG_SUBSAMPLING_444)
    elif fmt == "WEBP":
        options.update(quality=quality, exact=True)  # exact: keep colour under fully transparent pixels
    elif fmt == "TIFF":
        options.update(compression=_TIFF_PILLOW_COMPRESSION)
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    im.save(stream, format=fmt, **options)


def _write_png16(stream: BinaryIO, samples: np.ndarray, icc: bytes | None, exif: bytes | None) -> None:
    """16-bit PNG through pypng, with iCCP and eXIf chunks placed right after IHDR (pypng writes neither)."""
    height, width, channels = samples.shape
    writer = png.Writer(width, height, greyscale=channels < _RGB_CHANNELS, alpha=channels in (2, 4), bitdepth=16)
    encoded = io.BytesIO()
    writer.write_packed(encoded, (row.astype(">u2").tobytes() for row in samples.reshape(height, width * channels)))
    data = encoded.getbuffer()
    stream.write(data[:_PNG_IHDR_END])
    if icc:
        png.write_chunk(stream, b"iCCP", _PNG_ICC_NAME + b"\x00" + _PNG_ZLIB_METHOD + zlib.compress(icc))
    if exif:
        png.write_chunk(stream, b"eXIf", exif.removeprefix(_EXIF_HEADER))
    stream.write(data[_PNG_IHDR_END:])


def _write_tiff16(stream: BinaryIO, samples: np.ndarray, icc: bytes | None) -> None:
    """16-bit TIFF through tifffile (deflate-compressed, alpha marked as straight)."""
    channels = samples.shape[2]
    tifffile.imwrite(
        stream,
        samples[..., 0] if channels == 1 else samples,
        photometric="minisblack" if channels < _RGB_CHANNELS else "rgb",
        planarconfig="contig" if channels > 1 else None,
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression=_TIFF_TIFFFILE_COMPRESSION,
        iccprofile=icc,
        metadata=None,
    )


def _add_note(image: DecodedImage, note: str) -> None:
    _add_to(image.notes, note)


def _add_to(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


# ---------------------------------------------------------------------------------------------------- colours


def parse_color(text: str) -> tuple[int, int, int]:
    """Parse a --background colour: a name ("white"), hex ("#ffffff", "#fff") or "R,G,B" with 0-255 values."""
    problem = f"invalid colour {text!r}: use a name like white, a hex value like #ffffff, or R,G,B from 0 to 255"
    parts = text.split(",")
    if len(parts) == _RGB_CHANNELS:
        try:
            red, green, blue = (int(part) for part in parts)
        except ValueError:
            raise OutputError(problem) from None
        if not all(0 <= value <= _MAX_8_BIT for value in (red, green, blue)):
            raise OutputError(problem)
        return red, green, blue
    try:
        rgb = ImageColor.getrgb(text.strip())
    except ValueError:
        raise OutputError(problem) from None
    if len(rgb) > _RGB_CHANNELS and rgb[_RGB_CHANNELS] != _MAX_8_BIT:
        raise OutputError(f"background colour {text!r} is not opaque; give an opaque colour such as white")
    return rgb[0], rgb[1], rgb[2]
