"""Magnitude pruning with a short fine-tune, reported honestly.

Two methods:

* ``unstructured``: the smallest-magnitude weights of all prunable layers
  together (one global threshold) are set to zero.
* ``channel``: in every prunable convolution, the output channels (filters)
  with the smallest L2 norm are set to zero; linear layers lose output rows
  the same way.

Prunable layers are the convolutions and linear layers of the backbone. The
classification head is left dense (it is small, and pruning it costs the most
accuracy); the masks are kept fixed during the fine-tune, so the sparsity
asked for is the sparsity delivered.

Decision (where the issue asks to say it plainly): the pruned weights stay in
the dense tensors of the bundle, so PyTorch and ONNX Runtime, whose CPU
kernels are dense, run a pruned model at the same speed as the original.
Unstructured sparsity buys a smaller *compressed* file, not speed; removing
whole channels would buy speed, but it changes the architecture, which a
transformers config (one width per stage) cannot express for the inner
channels of a block. :func:`prune_bundle` measures both latencies and says so
in its report.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from recog.errors import ConfigError
from recog.models.bundle import read_manifest, save_bundle
from recog.data.evalset import LabelledSet, batched, load_labelled

if TYPE_CHECKING:
    import torch

    from recog.tasks import Task

METHODS = ("unstructured", "channel")
Log = Callable[[str], None]
#: manifest fields that save_bundle writes itself or that do not carry over to a pruned copy.
_NOT_CARRIED = ("format", "format_version", "task", "labels", "preprocessing", "source_model", "recog_version",
                "created", "files", "exports", "metrics")


def prunable_parameters(model: "torch.nn.Module", task: "Task | None" = None) -> dict[str, "torch.nn.Parameter"]:
    """``{name: weight}`` of every Conv and Linear layer except the task's head (default: classify's)."""
    import torch

    from recog.tasks import get_task

    try:
        head = (task or get_task("classify")).head(model)
    except ConfigError:
        head = None
    head_params = {id(p) for p in head.parameters()} if isinstance(head, torch.nn.Module) else set()
    out = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and id(mod.weight) not in head_params:
            out[f"{mod_name}.weight"] = mod.weight
    return out


def magnitude_masks(params: dict[str, "torch.Tensor"], amount: float, method: str) -> dict[str, "torch.Tensor"]:
    """Boolean keep-masks (True = kept) that zero ``amount`` of the weights.

    Args:
        params: ``{name: weight}``; conv weights ``(out, in, kh, kw)``, linear ``(out, in)``.
        amount: fraction in [0, 1) to remove.
        method: ``unstructured`` (one global magnitude threshold) or
            ``channel`` (per layer, the output channels of smallest L2 norm).

    Example:
        >>> import torch
        >>> m = magnitude_masks({"w": torch.arange(10.0).reshape(10, 1)}, 0.3, "unstructured")
        >>> int((~m["w"]).sum())
        3
    """
    import torch

    if method not in METHODS:
        raise ConfigError(f"pruning method must be one of {', '.join(METHODS)}, got {method!r}.")
    if not 0.0 <= amount < 1.0:
        raise ConfigError(f"--amount is the fraction of weights to remove, in [0, 1); got {amount}.")
    if method == "unstructured":
        flat = torch.cat([p.detach().abs().flatten() for p in params.values()])
        k = int(round(amount * flat.numel()))
        if k == 0:
            return {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()}
        # rank-based so that ties never remove more than asked
        order = torch.argsort(flat, stable=True)
        keep = torch.ones(flat.numel(), dtype=torch.bool)
        keep[order[:k]] = False
        masks, start = {}, 0
        for n, p in params.items():
            masks[n] = keep[start:start + p.numel()].reshape(p.shape)
            start += p.numel()
        return masks
    masks = {}
    for n, p in params.items():
        norms = p.detach().flatten(1).norm(dim=1)
        k = int(round(amount * norms.numel()))
        keep = torch.ones(norms.numel(), dtype=torch.bool)
        keep[torch.argsort(norms, stable=True)[:k]] = False
        masks[n] = keep.reshape(-1, *([1] * (p.dim() - 1))).expand_as(p).clone()
    return masks


def apply_masks(params: dict[str, "torch.Tensor"], masks: dict[str, "torch.Tensor"]) -> None:
    """Zero the pruned weights in place (parameters without a mask are left alone)."""
    import torch

    with torch.no_grad():
        for n, p in params.items():
            if n in masks:
                p.mul_(masks[n].to(p.dtype))


def sparsity(model: "torch.nn.Module") -> dict[str, Any]:
    """Fraction of exact zeros among the prunable weights and among all parameters."""
    prunable = prunable_parameters(model)
    pz = sum(int((p == 0).sum()) for p in prunable.values())
    pn = sum(p.numel() for p in prunable.values())
    az = sum(int((p == 0).sum()) for p in model.parameters())
    an = sum(p.numel() for p in model.parameters())
    return {"prunable": round(pz / max(1, pn), 6), "overall": round(az / max(1, an), 6),
            "zero_weights": pz, "prunable_weights": pn, "parameters": an}


def finetune(model: "torch.nn.Module", masks: dict[str, "torch.Tensor"], data: LabelledSet, *, epochs: float = 1.0,
             lr: float = 3e-4, batch_size: int = 32, seed: int = 0, log: Log | None = None) -> dict[str, Any]:
    """Short fine-tune (AdamW, cross-entropy) that keeps the pruned weights at zero.

    Args:
        epochs: passes over ``data`` (fractions allowed).
    """
    import torch

    if data.y is None:
        raise ConfigError("fine-tuning needs labelled images.")
    params = prunable_parameters(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    steps = max(1, int(round(epochs * len(data) / batch_size)))
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    model.train()
    losses = []
    order: list[int] = []
    for step in range(steps):
        if len(order) < batch_size:
            order += rng.permutation(len(data)).tolist()
        idx, order = order[:batch_size], order[batch_size:]
        logits = _classify().forward(model, x[idx])
        loss = torch.nn.functional.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        apply_masks(params, masks)
        losses.append(float(loss.detach()))
        if log and (step + 1) % max(1, steps // 5) == 0:
            log(f"fine-tune step {step + 1}/{steps}: loss {np.mean(losses[-10:]):.4f}")
    model.eval()
    return {"steps": steps, "epochs": epochs, "lr": lr, "batch_size": batch_size, "images": len(data),
            "final_loss": round(float(np.mean(losses[-10:])), 6)}


@dataclass
class PruneResult:
    """Figures of one pruning run (also written to the new bundle's recog.json as ``pruning``)."""

    out: Path
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), **self.report}


