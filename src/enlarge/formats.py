"""Image formats: which file extensions the project reads and writes, and the names and media types of each.

The one table every reader, writer and front-end takes its extensions from (imageio, paths, the batch spec, the
service), so adding a format or an extension is one edit here.
"""

from __future__ import annotations

PNG, JPEG, WEBP, TIFF, BMP, GIF = "PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF"

# Pillow format name → its file extensions, the usual one first.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    PNG: (".png",),
    JPEG: (".jpg", ".jpeg"),
    WEBP: (".webp",),
    TIFF: (".tif", ".tiff"),
    BMP: (".bmp",),
    GIF: (".gif",),
}
WRITABLE_FORMATS = (PNG, JPEG, WEBP, TIFF)
FOLDER_FORMATS = (PNG, JPEG, WEBP)  # the 8-bit formats of training and benchmark image folders
MEDIA_TYPES = {PNG: "image/png", JPEG: "image/jpeg", WEBP: "image/webp", TIFF: "image/tiff"}

FORMAT_BY_EXTENSION = {ext: fmt for fmt in WRITABLE_FORMATS for ext in EXTENSIONS[fmt]}
OUTPUT_EXTENSIONS = tuple(FORMAT_BY_EXTENSION)  # what `write_image` can write, by the output's extension
INPUT_EXTENSIONS = tuple(ext for exts in EXTENSIONS.values() for ext in exts)  # images picked from a folder
FOLDER_EXTENSIONS = tuple(ext for fmt in FOLDER_FORMATS for ext in EXTENSIONS[fmt])
# A writable format by any of its names, upper case without a dot: "JPG" and "JPEG" are both JPEG.
FORMAT_ALIASES = {
    **{ext.lstrip(".").upper(): fmt for ext, fmt in FORMAT_BY_EXTENSION.items()},
    **{fmt: fmt for fmt in WRITABLE_FORMATS},
}
FALLBACK_OUTPUT_EXTENSION = ".png"  # for inputs whose own format cannot be written (e.g. GIF, BMP)


def usual_extension(fmt: str) -> str:
    """The extension a file of Pillow format `fmt` is written with, e.g. ".jpg" for JPEG."""
    return EXTENSIONS[fmt][0]


def output_extension(source_suffix: str) -> str:
    """The extension an output of an input with `source_suffix` gets: its own when writable, else PNG."""
    return source_suffix if source_suffix.lower() in FORMAT_BY_EXTENSION else FALLBACK_OUTPUT_EXTENSION
