"""DICOM (medical images) through the one safe loader: header checks, first frame, windowing → 8-bit RGB.

:func:`recog.io.load_image` hands bytes with ``DICM`` at offset 128 (the
DICOM Part 10 preamble) to :func:`decode_dicom`, so training, evaluation,
prediction and the service read ``.dcm`` files exactly like JPEGs. The steps:

1. the header is parsed by pydicom (``force=False``: a file without the
   preamble is not DICOM here); a header that does not parse is a
   :class:`~recog.errors.CorruptImageError`;
2. the image is checked before any pixel is decoded: Pixel Data present,
   rows x columns under the pixel cap, 1 or 3 samples per pixel, 1-32 bits
   allocated, a transfer syntax with an installed decoder
   (:func:`supported_transfer_syntaxes`);
3. only the **first frame** of a multi-frame file is decoded
   (``pydicom.pixels.pixel_array(index=0)``): the work is one frame's;
4. grey images: the modality LUT (Rescale Slope / Intercept, e.g. CT → HU),
   then a linear window (DICOM PS3.3 C.11.2.1.2) from the header's first
   Window Center / Width, else a per-modality preset (:data:`WINDOW_PRESETS`),
   else the frame's own min..max; MONOCHROME1 is inverted (0 = white);
5. colour: YBR is converted to RGB by pydicom; PALETTE COLOR goes through its
   lookup table; samples wider than 8 bits are scaled to 8.

Supported transfer syntaxes with the dependencies recog installs (pydicom,
Pillow, pylibjpeg + its openjpeg and rle plugins): uncompressed (implicit /
explicit VR, little and big endian, deflated), RLE Lossless, JPEG Baseline and
Extended (Pillow), JPEG 2000 and HTJ2K (pylibjpeg-openjpeg). JPEG Lossless and
JPEG-LS need ``pylibjpeg-libjpeg`` (GPL-3.0, so opt-in:
``pip install 'recog[dicom-lossless-jpeg]'``).
Anything else (e.g. MPEG video syntaxes) is an
:class:`~recog.errors.UnsupportedFormatError` naming the syntax.

**No patient data leaves this module.** Errors name the file and the reason,
never a header value; text from pydicom is passed through :func:`redact`
(every identifying value of the file replaced by ``[redacted]``), and
:func:`dicom_info` returns only technical fields (:data:`INFO_FIELDS`).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
from PIL import Image

from recog.errors import CorruptImageError, ImageTooLargeError, UnsupportedFormatError

#: Window (centre, width) per modality when the header has none: CT soft tissue in HU; others
#: use the frame's own range.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {"CT": (40.0, 400.0)}

#: The only header fields :func:`dicom_info` reports (technical, never identifying).
INFO_FIELDS = ("modality", "transfer_syntax", "photometric", "bits_allocated", "bits_stored", "width", "height",
               "frames", "samples_per_pixel")

#: Attributes that identify a patient (or a person near the study); their values are removed from
#: every message by :func:`redact`. :func:`recog.io.dicom_anonymize` goes further (the basic profile).
PHI_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "OtherPatientIDs",
                "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName",
                "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "InstitutionName",
                "InstitutionAddress", "AccessionNumber", "StudyID", "IssuerOfPatientID", "MedicalRecordLocator")


def is_dicom(head: bytes) -> bool:
    """True when ``head`` (at least 132 bytes) has the Part 10 marker ``DICM`` at offset 128.

    Example:
        >>> is_dicom(b"\\0" * 128 + b"DICM")
        True
    """
    return len(head) >= 132 and head[128:132] == b"DICM"


def supported_transfer_syntaxes() -> dict[str, str]:
    """``{UID: name}`` of the transfer syntaxes an installed plugin can decode on this machine."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import AllTransferSyntaxes, UID

    out = {}
    for uid in AllTransferSyntaxes:
        try:
            decoder = get_decoder(uid)
        except NotImplementedError:
            continue
        if decoder.is_available:
            out[str(uid)] = UID(uid).name
    return out


