"""TIFF through tifffile where Pillow falls short: deep (16-bit, float) samples both ways, and naming the valid
TIFFs we do not read.

tifffile logs what it skips in a damaged file (one line per bad tag, `<tifffile.TiffTag 256 @10> invalid data
type 132`); with no logging set up, Python prints those on stderr. While we parse, they are collected instead: a
file tifffile had to skip parts of is damaged, never "valid but unsupported", and a deep TIFF that still decodes
gets them as notes.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import tifffile
from PIL import Image

from enlarge.errors import InputError
from enlarge.imageio.messages import add_note, corrupt_message, decoder_logs
from enlarge.imageio.samples import RGB_CHANNELS, to_unit_float

_TIFF_WIDTH_TAG, _TIFF_LENGTH_TAG, _TIFF_BITS_PER_SAMPLE_TAG = 256, 257, 258
_TIFF_TIFFFILE_COMPRESSION = "zlib"  # needs no imagecodecs
_TIFFFILE_LOGGER = "tifffile"


def stored_tiff_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) as the TIFF's tags store them (recent Pillows report `im.size` already turned by EXIF)."""
    return int(im.tag_v2[_TIFF_WIDTH_TAG]), int(im.tag_v2[_TIFF_LENGTH_TAG])


def tiff_bits_per_sample(im: Image.Image) -> int:
    """The deepest sample of a TIFF opened by Pillow, in bits."""
    bits = im.tag_v2.get(_TIFF_BITS_PER_SAMPLE_TAG, 8)
    return max(bits) if isinstance(bits, tuple) else int(bits)


def refuse_valid_tiff(stream: BinaryIO, name: str) -> None:
    """A TIFF that Pillow cannot open but tifffile can parse is valid, only of a kind we do not read: say so."""
    stream.seek(0)
    with decoder_logs(_TIFFFILE_LOGGER) as complaints:
        try:
            with tifffile.TiffFile(stream) as tif:
                page = tif.pages.first
                kind = f"{page.samplesperpixel} channel(s) of {page.dtype} samples ({page.photometric.name.lower()})"
                complete = all(o + n <= tif.filehandle.size for o, n in zip(page.dataoffsets, page.databytecounts))
        except Exception:  # tifffile cannot parse it either: it is damaged, as Pillow said
            complete = False
    stream.seek(0)
    if not complete or complaints:  # tifffile had to skip damaged parts: as Pillow said, the file is damaged
        return
    raise InputError(
        f"{name} is a valid TIFF with {kind}, which is not supported; supported TIFFs hold gray or RGB, with or "
        "without alpha, in 8- or 16-bit unsigned samples (float only as one gray channel): convert it to one of those"
    )


def decode_deep_tiff(stream: BinaryIO, name: str, notes: list[str]) -> np.ndarray | None:
    """Decode a TIFF deeper than 8 bits with tifffile, or None when its codec needs the absent imagecodecs."""
    stream.seek(0)
    try:
        with decoder_logs(_TIFFFILE_LOGGER) as complaints, tifffile.TiffFile(stream) as tif:
            page = tif.pages.first
            decodable = page.compression in tifffile.TIFF.DECOMPRESSORS and page.predictor in tifffile.TIFF.UNPREDICTORS
            if not decodable:
                return None
            samples = page.asarray()
            axes, photometric, extras = page.axes, page.photometric, tuple(page.extrasamples)
    except Exception as exc:  # any decoder failure on untrusted bytes means a bad file, never a crash
        raise InputError(corrupt_message(name, exc)) from exc
    for complaint in complaints:
        add_note(notes, f"TIFF partly damaged, skipped: {complaint}")
    if "S" not in axes:
        samples, axes = samples[..., np.newaxis], axes + "S"
    if sorted(axes) != sorted("YXS"):
        raise InputError(f"{name} has a TIFF layout ({axes}) that is not supported; save it as a plain 2-D image")
    samples = samples.transpose([axes.index(axis) for axis in "YXS"])
    if photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE):
        colour_channels = 1
    elif photometric == tifffile.PHOTOMETRIC.RGB:
        colour_channels = RGB_CHANNELS
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
        return to_unit_float(samples, np.iinfo(samples.dtype).max)
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


def write_tiff16(stream: BinaryIO, samples: np.ndarray, icc: bytes | None) -> None:
    """16-bit TIFF through tifffile (deflate-compressed, alpha marked as straight)."""
    channels = samples.shape[2]
    tifffile.imwrite(
        stream,
        samples[..., 0] if channels == 1 else samples,
        photometric="minisblack" if channels < RGB_CHANNELS else "rgb",
        planarconfig="contig" if channels > 1 else None,
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        compression=_TIFF_TIFFFILE_COMPRESSION,
        iccprofile=icc,
        metadata=None,
    )