def _accuracy(model, data: LabelledSet | None) -> float | None:
    import torch

    if data is None or data.y is None:
        return None
    with torch.inference_mode():
        logits = batched(data.x, lambda b: _classify().forward(model, torch.from_numpy(b)).numpy())
    return round(float((logits.argmax(1) == data.y).mean()), 6)


def _latency_ms(model, size: tuple[int, int], budget_s: float = 1.0) -> float:
    import time

    import torch

    x = torch.randn(1, 3, *size)
    times = []
    with torch.inference_mode():
        for _ in range(2):
            _classify().forward(model, x)
        start = time.perf_counter()
        while len(times) < 5 or (time.perf_counter() - start < budget_s and len(times) < 200):
            t = time.perf_counter()
            _classify().forward(model, x)
            times.append(1000.0 * (time.perf_counter() - t))
    return float(np.median(times))


def _classify() -> "Task":
    from recog.tasks import get_task

    return get_task("classify")


def _state_bytes(model) -> tuple[int, int]:
    """(raw fp32 bytes, zlib-compressed bytes) of the model's tensors: what a zipped bundle would weigh."""
    raw = b"".join(t.detach().contiguous().numpy().tobytes() for t in model.state_dict().values()
                   if t.dtype.is_floating_point)
    return len(raw), len(zlib.compress(raw, 6))


