"""What a file's first bytes say: the container signatures we read, and HEIC/HEIF/AVIF files we can name."""

from __future__ import annotations

from typing import BinaryIO

from enlarge.errors import InputError

_SNIFF_BYTES = 32
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*")
_KNOWN_SIGNATURES = (PNG_SIGNATURE, b"\xff\xd8\xff", b"GIF87a", b"GIF89a", *TIFF_SIGNATURES, b"BM")
_RIFF_TYPE, _RIFF_FORM = slice(0, 4), slice(8, 12)
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


def read_head(stream: BinaryIO, name: str) -> bytes:
    """Return the first bytes (for sniffing the container), leaving the stream at its start."""
    head = stream.read(_SNIFF_BYTES)
    stream.seek(0)
    if not head:
        raise InputError(f"{name} is empty (0 bytes); pass an image file")
    return head


def has_known_signature(head: bytes) -> bool:
    """Whether the first bytes announce a format we read, so a parse failure means damage, not a foreign file."""
    return head.startswith(_KNOWN_SIGNATURES) or (head[_RIFF_TYPE] == b"RIFF" and head[_RIFF_FORM] == b"WEBP")


def heif_kind(head: bytes) -> tuple[str, str] | None:
    """(What it is, how to read it) for a HEIC/HEIF/AVIF file, from its `ftyp` brand; None for anything else."""
    if head[_ISO_BMFF_TYPE] != b"ftyp":
        return None
    return _HEIF_KINDS.get(head[_ISO_BMFF_BRAND])
