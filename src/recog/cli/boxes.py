"""Box data sets on the command line: ``recog data info`` for a box folder, ``recog data convert``.

``recog data info`` (:mod:`recog.cli.data`) routes here when the path holds box
annotations (:func:`recog.detect.formats.looks_like_boxes`); ``convert`` is added
to the ``data`` group by :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

#: box size bins (sqrt of the area, pixels of the original image); COCO's small/medium/large are < 32, < 96.
SIZE_BINS = (0, 16, 32, 64, 96, 128, 256, float("inf"))


def box_summary(ds, bad: list[tuple[str, str]]) -> dict:
    """Everything ``recog data info`` shows for a box data set, as JSON-able values."""
    import numpy as np

    from recog.detect.dataset import box_sizes

    sizes = box_sizes(ds.samples)
    hist = np.histogram(sizes, bins=np.array(SIZE_BINS))[0] if len(sizes) else np.zeros(len(SIZE_BINS) - 1)
    bins = [f"{int(lo)}-{int(hi)}" if hi != float("inf") else f">={int(lo)}" for lo, hi in zip(SIZE_BINS, SIZE_BINS[1:])]
    issues: dict[str, int] = {}
    for i in ds.issues:
        issues[i.kind] = issues.get(i.kind, 0) + 1
    return {"format": ds.format, "labels": list(ds.labels), "images": ds.image_counts(), "boxes": ds.counts(),
            "negatives": sum(1 for s in ds.samples if not len(s.boxes)),
            "box_size_px": {"bins": bins, "counts": [int(c) for c in hist],
                            "median": float(np.median(sizes)) if len(sizes) else None},
            "issue_counts": issues, "issues": [i.to_dict() for i in ds.issues],
            "bad_files": [{"path": p, "reason": r} for p, r in bad], "fingerprint": ds.fingerprint()}


def box_info(data: str, *, check: bool, as_json: bool) -> None:
    """Print images and boxes per class and split, the box-size histogram, issues and unreadable images."""
    import json

    from rich.console import Console
    from rich.table import Table

    from recog.cli.progress import bar
    from recog.data.decode import find_bad_files
    from recog.detect.formats import load_boxes

    ds = load_boxes(data)
    bad: list[tuple[str, str]] = []
    if check:
        with bar("checking images", len(ds.samples)) as advance:
            bad = find_bad_files([s.path for s in ds.samples], progress=advance)
    info = box_summary(ds, bad)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        console = Console()
        splits = sorted(info["boxes"], key=lambda s: ("train", "val", "test", "all").index(s))
        table = Table("class", *splits, title=f"{data}: {ds.format.upper()}, {len(ds.samples)} images "
                                              f"({info['negatives']} without objects), {len(ds.labels)} classes; boxes")
        for label in ds.labels:
            table.add_row(label, *[str(info["boxes"][s].get(label, 0)) for s in splits])
        table.add_row("[bold]images", *[f"[bold]{info['images'][s]}" for s in splits])
        console.print(table)
        sizes = info["box_size_px"]
        console.print("box size (sqrt of area, px): " + ", ".join(f"{b}: {c}" for b, c in zip(sizes["bins"],
                                                                                           sizes["counts"]))
                      + (f"; median {sizes['median']:.0f}" if sizes["median"] is not None else ""))
        for issue in ds.issues:
            color = "red" if issue.dropped else "yellow"
            console.print(f"[{color}]{issue.kind}[/] {issue}")
        for path, reason in bad:
            console.print(f"[red]bad file[/] {path}: {reason}")
        if ds.issues:
            console.print("issues: " + ", ".join(f"{k} {v}" for k, v in info["issue_counts"].items()))
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``convert`` to the ``data`` group (registered before this module by :data:`recog.cli.main.COMMAND_MODULES`)."""
    data_app = next(g.typer_instance for g in app.registered_groups if g.name == "data")

    @data_app.command("convert")
    def convert_cmd(
        data: str = typer.Argument(..., help="Box annotations: a VOC/COCO/YOLO folder, a COCO .json, data.yaml or CSV."),
        out: Path = typer.Option(..., "--out", "-o", help="New folder for the converted set (images are linked or copied)."),
        to: str = typer.Option(..., "--to", help="voc | coco | yolo | csv"),
        source_format: Optional[str] = typer.Option(None, "--from", help="Input format when auto-detection is ambiguous."),
    ) -> None:
        """Convert box annotations between VOC, COCO, YOLO and CSV (splits kept; issues listed)."""
        from recog.detect.formats import load_boxes
        from recog.detect.writers import write_boxes

        ds = load_boxes(data, source_format)
        for issue in ds.issues:
            if issue.dropped:
                typer.echo(f"{issue.kind}: {issue}", err=True)
        path = write_boxes(ds, out, to)
        boxes = sum(len(s.boxes) for s in ds.samples)
        typer.echo(f"wrote {len(ds.samples)} images, {boxes} boxes, {len(ds.labels)} classes as {to.upper()} to {path}")


def box_preview(data: str, out: Path, *, augment: str, image_size: int | None, hflip: bool, count: int,
                seed: int) -> Path:
    """A PNG grid: per row one image with its boxes as read, then three augmented views (boxes moved)."""
    import numpy as np
    import torch

    from recog.detect.augment import BoxAugmenter
    from recog.detect.data import load_box_split
    from recog.detect.draw import draw_boxes
    from recog.detect.formats import load_boxes
    from recog.detect.network import DEFAULT_IMAGE_SIZE
    from recog.types import Preprocessing

    ds = load_boxes(data)
    size = image_size or DEFAULT_IMAGE_SIZE
    prep = Preprocessing(size=(size, size), resize="stretch", crop_pct=1.0)
    rng = np.random.default_rng(seed)
    picks = [ds.samples[int(i)] for i in rng.choice(len(ds.samples), size=min(count, len(ds.samples)), replace=False)]
    batch = load_box_split(picks, ds.labels, prep, strict=False, threads=2)
    aug = BoxAugmenter(augment, hflip=hflip, generator=torch.Generator().manual_seed(seed))
    x = torch.from_numpy(batch.images).permute(0, 3, 1, 2).float() / 255
    views = [(x, torch.from_numpy(batch.targets))] + [aug(x, torch.from_numpy(batch.targets)) for _ in range(3)]
    rows = []
    for i in range(len(batch)):
        tiles = []
        for images, gt in views:
            keep = gt[i, :, 4] >= 0
            img = (images[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            names = [ds.labels[int(c)] for c in gt[i, keep, 4]]
            tiles.append(np.asarray(draw_boxes(img, gt[i, keep, :4].numpy(), names, labels=ds.labels)))
        rows.append(np.concatenate(tiles, axis=1))
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)
    return out