def prune_bundle(path: str | Path, out: str | Path, *, amount: float, method: str = "unstructured",
                 data: str | Path | None = None, epochs: float = 1.0, lr: float = 3e-4, batch_size: int = 32,
                 train_size: int = 2000, val_size: int = 500, threads: int | None = None,
                 log: Log | None = None) -> PruneResult:
    """Prune a bundle's weights, fine-tune briefly, and write a new bundle with a report.

    Args:
        path: the original bundle (unchanged).
        out: folder of the pruned bundle.
        amount: fraction of prunable weights (or channels) to remove, in [0, 1).
        method: ``unstructured`` or ``channel``.
        data: labelled folder: its ``train`` split fine-tunes, its ``val``
            (or ``test``) split measures accuracy. None = no fine-tune and no
            accuracy (sparsity, size and speed are still reported).
        epochs: fine-tune passes over the train images (0 = none).

    Returns:
        :class:`PruneResult` whose ``report`` has ``sparsity``, ``size``,
        ``accuracy``, ``latency_ms`` and a plain-words ``speed_note``.
    """
    import torch

    from recog.data import load_dataset
    from recog.tasks import require_task

    say = log or (lambda _msg: None)
    path, out = Path(path), Path(out)
    if path.resolve() == out.resolve():
        raise ConfigError("--out must differ from the original bundle: pruning writes a new bundle.")
    manifest = read_manifest(path)
    require_task(manifest, "classify", command="recog prune")
    if threads:
        torch.set_num_threads(threads)
    train_set = val_set = None
    if data is not None:
        ds = load_dataset(data)
        val_split = next((s for s in ("val", "test") if ds.split(s)), None)
        train_set = load_labelled(data, manifest.labels, manifest.preprocessing, split="train", limit=train_size)
        val_set = (load_labelled(data, manifest.labels, manifest.preprocessing, split=val_split, limit=val_size)
                   if val_split else train_set)
        say(f"fine-tune on {len(train_set)} images; accuracy on {len(val_set)} ({val_set.source})")

    original = _classify().load(manifest)
    model = _classify().load(manifest)
    size = manifest.preprocessing.size
    acc_before = _accuracy(original, val_set)
    params = prunable_parameters(model)
    masks = magnitude_masks(params, amount, method)
    apply_masks(params, masks)
    acc_pruned = _accuracy(model, val_set)
    tuned = None
    if train_set is not None and epochs > 0:
        say(f"fine-tuning {epochs:g} epoch(s) ...")
        tuned = finetune(model, masks, train_set, epochs=epochs, lr=lr, batch_size=batch_size, log=say)
    acc_after = _accuracy(model, val_set)

    say("timing dense kernels before and after ...")
    lat_before = _latency_ms(original, size)
    lat_after = _latency_ms(model, size)
    raw_before, zip_before = _state_bytes(original)
    raw_after, zip_after = _state_bytes(model)
    speedup = lat_before / max(lat_after, 1e-9)
    if speedup < 1.1:
        note = (f"no speed gain ({lat_before:.2f} ms → {lat_after:.2f} ms at batch 1, torch): the pruned weights "
                "are zeros inside dense tensors and PyTorch and ONNX Runtime run dense CPU kernels, so they cost "
                "the same time. What pruning buys here is a smaller compressed file "
                f"({zip_before / 1e6:.2f} MB → {zip_after / 1e6:.2f} MB zlib) and a starting point for "
                "sparse or channel-removing runtimes.")
    else:
        note = f"{speedup:.2f}x faster at batch 1 ({lat_before:.2f} ms → {lat_after:.2f} ms, torch)."
    report = {
        "method": method, "amount": amount, "source_bundle": str(path),
        "sparsity": sparsity(model),
        "size": {"dense_bytes_before": raw_before, "dense_bytes_after": raw_after,
                 "compressed_bytes_before": zip_before, "compressed_bytes_after": zip_after},
        "accuracy": {"before": acc_before, "after_pruning": acc_pruned, "after_finetune": acc_after,
                     "images": None if val_set is None else len(val_set),
                     "data": None if val_set is None else val_set.source},
        "finetune": tuned,
        "latency_ms": {"backend": "torch", "batch": 1, "before": round(lat_before, 4),
                       "after": round(lat_after, 4), "speedup": round(speedup, 3)},
        "speed_note": note,
    }
    extra = {k: v for k, v in manifest.raw.items() if k not in _NOT_CARRIED}  # carries fields through unread
    extra["pruning"] = report
    if acc_after is not None:
        extra["metrics"] = {"val_accuracy": acc_after, "pruned_from_val_accuracy": acc_before}
    save_bundle(out, model, labels=list(manifest.labels), preprocessing=manifest.preprocessing,
                task=manifest.task, source_model=manifest.source_model, extra=extra)
    _carry_feature_reference(manifest, out)
    bundle_bytes = (out / "model.safetensors").stat().st_size
    report["size"]["bundle_weights_bytes"] = bundle_bytes
    return PruneResult(out=out, report=report)


def _carry_feature_reference(manifest: Any, out: Path) -> None:
    """Copy the source bundle's OOD feature bank (:mod:`recog.monitor.features`) with its record, as the
    logit reference is carried: both describe the unpruned weights, which pruning keeps close."""
    import shutil

    from recog.models.bundle import update_bundle
    from recog.models.checks import bundle_file

    name = ((manifest.reference or {}).get("features") or {}).get("file")
    if name in manifest.files:
        shutil.copyfile(bundle_file(manifest.path, name), bundle_file(out, name))
        update_bundle(out, add_files=[name])


__all__ = ["METHODS", "PruneResult", "apply_masks", "finetune", "magnitude_masks", "prunable_parameters",
           "prune_bundle", "sparsity"]
