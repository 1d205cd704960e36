"""Training state (optimizer, RNG, counters) saved without pickles.

Tensors go to a safetensors file; the rest of the nested structure goes to
JSON with the tensors replaced by references. Dict keys keep their int/str
type so ``optimizer.load_state_dict`` gets back exactly what it saved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


def _split(obj: Any, tensors: dict[str, Any], path: str) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        key = path or "root"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _split(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    return obj


def _join(obj: Any, tensors: dict[str, Any]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _join(v, tensors) for k, v in obj["__dict__"]}
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def save_state(folder: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts/lists of tensors and JSON values) into ``folder``."""
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    skeleton = _split(state, tensors, "")
    save_file(tensors, str(folder / STATE_TENSORS))
    (folder / STATE_JSON).write_text(json.dumps(skeleton))


def load_state(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / STATE_TENSORS))
    return _join(json.loads((folder / STATE_JSON).read_text()), tensors)
