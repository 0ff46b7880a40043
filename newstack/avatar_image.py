"""Resizing an avatar as ownCloud 10 does (OC_Image::resize, then imagepng/imagejpeg). Pure:
bytes in, bytes out, no I/O.

oC10's rules: the longest side becomes `size` (smaller images are scaled up), the other keeps
the aspect ratio, rounded half away from zero (PHP round()); the result is encoded in the
avatar's own format for /index.php/avatar (OC_Image::data) and in the requested one on the DAV
node (AvatarNode::get), with GD's defaults (PNG zlib level 6, JPEG quality 75).

Not as oC10: GD's imagecopyresampled is not available here, so the pixels differ from
ownCloud's own; both of our stacks run this one function, so they answer the same bytes.
"""

from __future__ import annotations

import io
import warnings
from typing import Final

from PIL import Image

#: oC10 refuses avatar uploads over 20 MiB (AvatarController::postAvatar)
MAX_SOURCE_BYTES: Final = 20 * 1024 * 1024
#: decoded pixels we accept: a 4096×4096 RGBA image is 64 MiB; a tiny file declaring more is a
#: decompression bomb and is refused before any pixel is decoded
MAX_PIXELS: Final = 4096 * 4096
#: GD's imagejpeg() default quality (libjpeg's 75)
JPEG_QUALITY: Final = 75
FORMATS: Final = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg")}
MIMETYPE_FORMAT: Final = {"image/png": "png", "image/jpeg": "jpeg"}


class AvatarImageError(ValueError):
    """The stored avatar cannot be resized (too large, or not an image)."""


def php_round(value: float) -> int:
    """PHP's round(): halves away from zero (Python's round() goes to even)."""
    whole = int(abs(value) + 0.5)
    return whole if value >= 0 else -whole


def target_size(width: int, height: int, size: int) -> tuple[int, int]:
    """OC_Image::resize($size): the longest side is `size`, at least one pixel each way."""
    ratio = width / height
    if ratio > 1:
        return size, max(1, php_round(size / ratio))
    return max(1, php_round(size * ratio)), size


def resize(data: bytes, size: int, fmt: str) -> bytes:
    """`data` (a PNG or JPEG) resized to `size` and encoded as `fmt` ('png' or 'jpeg')."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown avatar format {fmt!r}")
    if len(data) > MAX_SOURCE_BYTES:
        raise AvatarImageError(f"avatar file too large: {len(data)} bytes "
                               f"(limit {MAX_SOURCE_BYTES})")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns, then raises at twice its limit: ours is stricter
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=("PNG", "JPEG"))
            width, height = image.size  # from the header: nothing decoded yet
            if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
                raise AvatarImageError(f"avatar image too large: {width}x{height} pixels "
                                       f"(limit {MAX_PIXELS})")
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise AvatarImageError(f"avatar image too large: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, AvatarImageError):
            raise
        raise AvatarImageError(f"avatar is not a readable PNG or JPEG: {exc}") from exc
    keep_alpha = fmt == "png" and (image.mode in ("RGBA", "LA", "PA")
                                   or "transparency" in image.info)
    resized = image.convert("RGBA" if keep_alpha else "RGB").resize(
        target_size(width, height, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if fmt == "png":
        resized.save(out, "PNG", compress_level=6)
    else:
        resized.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
