"""One exception tree for the whole package.

Every message says what was expected, what arrived, and how to fix it. The CLI
maps these to one-line messages and exit codes; the service maps them to
``application/problem+json`` with the stable :attr:`RecogError.code` and
:attr:`RecogError.http_status`.
"""

from __future__ import annotations


class RecogError(Exception):
    """Base of every error raised on purpose by recog."""

    code = "recog_error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} Fix: {hint}")

    def to_dict(self) -> dict:
        return {"code": self.code, "detail": str(self)}


class InvalidInputError(RecogError):
    """An argument or value a caller passed is not acceptable."""

    code = "invalid_input"
    http_status = 400
    exit_code = 2


class ImageError(InvalidInputError):
    """Image bytes could not be accepted (base of the image errors)."""

    code = "invalid_image"
    http_status = 422


class UnsupportedFormatError(ImageError):
    """The bytes are not one of the allowed image formats (checked by magic bytes)."""

    code = "unsupported_format"
    http_status = 415


class CorruptImageError(ImageError):
    """The bytes claim an allowed format but cannot be decoded (truncated, damaged, empty)."""

    code = "corrupt_image"
    http_status = 422


class ImageTooLargeError(ImageError):
    """Decoded pixel count or byte size is above the configured cap."""

    code = "image_too_large"
    http_status = 413


class DatasetError(RecogError):
    """A dataset folder or manifest cannot be used as given."""

    code = "invalid_dataset"
    http_status = 400
    exit_code = 2


class ConfigError(InvalidInputError):
    """A configuration value or file is wrong (unknown key, bad type, bad range)."""

    code = "invalid_config"


class ModelNotFoundError(RecogError):
    """A model name, Hub id, folder or bundle could not be found."""

    code = "model_not_found"
    http_status = 404
    exit_code = 3


class WeightsUnavailableError(ModelNotFoundError):
    """Pretrained weights are not on this machine and cannot be downloaded."""

    code = "weights_unavailable"


class BundleError(RecogError):
    """A model bundle is malformed, from an unknown format version, or incomplete."""

    code = "invalid_bundle"
    http_status = 422
    exit_code = 3


class BundleIntegrityError(BundleError):
    """A bundle's files do not match the sha256 recorded in its recog.json."""

    code = "bundle_tampered"


class BundleInvalidError(BundleError):
    """A bundle asks for what no bundle may: a file outside its folder (``..``, an absolute path, a
    symlink that leaves it), weights that are not safetensors, a config over the size or parameter
    caps, or labels that do not match the network's outputs."""

    code = "bundle_invalid"


class ExportError(RecogError):
    """Export or quantization failed, or its accuracy check refused the result."""

    code = "export_failed"
    exit_code = 4


class TrainingInterrupted(RecogError):
    """Training stopped by the user; the last checkpoint was saved."""

    code = "training_interrupted"
    exit_code = 130


class ServiceError(RecogError):
    """Base for errors that only the HTTP service raises."""

    code = "service_error"


class AuthError(ServiceError):
    code = "unauthorized"
    http_status = 401


class ForbiddenError(ServiceError):
    code = "forbidden"
    http_status = 403


class OverloadedError(ServiceError):
    """A bounded queue is full; retry after ``retry_after`` seconds (sent as ``Retry-After``)."""

    code = "overloaded"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float = 1.0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class NotReadyError(ServiceError):
    """The service is starting, draining for shutdown, or the model is not loaded yet."""

    code = "not_ready"
    http_status = 503


class PayloadTooLargeError(ServiceError):
    """The request body is over ``max_body_bytes`` (or a form field over its cap)."""

    code = "payload_too_large"
    http_status = 413


class BadRequestError(InvalidInputError):
    """A request that is malformed as HTTP/JSON/multipart (not as an image)."""

    code = "bad_request"
    http_status = 400


class UrlNotAllowedError(BadRequestError):
    """A URL was sent where image bytes belong; the service never fetches URLs."""

    code = "url_not_allowed"


class DeadlineExceededError(ServiceError):
    code = "deadline_exceeded"
    http_status = 504


class NotFoundError(RecogError):
    """A named resource (model, collection, person, face) does not exist."""

    code = "not_found"
    http_status = 404
    exit_code = 3


class ConflictError(RecogError):
    """The operation conflicts with the current state (name already taken, ...)."""

    code = "conflict"
    http_status = 409
    exit_code = 2


class NoFaceError(InvalidInputError):
    """An image that had to contain exactly one face contains none."""

    code = "no_face"
    http_status = 422


class MultipleFacesError(InvalidInputError):
    """An image that had to contain exactly one face contains several."""

    code = "multiple_faces"
    http_status = 422


def did_you_mean(name: str, choices, *, n: int = 3, cutoff: float = 0.6) -> str | None:
    """``"did you mean a, b?"`` naming the choices closest to ``name``, or None when none is close.

    The one place that spells suggestions for unknown names (models, config
    keys, collections, presets).

    Example:
        >>> did_you_mean("resnet18", ["resnet-18", "resnet-50", "vit-small"])
        'did you mean resnet-18, resnet-50?'
    """
    import difflib

    close = difflib.get_close_matches(name, [str(c) for c in choices], n=n, cutoff=cutoff)
    return f"did you mean {', '.join(close)}?" if close else None
