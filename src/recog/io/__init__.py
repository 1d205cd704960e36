"""Safe image loading: the one place where untrusted image bytes are decoded.

Every entry point (training, evaluation, prediction, the service, faces) reads
images through :func:`load_image`.
"""

from recog.io.image import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    image_size,
    load_image,
    sniff_format,
)

__all__ = ["ALLOWED_FORMATS", "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "image_size", "load_image",
           "sniff_format"]
