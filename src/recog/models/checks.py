"""Checks on untrusted model files, made before any loader reads them.

A bundle, a ``--model`` folder or a ``--weights`` file comes from outside, so
nothing in it reaches ``from_pretrained``, ``safetensors`` or a network
builder before these checks:

- :func:`check_safetensors`: the file is safetensors (8-byte little-endian
  header length, a JSON header whose tensors lie inside the file), never a
  pickle under a safetensors name: pickles can run code and are never loaded.
- :func:`read_config`: ``config.json`` is at most :data:`MAX_CONFIG_BYTES`
  (a real one is a few KB) and is a JSON object.
- :func:`check_network_config`: the network the config describes is built on
  the ``meta`` device (shapes only, nothing allocated) and refused when it has
  more than :data:`MAX_PARAMETERS` parameters or :data:`MAX_MODULES` modules;
  layer counts above :data:`MAX_LAYERS` are refused before building; a native
  config's keys and value types are checked against its builder's signature.
- :func:`config_outputs` / :func:`head_outputs`: the output count the labels
  must match.
"""

from __future__ import annotations

import json
import logging
import threading
import typing
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any, Callable

from recog.errors import BundleError, BundleInvalidError, ModelNotFoundError, RecogError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Largest accepted config.json (and sharded-weights index): real ones are a few KB.
MAX_CONFIG_BYTES = 1 << 20
#: Most parameters a config may describe: 8 GB of float32 weights.
MAX_PARAMETERS = 2_000_000_000
#: Most modules built while counting: the largest image models have a few thousand.
MAX_MODULES = 5_000
#: Largest sum of layer counts (``num_hidden_layers``, ``depths``, ...) in a config.
MAX_LAYERS = 1_000
#: Largest safetensors JSON header (the safetensors library's own limit).
MAX_SAFETENSORS_HEADER = 100_000_000

ErrorType = Callable[..., RecogError]

_SAFETENSORS_HINT = ("recog loads only safetensors weights; save them with save_pretrained(..., "
                     "safe_serialization=True) or safetensors.torch.save_file")


# --------------------------------------------------------------------------- weights


def _not_safetensors_reason(head: bytes, declared: int, size: int) -> str:
    if head[:4] == b"PK\x03\x04":
        return "it is a ZIP archive, the torch.save format: a Python pickle, which can run code and is never loaded"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return "it is a Python pickle, which can run code and is never loaded"
    return f"its first 8 bytes declare a {declared:,}-byte header in a {size:,}-byte file"


def check_safetensors(path: str | Path, *, error: ErrorType = BundleInvalidError,
                      hint: str = _SAFETENSORS_HINT) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked without reading any tensor.

    Raises ``error`` (one line, naming the file and the reason) when the file
    is not safetensors: shorter than 8 bytes, a pickle or ZIP, a header length
    past the end of the file, a header that is not a JSON object, or a tensor
    whose dtype, shape or offsets are malformed or point outside the data.

    Example:
        >>> header = check_safetensors("bundle/model.safetensors")   # doctest: +SKIP
        >>> header["classifier.1.weight"]["shape"]                   # doctest: +SKIP
        [3, 16]
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            declared = int.from_bytes(head, "little") if len(head) == 8 else 0
            raw = fh.read(declared) if 0 < declared <= min(size - 8, MAX_SAFETENSORS_HEADER) else None
    except OSError as exc:
        raise error(f"{path}: cannot read the weights file ({exc.strerror or exc}).", hint=hint) from exc
    if size < 8:
        why = f"{size} bytes, shorter than the 8-byte length that starts a safetensors file"
    elif raw is None:
        why = _not_safetensors_reason(head, declared, size)
    else:
        why = _header_problem(raw, size - 8 - declared)
    if why is None:
        return json.loads(raw)
    raise error(f"{path}: not a safetensors file ({why}); nothing was loaded.", hint=hint)


