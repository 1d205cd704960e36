"""Fitting an anomaly model on good images only: features, coreset, threshold.

:func:`fit_anomaly` does the whole fit without writing anything:

1. the good images (a folder, searched recursively, or a CSV with a ``path``
   column and optionally ``label``: only ``good`` rows are used) are split
   (seeded) into **bank** images and **held-out** images (``holdout`` of
   them, at least :data:`MIN_HELD_OUT`);
2. bank images are decoded through :func:`recog.data.decode.decode_images`
   (the one decode loop; unreadable files are skipped and reported) in
   batches, and their patch features extracted;
3. a greedy k-center coreset of all bank patches becomes the memory bank
   (:mod:`recog.anomaly.coreset`);
4. the held-out images are scored exactly as a prediction scores them, and
   the threshold is their ``1 - false_reject_rate`` quantile (the ``higher``
   order statistic: with fewer than ``1 / false_reject_rate`` held-out
   images, that is their maximum).

The held-out images stay out of the bank: their scores are what good parts
the model has never seen score, which is what the threshold must bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from recog.data.manifest import open_source, read_rows, resolve
from recog.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    import torch

    from recog.anomaly.network import PatchCoreNet
    from recog.types import Preprocessing

#: Fewest held-out good images a threshold is set from.
MIN_HELD_OUT = 2
#: Fewest good images in the memory bank.
MIN_BANK = 2
#: Fewest good images a fit needs.
MIN_IMAGES = MIN_HELD_OUT + MIN_BANK


@dataclass(frozen=True)
class FitOptions:
    """How an anomaly model is fitted (the defaults are the measured choices in the README).

    Attributes:
        holdout: fraction of the good images held out to set the threshold (at least 2 images).
        false_reject_rate: share of good parts allowed to fail; the threshold is the held-out
            scores' ``1 - false_reject_rate`` quantile.
        coreset_ratio: fraction of all bank patches kept in the memory bank.
        max_bank: cap on the bank's rows (search latency grows linearly with it).
        sigma: Gaussian smoothing of the heatmap, in model-input pixels.
    """

    holdout: float = 0.1
    false_reject_rate: float = 0.01
    coreset_ratio: float = 0.02
    max_bank: int | None = 2048
    sigma: float = 4.0

    def __post_init__(self) -> None:
        checks = [(0 < self.holdout < 1, "holdout must be in (0, 1)"),
                  (0 <= self.false_reject_rate < 1, "false_reject_rate must be in [0, 1)"),
                  (0 < self.coreset_ratio <= 1, "coreset_ratio must be in (0, 1]"),
                  (self.max_bank is None or self.max_bank >= 1, "max_bank must be >= 1"),
                  (self.sigma >= 0, "sigma must be >= 0")]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"invalid anomaly fit option: {msg}.")


@dataclass
class AnomalyFit:
    """A fitted anomaly model, not yet written: :func:`recog.tasks.anomaly.save_fit` writes it."""

    model: "PatchCoreNet"
    preprocessing: "Preprocessing"
    source: str
    weights: str
    threshold: float
    calibration: dict[str, Any]
    record: dict[str, Any]
    held_out_scores: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def good_images(data: str | Path) -> list[Path]:
    """The good images to fit on: every image under a folder (recursive, hidden files skipped), or the
    ``path`` column of a CSV (rows whose ``label`` is not ``good`` are left out).

    Raises:
        DatasetError: missing path, or no images in it.
    """
    from recog.io import IMAGE_EXTENSIONS

    path, is_manifest = open_source(data, hint="pass a folder of good (defect-free) images, e.g. parts/good/")
    if is_manifest:
        rows = read_rows(path, required=("path",), hint="first line: path[,label] (rows labelled other than good are left out)")
        paths = [resolve(path, r["path"]) for _, r in rows if (r.get("label") or "good").lower() == "good"]
    else:
        paths = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not paths:
        raise DatasetError(f"{path}: found no good images ({', '.join(IMAGE_EXTENSIONS)}).",
                           hint="pass a folder of defect-free images of the part (recog train parts/good/ --task anomaly)")
    return paths


def split_good(paths: Sequence[Path], holdout: float, seed: int) -> tuple[list[Path], list[Path]]:
    """``(bank, held_out)``: a seeded split with at least :data:`MIN_HELD_OUT` held out and
    :data:`MIN_BANK` in the bank.

    Raises:
        DatasetError: fewer than :data:`MIN_IMAGES` images, naming how many there are and how many are needed.
    """
    n = len(paths)
    if n < MIN_IMAGES:
        raise DatasetError(f"found {n} good image{'s' if n != 1 else ''}; the anomaly task needs at least "
                           f"{MIN_IMAGES} ({MIN_BANK} for the memory bank and {MIN_HELD_OUT} held out to set the "
                           "threshold).", hint="add more defect-free images of the part (tens give a usable threshold)")
    n_held = min(n - MIN_BANK, max(MIN_HELD_OUT, int(round(holdout * n))))
    order = np.random.default_rng(seed).permutation(n)
    held = sorted(int(i) for i in order[:n_held])
    bank = sorted(int(i) for i in order[n_held:])
    return [paths[i] for i in bank], [paths[i] for i in held]


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def extract(net: "PatchCoreNet", paths: Sequence[Path], prep: "Preprocessing", *, batch_size: int, threads: int,
            strict: bool, device: str, progress: Callable[[int], None] | None = None,
            reduce: Callable[[int, np.ndarray], np.ndarray] | None = None
            ) -> tuple[list[np.ndarray], list[int], list[tuple[str, str]]]:
    """Patch features ``(h * w, D)`` float32 per decodable image, the kept indices and the skipped files.

    ``reduce(i, features)``, when given, replaces each image's features as they come (the
    coreset's first round), so memory holds only what it keeps.
    """
    import torch

    from recog.data.decode import decode_images
    from recog.data.transforms import normalize

    feats: list[np.ndarray] = []
    kept: list[int] = []
    failures: list[tuple[str, str]] = []
    for start in range(0, len(paths), batch_size):
        chunk = list(paths[start:start + batch_size])
        images, ok, bad = decode_images(chunk, prep, threads=threads, strict=strict)
        failures += bad
        if len(ok):
            with torch.inference_mode():
                x = torch.from_numpy(normalize(images, prep)).to(device)
                f = net.features(x).float()
                f = f.flatten(2).transpose(1, 2).cpu().numpy()
            for i, one in zip(ok, f):
                feats.append(one if reduce is None else reduce(start + i, one))
                kept.append(start + i)
        if progress:
            progress(len(chunk))
    return feats, kept, failures


def image_scores(net: "PatchCoreNet", feats: Sequence[np.ndarray], device: str) -> np.ndarray:
    """Image scores, as :meth:`recog.tasks.anomaly.Anomaly.postprocess` computes them: the largest patch distance."""
    import torch

    from recog.anomaly.network import nearest_distance

    out = []
    for f in feats:
        with torch.inference_mode():
            out.append(float(nearest_distance(torch.from_numpy(f).to(device), net.memory_bank, net.chunk).max()))
    return np.asarray(out, dtype=np.float64)


def threshold_at(scores: np.ndarray, false_reject_rate: float) -> float:
    """The ``1 - false_reject_rate`` quantile of good images' scores (an observed score, never interpolated)."""
    t = float(np.quantile(np.asarray(scores, dtype=np.float64), 1.0 - false_reject_rate, method="higher"))
    return max(t, 1e-6)  # a zero threshold (identical images) would make every difference a defect of infinite score


