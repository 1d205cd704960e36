"""The model bundle: a directory, never a pickle.

```
my-model/
  recog.json         format version, task, labels, preprocessing, source model,
                     training config, metrics, dataset fingerprint, package
                     version, sha256 of every model file
  config.json        the transformers config
  model.safetensors  weights
  model.onnx ...     optional exports, recorded in recog.json "files" when added
  report/            optional evaluation output (not hashed: it is not loaded)
```

:func:`read_manifest` checks every hash recorded in ``files`` and refuses a
bundle whose files changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from recog.clock import utc_now
from recog.errors import BundleError, BundleIntegrityError, BundleInvalidError, ModelNotFoundError
from recog.models.checks import bundle_file
from recog.types import ModelInfo, Preprocessing
from recog.io.digest import sha256_file  # noqa: F401  (re-exported: bundle hashes)

if TYPE_CHECKING:
    import torch

BUNDLE_FORMAT_VERSION = 1
MANIFEST = "recog.json"
REQUIRED_FILES = ("config.json", "model.safetensors")
#: Largest accepted recog.json (100,000 labels take about 2 MB).
MAX_MANIFEST_BYTES = 64 << 20


@dataclass(frozen=True)
class BundleManifest:
    """The parsed, verified contents of ``recog.json``: the one place its fields are read.

    Every consumer reads the manifest through these attributes, never through
    ``raw`` keys; ``raw`` is kept only so that updates can carry unknown
    (newer) fields through unchanged.
    """

    path: Path
    task: str
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    files: dict[str, str]
    raw: dict[str, Any] = field(repr=False)

    @property
    def source_model(self) -> str:
        return str(self.raw.get("source_model") or "")

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.raw.get("metrics") or {})

    @property
    def exports(self) -> dict[str, dict[str, Any]]:
        """Export name (``onnx``, ``onnx-int8``) → its record: file, parity, verified, speed_rank..."""
        return {k: dict(v) for k, v in (self.raw.get("exports") or {}).items()}

    @property
    def calibration(self) -> dict[str, Any]:
        return dict(self.raw.get("calibration") or {})

    @property
    def temperature(self) -> float:
        """Softmax temperature fitted at training (1.0 when none was)."""
        return float(self.calibration.get("temperature", 1.0))

    @property
    def dataset(self) -> dict[str, Any]:
        """Where the training data came from: fingerprint, source, counts."""
        return dict(self.raw.get("dataset") or {})

    @property
    def task_record(self) -> dict[str, Any]:
        """The task's own section of recog.json, stored under the task's name (``"anomaly": {...}``)."""
        return dict(self.raw.get(self.task) or {})

    @property
    def training(self) -> dict[str, Any]:
        return dict(self.raw.get("training") or {})

    @property
    def reference(self) -> dict[str, Any] | None:
        """Statistics of the training data for OOD scores and drift (:mod:`recog.monitor.reference`)."""
        ref = self.raw.get("reference")
        return ref if isinstance(ref, dict) else None

    @property
    def lineage(self) -> dict[str, Any] | None:
        """Where a retrained bundle came from: parent bundle and data fingerprints (``recog retrain``)."""
        return self.raw.get("lineage")

    @property
    def version(self) -> str:
        """Short content id over everything that decides answers: changes whenever an answer can.

        Covers the task, the labels (names and order), the preprocessing, the
        calibration and the sha256 of every file; not the metrics, dates or
        other records, which change no answer. recog.json is not signed: this
        makes an edit visible (the served version changes), it does not stop one.
        """
        semantic = {"task": self.task, "labels": list(self.labels), "preprocessing": self.preprocessing.to_dict(),
                    "calibration": self.calibration, "files": self.files}
        blob = json.dumps(semantic, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(task=self.task, labels=self.labels, preprocessing=self.preprocessing,
                         source_model=self.source_model, metrics=self.metrics)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".recog-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save_bundle(out: str | Path, model: "torch.nn.Module", *, labels: list[str], preprocessing: Preprocessing,
                task: str = "classify", source_model: str = "", extra: dict[str, Any] | None = None,
                write_extra: Callable[[Path], None] | None = None) -> Path:
    """Write ``model`` as a bundle at ``out``, replacing any bundle there atomically.

    The bundle is written to a sibling temporary folder and renamed into place,
    so an interruption never leaves a half-written bundle.

    Args:
        out: bundle folder to create.
        model: a transformers ``PreTrainedModel``.
        labels: class names in output order.
        preprocessing: the input record every consumer reads back.
        extra: more manifest fields (``training``, ``metrics``, ``dataset``...).
        write_extra: called with the temporary folder to add files that are
            not part of the model (training state); they are not hashed.
    """
    from recog import __version__

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-tmp-"))
    try:
        save_network(model, tmp)
        for stray in tmp.iterdir():
            if stray.name not in REQUIRED_FILES and stray.name != "generation_config.json":
                raise BundleError(f"unexpected file {stray.name} written by save_pretrained.")
        manifest = {
            "format": "recog-bundle",
            "format_version": BUNDLE_FORMAT_VERSION,
            "task": task,
            "labels": list(labels),
            "preprocessing": preprocessing.to_dict(),
            "source_model": source_model,
            "recog_version": __version__,
            "created": utc_now(),
            **(extra or {}),
        }
        manifest["files"] = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        _write_json_atomic(tmp / MANIFEST, manifest)
        if write_extra is not None:
            write_extra(tmp)
        for stale in out.parent.glob(f".{out.name}-old-*"):  # left by an interrupted replace
            shutil.rmtree(stale, ignore_errors=True)
        if out.exists():
            # rename(2) may replace an empty folder: a fresh one per call, so an
            # interruption during the clean-up below never blocks the next save.
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-old-"))
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_manifest(path: str | Path, *, verify: bool = True, replacing: tuple[str, ...] | list[str] = ()) -> BundleManifest:
    """Parse ``recog.json`` and (by default) check the sha256 of every listed file.

    Every file name in ``files`` and every export's ``file`` must stay inside
    the folder (see :func:`bundle_file`); this is checked even with
    ``verify=False``.

    Raises:
        ModelNotFoundError: the folder or its recog.json does not exist.
        BundleError: malformed manifest or unknown format version.
        BundleInvalidError: a listed file lies outside the bundle (``..``, an
            absolute path, a symlink leading out), or recog.json is over
            :data:`MAX_MANIFEST_BYTES`.
        BundleIntegrityError: a listed file is missing or its hash changed.
    """
    path = Path(path)
    mpath = path / MANIFEST
    if not path.is_dir():
        raise ModelNotFoundError(f"{path}: no such model bundle folder.",
                                 hint="pass the folder written by `recog train` (e.g. runs/NAME/best)")
    if not mpath.is_file():
        raise BundleError(f"{path}: not a recog bundle (no {MANIFEST}).",
                          hint="pass a folder written by `recog train`; a plain transformers folder can be "
                               "used with `recog train --model FOLDER`")
    size = mpath.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise BundleInvalidError(f"{mpath}: {size:,} bytes is over the {MAX_MANIFEST_BYTES:,}-byte cap.")
    try:
        raw = json.loads(mpath.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc}).") from exc
    if not isinstance(raw, dict):
        raise BundleError(f"{mpath}: expected a JSON object, got {type(raw).__name__}.")
    version = raw.get("format_version")
    if raw.get("format") != "recog-bundle" or not isinstance(version, int):
        raise BundleError(f"{mpath}: expected format 'recog-bundle' with an integer format_version.")
    if version > BUNDLE_FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {version} is newer than this recog understands "
                          f"({BUNDLE_FORMAT_VERSION}).", hint="upgrade recog")
    files = raw.get("files") or {}
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise BundleError(f"{mpath}: 'files' must map file names to sha256 hex digests.")
    for required in REQUIRED_FILES:
        if required not in files:
            raise BundleError(f"{path}: recog.json does not list {required}.")
    fpaths = {name: bundle_file(path, name) for name in files}
    exports = raw.get("exports") or {}
    if not isinstance(exports, dict) or not all(isinstance(v, dict) for v in exports.values()):
        raise BundleError(f"{mpath}: 'exports' must map export names to records.")
    for export, entry in exports.items():
        if entry.get("file") is not None:  # a refused export records file: null
            try:
                bundle_file(path, entry["file"])
            except BundleInvalidError as exc:
                raise BundleInvalidError(f"{exc.message} (exports.{export}.file)", hint=exc.hint) from None
    if verify:
        for name, digest in files.items():
            if name in replacing:  # being rewritten by update_bundle (a second export)
                continue
            fpath = fpaths[name]
            if not fpath.is_file():
                raise BundleIntegrityError(f"{path}: {name} is listed in recog.json but missing.",
                                           hint="restore the bundle from its original copy")
            if sha256_file(fpath) != digest:
                raise BundleIntegrityError(
                    f"{path}: {name} does not match the sha256 recorded in recog.json; the bundle was "
                    "modified after it was written.",
                    hint="restore the bundle from its original copy, or retrain/re-export it")
    try:
        prep = Preprocessing.from_dict(raw["preprocessing"])
        labels = tuple(str(x) for x in raw["labels"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{mpath}: bad labels or preprocessing ({exc}).") from exc
    return BundleManifest(path=path, task=raw.get("task", "classify"), labels=labels, preprocessing=prep,
                          files=dict(files), raw=raw)


def update_bundle(path: str | Path, *, add_files: list[str] | tuple[str, ...] = (),
                  remove_files: list[str] | tuple[str, ...] = (), updates: dict[str, Any] | None = None) -> BundleManifest:
    """Record new files (hashing them) and merge ``updates`` into recog.json.

    Call after writing e.g. ``model.onnx`` into the bundle. The other files
    are verified first, so an export never blesses a tampered bundle; the ones
    being added or removed may differ from their old record (a re-export).
    """
    manifest = read_manifest(path, replacing=(*add_files, *remove_files))
    raw = dict(manifest.raw)
    files = dict(manifest.files)
    for name in remove_files:
        files.pop(name, None)
    for name in add_files:
        fpath = bundle_file(path, name)
        if not fpath.is_file():
            raise BundleError(f"{fpath}: cannot record a file that does not exist.")
        files[name] = sha256_file(fpath)
    raw.update(updates or {})
    raw["files"] = files
    _write_json_atomic(Path(path) / MANIFEST, raw)
    return read_manifest(path, verify=False)


def save_network(model: "torch.nn.Module", folder: Path) -> None:
    """Write ``config.json`` + ``model.safetensors`` for a transformers model or a native network."""
    from recog.models import native

    if native.is_native(model):
        native.save(model, folder)
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(str(folder), safe_serialization=True)


def load_network(manifest: BundleManifest) -> "torch.nn.Module":
    """The bundle's network in eval mode, from config.json + model.safetensors.

    Native networks (``recog_architecture`` in config.json) are rebuilt by
    :mod:`recog.models.native`; transformers models go through
    ``from_pretrained`` (never remote code, never pickles), which also maps
    checkpoint key names between transformers versions.

    Before anything is built (:mod:`recog.models.checks`): config.json is
    under its size cap, model.safetensors is safetensors, the label count
    equals the config's outputs and the network is under the parameter cap;
    after building, the label count equals the head's ``out_features``.

    Raises:
        BundleInvalidError: one of those checks refused the bundle (the message names both numbers).
    """
    from recog.models import checks, native

    config = checks.read_config(manifest.path / "config.json")
    checks.check_safetensors(manifest.path / "model.safetensors")
    if manifest.labels:
        checks.check_label_count(len(manifest.labels), checks.config_outputs(config), where=str(manifest.path))
    checks.check_network_config(config, where=str(manifest.path / "config.json"))
    model = native.load(manifest.path, config) if native.CONFIG_KEY in config else _load_transformers(manifest)
    if manifest.labels:
        checks.check_label_count(len(manifest.labels), checks.head_outputs(model), where=str(manifest.path))
    return model.eval()


def _load_transformers(manifest: BundleManifest) -> "torch.nn.Module":
    from transformers import AutoModelForImageClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForImageClassification.from_pretrained(
            str(manifest.path), local_files_only=True, use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError, RuntimeError) as exc:
        raise BundleError(f"{manifest.path}: model.safetensors does not load with config.json ({exc}).") from exc
    return model