def redact(text: str, ds: Any) -> str:
    """``text`` with every identifying value of ``ds`` (:data:`PHI_KEYWORDS`) replaced by ``[redacted]``.

    Example:
        >>> redact("bad value DOE^JOHN", {"PatientName": "DOE^JOHN"})  # doctest: +SKIP
        'bad value [redacted]'
    """
    if ds is None:
        return text
    for key in PHI_KEYWORDS:
        try:
            value = ds.get(key) if hasattr(ds, "get") else None
        except Exception:  # noqa: BLE001 - a damaged element must not stop redaction of the others
            continue
        values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        for v in values:
            s = str(v).strip() if v is not None else ""
            if len(s) >= 2:
                text = text.replace(s, "[redacted]")
                for part in s.replace("^", " ").split():
                    if len(part) >= 3:
                        text = text.replace(part, "[redacted]")
    return text


def _reason(exc: BaseException, ds: Any) -> str:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return redact(msg, ds)[:300]


def read_header(data: bytes, name: str) -> Any:
    """The pydicom ``Dataset`` of ``data`` (pixel data kept as bytes, not decoded)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    _quiet_pydicom_log()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except (InvalidDicomError, OSError, ValueError, KeyError, EOFError, TypeError, IndexError, NotImplementedError,
            AttributeError, UnicodeDecodeError) as exc:
        raise CorruptImageError(f"{name}: cannot read the DICOM header ({type(exc).__name__}).",
                                hint="the file is damaged or not a DICOM Part 10 file") from None
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise CorruptImageError(f"{name}: cannot read the DICOM header (no transfer syntax in the file meta).",
                                hint="the file is damaged or not a DICOM Part 10 file")
    return ds


class _WithholdValues:
    """A logging filter for pydicom's logger: its warnings quote header values (a patient's name among
    them), so the text is replaced; the level and the fact that something was odd are kept."""

    def filter(self, record: Any) -> bool:
        record.msg, record.args = "pydicom: a header value was unusual (text withheld: it may quote patient data)", ()
        return True


def _quiet_pydicom_log() -> None:
    import logging

    logger = logging.getLogger("pydicom")
    if not any(isinstance(f, _WithholdValues) for f in logger.filters):
        logger.addFilter(_WithholdValues())


def _int(ds: Any, key: str, default: int | None = None) -> int | None:
    value = ds.get(key, default)
    try:
        return int(value) if value is not None and value != "" else default
    except (TypeError, ValueError):
        return default


def image_info(ds: Any) -> dict[str, Any]:
    """The technical fields of :data:`INFO_FIELDS` from a parsed header (never an identifying one)."""
    meta = getattr(ds, "file_meta", None)
    tsuid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return {
        "modality": str(ds.get("Modality", "") or "") or None,
        "transfer_syntax": tsuid.name if tsuid is not None else None,
        "photometric": str(ds.get("PhotometricInterpretation", "") or "") or None,
        "bits_allocated": _int(ds, "BitsAllocated"),
        "bits_stored": _int(ds, "BitsStored"),
        "width": _int(ds, "Columns"),
        "height": _int(ds, "Rows"),
        "frames": _int(ds, "NumberOfFrames", 1) or 1,
        "samples_per_pixel": _int(ds, "SamplesPerPixel", 1),
    }


def dicom_info(source: Any) -> dict[str, Any]:
    """Technical header fields of a DICOM file (path or bytes) without decoding pixels.

    Example:
        >>> dicom_info("CT_small.dcm")["modality"]     # doctest: +SKIP
        'CT'
    """
    from recog.io.source import read_bytes

    data, name = read_bytes(source, None)
    if not is_dicom(data[:132]):
        raise UnsupportedFormatError(f"{name}: not a DICOM file (no 'DICM' marker at byte 128).")
    return image_info(read_header(data, name))


def _check_image(ds: Any, name: str, max_pixels: int) -> None:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        modality = str(ds.get("Modality", "") or "unknown modality")
        raise CorruptImageError(f"{name}: the DICOM file has no pixel data ({modality}; e.g. a report or a "
                                "presentation state, not an image).", hint="pass DICOM files that hold images")
    rows, cols = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    if not rows or not cols or rows <= 0 or cols <= 0:
        raise CorruptImageError(f"{name}: the DICOM header declares an empty image ({cols}x{rows}).")
    if rows * cols > max_pixels:
        raise ImageTooLargeError(f"{name}: {cols}x{rows} = {rows * cols:,} pixels is over the {max_pixels:,}-pixel cap.",
                                 hint="resize the image or raise the pixel cap (max_pixels / --max-pixels)")
    spp, bits = _int(ds, "SamplesPerPixel", 1), _int(ds, "BitsAllocated", 0)
    if spp not in (1, 3) or bits not in (1, 8, 16, 32, 64):
        raise CorruptImageError(f"{name}: unsupported DICOM pixel layout ({spp} samples per pixel, "
                                f"{bits} bits allocated).")
    meta = getattr(ds, "file_meta", None)
    tsuid = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if tsuid is None:
        raise CorruptImageError(f"{name}: the DICOM file meta has no transfer syntax.")
    if str(tsuid) not in _supported():
        raise UnsupportedFormatError(
            f"{name}: DICOM transfer syntax {tsuid.name} ({tsuid}) cannot be decoded here.",
            hint="decompress it first (e.g. `gdcmconv --raw` or `dcmdjpeg`), or install the pydicom plugin it needs")


_SUPPORTED: dict[str, str] | None = None


def _supported() -> dict[str, str]:
    global _SUPPORTED
    if _SUPPORTED is None:
        _SUPPORTED = supported_transfer_syntaxes()
    return _SUPPORTED


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM linear VOI window (PS3.3 C.11.2.1.2) → uint8: ``center - width/2`` maps to 0, ``+ width/2`` to 255.

    Args:
        values: ``(H, W)`` modality values (e.g. Hounsfield units).
        center, width: the window; ``width`` below 1 is treated as 1.

    Example:
        >>> window_to_uint8(np.array([[-1000.0, 40.0, 1000.0]]), 40, 400).tolist()
        [[0, 128, 255]]
    """
    width = max(float(width), 1.0)
    lo = center - 0.5 - (width - 1) / 2
    y = (np.asarray(values, dtype=np.float64) - lo) / max(width - 1, 1e-12) * 255.0
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def auto_window(values: np.ndarray) -> tuple[float, float]:
    """A window spanning the frame's own min..max (what viewers show when the header has none)."""
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    return (lo + hi) / 2 + 0.5, max(hi - lo + 1, 1.0)