def fit_anomaly(paths: Sequence[str | Path], *, model: str = "efficientnet-lite0", weights: str | None = None,
                image_size: int | None = None, options: FitOptions = FitOptions(), batch_size: int = 8,
                threads: int = 2, strict: bool = False, seed: int = 0, device: str = "auto",
                stage: Callable[[str, int], Callable[[int], None]] | None = None) -> AnomalyFit:
    """Fit a PatchCore-style anomaly model on good images; nothing is written.

    Args:
        paths: good images (see :func:`good_images`).
        model: backbone preset, Hub id or folder (EfficientNet-Lite has offline ImageNet weights).
        image_size: square model input; None takes :data:`recog.anomaly.network.DEFAULT_IMAGE_SIZE`
            for EfficientNet-Lite (measured on pcb), the preset's size otherwise.
        stage: ``(name, total) -> advance(n)`` progress hooks (a training Reporter's ``stage``).

    Raises:
        DatasetError: too few good images (before or after skipping unreadable ones).
    """
    import torch

    from recog.anomaly.coreset import greedy_k_center, plan, select
    from recog.anomaly.network import create_anomaly_model

    start = time.perf_counter()
    stage = stage or (lambda name, total: (lambda n: None))
    paths = [Path(p) for p in paths]
    bank_paths, held_paths = split_good(paths, options.holdout, seed)
    device = resolve_device(device)
    torch.manual_seed(seed)
    created = create_anomaly_model(model, weights=weights, image_size=image_size)
    net, prep = created.model.to(device).eval(), created.preprocessing
    threads = max(1, threads)
    grid = grid_of_input(net, prep, device)
    n_patches = grid[0] * grid[1]
    target, keep = plan(len(bank_paths), n_patches, options.coreset_ratio, options.max_bank)
    t_core = [0.0]

    def first_round(i: int, feats: np.ndarray) -> np.ndarray:  # greedy k-center per image, as it is extracted
        t = time.perf_counter()
        out = feats[greedy_k_center(feats, keep, seed=seed + i)]
        t_core[0] += time.perf_counter() - t
        return out

    firsts, _, skipped = extract(net, bank_paths, prep, batch_size=batch_size, threads=threads, strict=strict,
                                    device=device, progress=stage("features of good images", len(bank_paths)),
                                    reduce=first_round)
    held_feats, held_kept, held_skipped = extract(net, held_paths, prep, batch_size=batch_size, threads=threads,
                                                  strict=strict, device=device,
                                                  progress=stage("features of held-out images", len(held_paths)))
    skipped += held_skipped
    if len(firsts) < MIN_BANK or len(held_feats) < MIN_HELD_OUT:
        raise DatasetError(f"only {len(firsts) + len(held_feats)} of {len(paths)} good images could be read "
                           f"({len(skipped)} skipped); the anomaly task needs at least {MIN_IMAGES}.",
                           hint="fix or replace the unreadable files listed above")
    t = time.perf_counter()
    bank = select(firsts, min(target, sum(len(f) for f in firsts)), seed=seed)
    t_core[0] += time.perf_counter() - t
    net.set_bank(torch.from_numpy(bank).to(device))
    held_scores = image_scores(net, held_feats, device)
    threshold = threshold_at(held_scores, options.false_reject_rate)
    net = net.cpu().eval()
    calibration = {"method": "anomaly-threshold", "threshold": round(threshold, 6), "rule": "false_reject_rate",
                   "false_reject_rate": options.false_reject_rate,
                   "fitted_on": f"{len(held_feats)} held-out good images",
                   "held_out_scores": {"min": round(float(held_scores.min()), 6),
                                       "median": round(float(np.median(held_scores)), 6),
                                       "max": round(float(held_scores.max()), 6)}}
    record = {"bank_size": int(len(bank)), "patches_seen": n_patches * len(firsts), "bank_images": len(firsts),
              "held_out_images": len(held_feats), "coreset_ratio": options.coreset_ratio,
              "max_bank": options.max_bank, "feature_dim": int(bank.shape[1]), "grid": list(grid), "sigma": options.sigma,
              "coreset_seconds": round(t_core[0], 2),
              "held_out": [str(held_paths[i]) for i in held_kept]}
    return AnomalyFit(net, prep, created.source, created.weights, threshold, calibration, record, held_scores,
                      skipped, time.perf_counter() - start)


def grid_of_input(net: "PatchCoreNet", prep: "Preprocessing", device: str) -> tuple[int, int]:
    """The ``(h, w)`` patch grid ``net`` gives for ``prep``'s input size (one zero image through the trunk)."""
    import torch

    with torch.inference_mode():
        return tuple(net.features(torch.zeros(1, 3, *prep.size, device=device)).shape[-2:])