def _header_problem(raw: bytes, data_len: int) -> str | None:
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "its header is not JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        ok = isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
        shape, offsets = (entry.get("shape"), entry.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
        ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
        if not ok:
            return f"tensor {str(name)[:80]!r} has no valid dtype, shape and data_offsets"
        if not 0 <= offsets[0] <= offsets[1] <= data_len:
            return f"tensor {str(name)[:80]!r} lies outside the file's {data_len:,} data bytes"
    return None


def weight_files(folder: Path, *, error: ErrorType) -> list[Path]:
    """The safetensors weight files of a transformers model folder (one file, or the shards of an index).

    Raises:
        ModelNotFoundError: no safetensors weights (the message names any pickled weights found).
    """
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        weight_map = read_config(index, error=error).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise error(f"{index}: expected a 'weight_map' of tensor names to shard files.")
        return [bundle_file(folder, name, error=error) for name in sorted(set(map(str, weight_map.values())))]
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    found = (f"; it has {', '.join(pickled)} (pickled weights, which recog never loads: they can run code)"
             if pickled else "")
    raise ModelNotFoundError(f"{folder}: no model.safetensors in this model folder{found}.",
                             hint="convert the weights to safetensors (save_pretrained(..., "
                                  "safe_serialization=True)), or pass --weights none to train from scratch")


def bundle_file(root: str | Path, name: Any, *, error: Callable[..., BundleError] = BundleInvalidError) -> Path:
    """``root / name`` when it stays inside the folder ``root``; the one check for every path a bundle names.

    Refused, before the path is opened or hashed (so a manifest cannot use the
    loader as a hash oracle for files elsewhere): a name that is not a
    non-empty string, an absolute path or drive, a ``..`` component, a
    backslash or NUL, and a path that resolves outside ``root`` through a
    symlink. A symlink to another file inside the folder is fine, as is a
    bundle folder that is itself reached through a symlink.

    Example:
        >>> bundle_file("runs/x/best", "model.onnx")            # doctest: +SKIP
        PosixPath('runs/x/best/model.onnx')
        >>> bundle_file("runs/x/best", "../../etc/passwd")      # doctest: +SKIP
        Traceback (most recent call last):
        BundleInvalidError: ...
    """
    root = Path(root)
    where = f"{root}: the file name {name!r} recorded in recog.json"
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise error(f"{where} is not a plain relative file name (it would point outside the bundle).")
    rel = PurePosixPath(name)
    if rel.is_absolute() or PureWindowsPath(name).drive or ".." in rel.parts:
        raise error(f"{where} points outside the bundle (absolute paths and '..' are refused).",
                    hint="a bundle lists only files inside its own folder; restore recog.json from the original")
    path = root / rel
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and real_root not in real.parents:
        raise error(f"{where} is a symlink that leads outside the bundle (to {real}).",
                    hint="copy the file into the bundle folder instead of linking to it")
    return path


# --------------------------------------------------------------------------- configs


def read_config(path: str | Path, *, error: ErrorType = BundleInvalidError) -> dict[str, Any]:
    """A config.json as a dict, refusing files over :data:`MAX_CONFIG_BYTES` before parsing them."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise error(f"{path}: {size:,} bytes is over the {MAX_CONFIG_BYTES:,}-byte cap for a config file "
                        "(a real one is a few KB).", hint="re-save the model; remove embedded data from its config")
        config = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not a readable JSON file ({exc}).") from exc
    if not isinstance(config, dict):
        raise error(f"{path}: expected a JSON object, got {type(config).__name__}.")
    return config


def _layer_count(value: Any, key: str = "") -> int:
    """Sum of the integer layer counts in a (nested) config: keys containing ``layers`` or named ``depth(s)``."""
    if isinstance(value, dict):
        return sum(_layer_count(v, str(k)) for k, v in value.items())
    counted = "layers" in key.lower() or key.lower() in ("depth", "depths")
    if isinstance(value, list):
        return sum(_layer_count(v, key) for v in value)
    return value if counted and type(value) is int and value > 0 else 0


class _TooManyModules(Exception):
    pass


def _count_on_meta(build: Callable[[], "torch.nn.Module"]) -> int:
    """Parameters of the network ``build`` makes, built on the meta device; aborts past MAX_MODULES modules."""
    import torch
    from torch.nn.modules import module as torch_module

    owner, built = threading.get_ident(), [0]

    def on_module(parent: Any, name: str, child: Any) -> None:
        if threading.get_ident() == owner:
            built[0] += 1
            if built[0] > MAX_MODULES:
                raise _TooManyModules

    handle = torch_module.register_module_module_registration_hook(on_module)
    try:
        with torch.device("meta"):
            model = build()
    finally:
        handle.remove()
    return sum(p.numel() for p in model.parameters())


def _native_kwargs(config: dict[str, Any], where: str, error: ErrorType) -> dict[str, Any]:
    import importlib
    import inspect

    from recog.models import native

    name = config.get(native.CONFIG_KEY)
    if name not in native.ARCHITECTURES:
        raise error(f"{where}: unknown native architecture {name!r}.", hint="upgrade recog, or re-export the bundle")
    module, attr = native.ARCHITECTURES[name].split(":")
    builder = getattr(importlib.import_module(module), attr)
    params = inspect.signature(builder).parameters
    hints = typing.get_type_hints(builder)
    kwargs = {k: v for k, v in config.items() if k != native.CONFIG_KEY}
    for key, value in kwargs.items():
        if key not in params:
            raise error(f"{where}: unknown key {key!r} for architecture {name!r}; expected "
                        f"{', '.join(params)}.")
        expected = hints.get(key)
        if expected is not None and not _is_instance(value, expected):
            raise error(f"{where}: {key} must be {getattr(expected, '__name__', expected)}, got {value!r}.")
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise error(f"{where}: architecture {name!r} needs {', '.join(missing)}.")
    return kwargs


def _is_instance(value: Any, expected: Any) -> bool:
    options = typing.get_args(expected) or (expected,)
    for option in options:
        if option is float and type(value) in (int, float):
            return True
        if isinstance(option, type) and isinstance(value, option) and not (type(value) is bool and option is not bool):
            return True
    return False


def check_network_config(config: dict[str, Any], *, where: str, num_labels: int | None = None,
                         error: ErrorType = BundleInvalidError) -> int | None:
    """Parameter count of the network ``config`` describes, refusing it above the caps; nothing allocated.

    Args:
        config: a parsed config.json (transformers, or native with ``recog_architecture``).
        where: the file, for messages.
        num_labels: the head size the caller will build (None: the config's own).

    Returns:
        The parameter count, or None for a transformers architecture that
        cannot be built on the meta device (logged; the other checks still ran).
    """
    from recog.models import native

    layers = _layer_count(config)
    if layers > MAX_LAYERS:
        raise error(f"{where}: the config asks for {layers:,} layers in all; the cap is {MAX_LAYERS:,}.",
                    hint="check num_hidden_layers / depths in config.json")
    if native.CONFIG_KEY in config:
        kwargs = _native_kwargs(config, where, error)
        if num_labels is not None:
            kwargs["num_classes"] = num_labels
        build = lambda: native.build({native.CONFIG_KEY: config[native.CONFIG_KEY], **kwargs})  # noqa: E731
    else:
        build = _transformers_builder(config, where, num_labels, error)
    try:
        count = _count_on_meta(build)
    except _TooManyModules:
        raise error(f"{where}: the network it describes has more than {MAX_MODULES:,} modules.",
                    hint="check the layer counts in config.json") from None
    except NotImplementedError as exc:  # an operation with no meta kernel: count unknown, not refused
        log.warning("%s: parameters not counted (cannot build on the meta device: %s)", where, exc)
        return None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RuntimeError, ZeroDivisionError) as exc:
        if isinstance(exc, RuntimeError) and "meta" in str(exc):
            log.warning("%s: parameters not counted (cannot build on the meta device: %s)", where, exc)
            return None
        raise error(f"{where}: does not describe a network that can be built ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}).") from exc
    if count > MAX_PARAMETERS:
        raise error(f"{where}: the network it describes has {count:,} parameters, over the cap of "
                    f"{MAX_PARAMETERS:,} (counted on the meta device; nothing was allocated).",
                    hint="check hidden sizes, layer counts and num_labels in config.json")
    return count


def _transformers_builder(config: dict[str, Any], where: str, num_labels: int | None,
                          error: ErrorType) -> Callable[[], "torch.nn.Module"]:
    from transformers import CONFIG_MAPPING, AutoModel, AutoModelForImageClassification

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise error(f"{where}: unknown or missing model_type {model_type!r}.",
                    hint="pass a transformers model folder (its config.json names a model_type)")
    try:
        cfg = CONFIG_MAPPING[model_type].from_dict(config)
        if num_labels is not None:
            cfg.num_labels = num_labels
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise error(f"{where}: not a valid {model_type} config ({exc}).") from exc

    def build() -> "torch.nn.Module":
        try:
            return AutoModelForImageClassification.from_config(cfg)
        except ValueError:  # not an image classifier (a backbone, a detector): count the base model
            return AutoModel.from_config(cfg)

    return build


def config_outputs(config: dict[str, Any]) -> int | None:
    """Number of outputs the config's classification head has (``id2label`` / ``num_labels`` / ``num_classes``)."""
    from recog.models import native

    if native.CONFIG_KEY in config:
        value = config.get("num_classes")
    elif isinstance(config.get("id2label"), dict):
        value = len(config["id2label"])
    else:
        value = config.get("num_labels")
    return value if type(value) is int else None


def head_outputs(model: "torch.nn.Module") -> int | None:
    """``out_features`` of the last linear layer of ``model.classifier``, or None when it has none."""
    import torch

    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Module):
        return None
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    return linears[-1].out_features if linears else None


def check_label_count(n_labels: int, outputs: int | None, *, where: str,
                      error: ErrorType = BundleInvalidError) -> None:
    """Refuse labels that do not name the network's outputs one to one."""
    if outputs is not None and n_labels != outputs:
        raise error(f"{where}: recog.json lists {n_labels:,} labels but the network has {outputs:,} outputs; "
                    "each label must name one output.",
                    hint="restore recog.json from the original bundle, or retrain with these labels")


# --------------------------------------------------------------------------- folders


def check_model_folder(folder: Path, *, num_labels: int | None, error: ErrorType) -> None:
    """A transformers model folder: bounded config.json, safetensors weights, bounded network."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelNotFoundError(f"{folder}: a model folder needs config.json and model.safetensors.")
    config = read_config(config_path, error=error)
    for path in weight_files(folder, error=error):
        check_safetensors(path, error=error)
    check_network_config(config, where=str(config_path), num_labels=num_labels, error=error)


def check_cached_hub_model(hub_id: str, *, num_labels: int | None, error: ErrorType) -> None:
    """Check the config and weights of a Hub model already in the local cache (a no-op for what is not)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        config_path = try_to_load_from_cache(hub_id, "config.json")
        weights_path = try_to_load_from_cache(hub_id, "model.safetensors")
    except (ImportError, ValueError, OSError):
        return
    if isinstance(weights_path, str):
        check_safetensors(weights_path, error=error)
    if isinstance(config_path, str):
        check_network_config(read_config(config_path, error=error), where=config_path, num_labels=num_labels,
                             error=error)
