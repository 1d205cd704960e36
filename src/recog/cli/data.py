"""``recog data info|preview``: look at a dataset before training on it."""

from __future__ import annotations

from pathlib import Path

import typer

IMBALANCE_WARN = 3.0

data_app = typer.Typer(help="Inspect datasets: counts, bad files, augmentation previews.", no_args_is_help=True)


@data_app.command("info")
def info_cmd(
    data: str = typer.Argument(..., help="Class-folder tree or CSV manifest."),
    check: bool = typer.Option(True, "--check/--no-check", help="Decode every image and list unreadable ones."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Counts per class and split; warns on imbalance; lists unreadable files. A box data set (VOC, COCO,
    YOLO, CSV of boxes): images and boxes per class, box sizes, annotation issues."""
    from recog.detect.formats import looks_like_boxes

    if looks_like_boxes(data):
        from recog.cli.boxes import box_info

        return box_info(data, check=check, as_json=as_json)
    import json

    from rich.console import Console
    from rich.table import Table

    from recog.cli.progress import bar
    from recog.data import load_dataset
    from recog.data.decode import find_bad_files

    ds = load_dataset(data)
    counts = ds.counts()
    bad: list[tuple[str, str]] = []
    if check:
        with bar("checking images", len(ds.samples)) as advance:
            bad = find_bad_files([s.path for s in ds.samples], progress=advance)
    bad += list(ds.skipped)
    ratios = {split: ds.imbalance(None if split == "all" else split) for split in counts}
    from recog.cli.dicom import dicom_summary

    dicom = dicom_summary([s.path for s in ds.samples])
    if as_json:
        typer.echo(json.dumps({"labels": list(ds.labels), "counts": counts, "imbalance": ratios,
                               "groups": sorted({s.group for s in ds.samples if s.group}),
                               "fingerprint": ds.fingerprint(),
                               "bad_files": [{"path": p, "reason": r} for p, r in bad],
                               **({"dicom": dicom} if dicom else {})}, indent=2))
    else:
        console = Console()
        splits = sorted(counts, key=lambda s: ("train", "val", "test", "all").index(s))
        table = Table("class", *splits, title=f"{data}: {len(ds.samples)} images, {len(ds.labels)} classes")
        for label in ds.labels:
            table.add_row(label, *[str(counts[s][label]) for s in splits])
        table.add_row("[bold]total", *[f"[bold]{sum(counts[s].values())}" for s in splits])
        console.print(table)
        for d in dicom:
            console.print(f"DICOM: {d['files']} file(s) {d['modality']} {d['photometric']} {d['bits']}-bit "
                          f"{d['size']} {d['frames']} frame(s)")
        if ds.has_groups:
            groups = sorted({s.group for s in ds.samples if s.group})
            console.print(f"groups: {', '.join(groups)}")
        for split, ratio in ratios.items():
            if ratio >= IMBALANCE_WARN:
                console.print(f"[yellow]warning:[/] {split}: largest class is {ratio:.1f}x the smallest; "
                              "consider --balance loss or --balance sampler")
        for path, reason in bad:
            console.print(f"[red]bad file[/] {path}: {reason}")
        if bad:
            console.print(f"{len(bad)} file(s) would be skipped by training (or fail it with --strict)")
    if bad:
        raise typer.Exit(1)


@data_app.command("preview")
def preview_cmd(
    data: str = typer.Argument(..., help="Class-folder tree or CSV manifest."),
    out: Path = typer.Option(Path("preview.png"), "--out", "-o"),
    augment: str = typer.Option("standard", help="none | light | standard | strong"),
    model: str = typer.Option("efficientnet-lite0", "--model", "-m", help="Preset whose input size and resize policy to use."),
    image_size: int = typer.Option(None, "--image-size"),
    no_flip: bool = typer.Option(False, "--no-flip"),
    count: int = typer.Option(8, "--count", "-n", min=1, help="Images (rows) to show."),
    seed: int = typer.Option(0),
) -> None:
    """Write a PNG grid: each row one image, first column as-is, then augmented views (box data: with the
    boxes drawn, moved by the detector's augmentation)."""
    from recog.detect.formats import looks_like_boxes

    if looks_like_boxes(data):
        from recog.cli.boxes import box_preview

        path = box_preview(data, out, augment=augment, image_size=image_size, hflip=not no_flip, count=count, seed=seed)
        return typer.echo(f"wrote {path} ({count} images x 4 views, augment={augment}, boxes drawn)")
    import random

    from recog.data import load_dataset
    from recog.data.preview import write_preview
    from recog.models.registry import get_preset
    from recog.types import Preprocessing

    ds = load_dataset(data)
    prep = get_preset(model).preprocessing
    if image_size:
        prep = Preprocessing(size=(image_size, image_size), resize=prep.resize, crop_pct=prep.crop_pct,
                             mean=prep.mean, std=prep.std)
    rng = random.Random(seed)
    by_label: dict[str, list] = {}
    for s in ds.samples:
        by_label.setdefault(s.label, []).append(s)
    picks = [rng.choice(by_label[lab]) for lab in ds.labels]  # one per class first
    rng.shuffle(picks)
    picks = (picks + rng.sample(list(ds.samples), min(count, len(ds.samples))))[:count]
    path = write_preview(picks, prep, out, augment=augment, hflip=not no_flip, seed=seed)
    typer.echo(f"wrote {path} ({len(picks)} images x 4 views, augment={augment})")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
