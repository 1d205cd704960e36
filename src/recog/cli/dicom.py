"""``recog dicom info|anonymize``: DICOM headers without patient data, and de-identified copies to share."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

dicom_app = typer.Typer(help="DICOM files: technical header info, anonymized copies.", no_args_is_help=True)


def _dicom_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and (p.suffix.lower() == ".dcm" or _has_marker(p)))


def _has_marker(path: Path) -> bool:
    from recog.io.dicom import is_dicom

    try:
        with open(path, "rb") as fh:
            return is_dicom(fh.read(132))
    except OSError:
        return False


@dicom_app.command("info")
def info_cmd(files: List[Path] = typer.Argument(..., help="DICOM files or folders."),
             as_json: bool = typer.Option(False, "--json", help="One JSON object per file.")) -> None:
    """Modality, transfer syntax, photometric, bits, size, frames: never a patient field."""
    import json

    from recog.errors import ImageError
    from recog.io.dicom import dicom_info

    bad = 0
    for root in files:
        for path in _dicom_files(root):
            try:
                info = dicom_info(path)
            except ImageError as exc:
                bad += 1
                typer.echo(f"error: {exc}", err=True)
                continue
            if as_json:
                typer.echo(json.dumps({"path": str(path), **info}))
            else:
                typer.echo(f"{path}: {info['modality'] or '?'} {info['width']}x{info['height']} "
                           f"{info['frames']} frame(s) {info['photometric']} {info['bits_stored']}/"
                           f"{info['bits_allocated']} bits, {info['transfer_syntax']}")
    if bad:
        raise typer.Exit(1)


@dicom_app.command("anonymize")
def anonymize_cmd(
    src: Path = typer.Argument(..., help="A DICOM file or a folder (searched recursively)."),
    out: Path = typer.Argument(..., help="Output folder (the same relative layout)."),
    salt: str = typer.Option(None, "--salt", help="Secret mixed into new UIDs (default: random per run). "
                                                  "Reuse it to keep links between files anonymized separately."),
) -> None:
    """Copy DICOM files with patient data stripped (PS3.15 basic profile subset, private tags removed).

    Pixel data is kept. Files whose pixels carry burned-in text (BurnedInAnnotation
    YES) are refused and listed; so are unreadable files. Exits 1 when any file failed.
    """
    import secrets

    from recog.errors import ImageError
    from recog.io.dicom import anonymize_file

    salt = salt or secrets.token_hex(16)
    paths = _dicom_files(src)
    if not paths:
        raise typer.BadParameter(f"{src}: no DICOM files found.")
    base = src if src.is_dir() else src.parent
    failed = 0
    for path in paths:
        dst = out / path.relative_to(base)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            anonymize_file(path, dst, salt=salt)
        except ImageError as exc:
            failed += 1
            typer.echo(f"skipped {exc}", err=True)
    typer.echo(f"anonymized {len(paths) - failed} of {len(paths)} file(s) into {out}")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(dicom_app, name="dicom")


def dicom_summary(paths: List[Path]) -> list[dict]:
    """Counts of ``.dcm`` files per (modality, photometric, bits stored, size, frames), for ``recog data info``.

    Unreadable headers are left out here (the decode check lists them); no patient field is read out.
    """
    from collections import Counter

    from recog.errors import ImageError
    from recog.io.dicom import dicom_info

    keys = Counter()
    for path in paths:
        if Path(path).suffix.lower() != ".dcm":
            continue
        try:
            i = dicom_info(path)
        except ImageError:
            continue
        keys[(i["modality"], i["photometric"], i["bits_stored"], f"{i['width']}x{i['height']}", i["frames"])] += 1
    return [{"modality": m, "photometric": p, "bits": b, "size": s, "frames": f, "files": n}
            for (m, p, b, s, f), n in sorted(keys.items(), key=lambda kv: -kv[1])]