def grey_to_uint8(frame: np.ndarray, ds: Any) -> np.ndarray:
    """One grey frame (stored values) → ``(H, W)`` uint8: modality LUT, window, MONOCHROME1 inversion."""
    from pydicom.pixels import apply_modality_lut

    values = np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        preset = WINDOW_PRESETS.get(str(ds.get("Modality", "") or "").upper())
        center, width = preset if preset is not None else auto_window(values)
    out = window_to_uint8(values, center, width)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return out


def colour_to_uint8(frame: np.ndarray, ds: Any) -> np.ndarray:
    """One colour frame (RGB after pydicom's YBR conversion) → ``(H, W, 3)`` uint8."""
    if frame.dtype == np.uint8:
        return frame
    bits = _int(ds, "BitsStored", 8) or 8
    scale = 255.0 / max((1 << bits) - 1, 1)
    return np.clip(np.rint(frame.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def decode_dicom(data: bytes, name: str, *, max_pixels: int) -> Image.Image:
    """DICOM bytes → RGB ``PIL.Image`` of the first frame (called by :func:`recog.io.load_image`).

    Raises:
        CorruptImageError: header or pixel data damaged, no pixel data.
        UnsupportedFormatError: a transfer syntax no installed plugin decodes.
        ImageTooLargeError: rows x columns over ``max_pixels``.
    """
    ds = read_header(data, name)
    _check_image(ds, name, max_pixels)
    return Image.fromarray(decode_first_frame(ds, name), "RGB")


def decode_first_frame(ds: Any, name: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 of the first frame of a checked header (see :func:`decode_dicom`)."""
    from pydicom.pixels import apply_color_lut, pixel_array

    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pixel_array(ds, index=0)
            if photometric == "PALETTE COLOR":
                frame = apply_color_lut(frame, ds)
    except (ValueError, RuntimeError, OSError, KeyError, TypeError, IndexError, AttributeError, EOFError,
            NotImplementedError, MemoryError) as exc:
        raise CorruptImageError(f"{name}: cannot decode the DICOM pixel data ({_reason(exc, ds)}).",
                                hint="the file is truncated or damaged; re-export it") from None
    if frame.ndim == 3 and frame.shape[-1] == 3:
        if photometric == "PALETTE COLOR":
            frame = (frame.astype(np.float64) / 257.0 if frame.max(initial=0) > 255 else frame).astype(np.uint8)
        return np.ascontiguousarray(colour_to_uint8(frame, ds))
    if frame.ndim != 2:
        raise CorruptImageError(f"{name}: unexpected DICOM frame shape {frame.shape}.")
    grey = grey_to_uint8(frame, ds)
    return np.ascontiguousarray(np.stack([grey] * 3, axis=-1))


def dicom_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from a DICOM header, without decoding pixels."""
    info = image_info(read_header(data, name))
    if not info["width"] or not info["height"]:
        raise CorruptImageError(f"{name}: the DICOM header has no Rows/Columns.")
    return info["width"], info["height"]


# --------------------------------------------------------------------------- anonymization

#: Basic Application Level Confidentiality Profile (PS3.15 E.1), the attributes it lists that
#: pydicom's dictionary knows, by action: "Z" emptied, "X" removed. UIDs ("U") are replaced by
#: :func:`anonymize`; private tags are removed. A subset: the standard's table is longer, and
#: text burned into pixels (BurnedInAnnotation YES) cannot be removed here (the file is refused).
BASIC_PROFILE_EMPTY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "ReferringPhysicianName",
                       "StudyID", "AccessionNumber", "StudyDate", "StudyTime", "ContentCreatorName")
BASIC_PROFILE_REMOVE = (
    "InstanceCreatorUID", "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime", "ContentDate",
    "ContentTime", "SeriesDate", "SeriesTime", "OverlayDate", "OverlayTime", "CurveDate", "CurveTime",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "StationName", "StudyDescription", "SeriesDescription",
    "PhysiciansOfRecord", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName",
    "AdmittingDiagnosesDescription", "DerivationDescription", "PatientBirthTime", "OtherPatientIDs",
    "OtherPatientNames", "OtherPatientIDsSequence", "PatientBirthName", "PatientAge", "PatientSize",
    "PatientWeight", "PatientAddress", "PatientMotherBirthName", "MilitaryRank", "BranchOfService",
    "MedicalRecordLocator", "PatientTelephoneNumbers", "EthnicGroup", "Occupation", "AdditionalPatientHistory",
    "PatientComments", "DeviceSerialNumber", "ProtocolName", "PerformedProcedureStepID",
    "PerformedProcedureStepDescription", "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
    "RequestAttributesSequence", "ImageComments", "IssuerOfPatientID", "PatientInsurancePlanCodeSequence",
    "PatientReligiousPreference", "CountryOfResidence", "RegionOfResidence", "CurrentPatientLocation",
    "PatientState", "ResponsiblePerson", "ResponsibleOrganization", "ReferencedPatientSequence",
    "ReferencedStudySequence", "ReferencedPerformedProcedureStepSequence", "RequestingPhysician",
    "RequestedProcedureDescription", "ScheduledPerformingPhysicianName", "PersonName", "TextString",
    "TextComments", "InterpretationRecorder", "InterpretationAuthor", "InterpretationApproverSequence",
    "PhysicianApprovingInterpretation", "InterpretationTranscriber", "DistributionName", "DistributionAddress",
    "InstitutionCodeSequence", "ReferringPhysicianIdentificationSequence", "PhysiciansOfRecordIdentificationSequence",
    "PerformingPhysicianIdentificationSequence", "PhysiciansReadingStudyIdentificationSequence",
    "OperatorIdentificationSequence", "FrameComments", "ModifiedAttributesSequence",
    "OriginalAttributesSequence", "DigitalSignaturesSequence", "DataSetTrailingPadding")
#: UIDs replaced by new ones (the same original → the same new UID within one :func:`anonymize` run).
BASIC_PROFILE_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
                      "ReferencedSOPInstanceUID", "IrradiationEventUID", "SynchronizationFrameOfReferenceUID",
                      "StorageMediaFileSetUID", "ConcatenationUID", "DimensionOrganizationUID")


def anonymize_dataset(ds: Any, *, salt: str) -> Any:
    """Apply :data:`BASIC_PROFILE_EMPTY` / ``_REMOVE`` / ``_UIDS`` to ``ds`` in place (nested sequences too).

    Pixel data is kept. ``PatientIdentityRemoved`` becomes ``YES`` and
    ``DeidentificationMethod`` names the profile. UIDs are replaced by
    ``generate_uid`` hashed from ``salt`` + the original, so files of one study keep
    their links when anonymized with the same salt.
    """
    from pydicom.uid import generate_uid

    def visit(d: Any) -> None:
        d.remove_private_tags()
        for key in BASIC_PROFILE_REMOVE:
            if key in d:
                delattr(d, key)
        for key in BASIC_PROFILE_EMPTY:
            if key in d:
                d[key].value = ""
        for key in BASIC_PROFILE_UIDS:
            if key in d and d[key].value:
                d[key].value = generate_uid(entropy_srcs=[salt, str(d[key].value)])
        for elem in list(d):
            if elem.VR == "SQ":
                for item in elem.value:
                    visit(item)
            elif elem.VR == "PN" and elem.value:        # any other person name
                elem.value = ""
            elif elem.tag.group in (0x4000,) or elem.tag.group & 0xFF00 == 0x5000:   # curves, text comments
                del d[elem.tag]

    visit(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in ds and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "recog: DICOM PS3.15 basic profile (subset), private tags removed"
    return ds


def anonymize_file(src: Any, dst: Any, *, salt: str, max_bytes: int | None = None) -> dict[str, Any]:
    """Read ``src`` (a DICOM file), strip PHI (:func:`anonymize_dataset`), write ``dst``; returns its info.

    Raises:
        CorruptImageError: unreadable header.
        UnsupportedFormatError: not DICOM, or text is burned into the pixels (BurnedInAnnotation YES).
    """
    from recog.io.source import read_bytes

    data, name = read_bytes(src, max_bytes)
    if not is_dicom(data[:132]):
        raise UnsupportedFormatError(f"{name}: not a DICOM file (no 'DICM' marker at byte 128).")
    ds = read_header(data, name)
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        raise UnsupportedFormatError(f"{name}: BurnedInAnnotation is YES (identifying text is in the pixels); "
                                     "removing it needs pixel editing, so the file was not copied.",
                                     hint="mask the annotation regions, then anonymize")
    anonymize_dataset(ds, salt=salt)
    ds.save_as(str(dst), enforce_file_format=True)
    return image_info(ds)
