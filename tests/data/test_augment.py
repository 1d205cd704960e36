"""Augmentation presets and the mixed-target loss."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from recog.data.augment import Augmenter, mixed_cross_entropy  # noqa: E402


def test_mixed_loss_weights_follow_kornias_lambda():
    import torch.nn.functional as F

    logits = torch.tensor([[4.0, -1.0, 0.0], [0.5, 2.0, -3.0]])
    a, b = torch.tensor([0, 1]), torch.tensor([2, 0])
    for lam in (0.0, 0.2, 1.0):
        targets = torch.stack([a.float(), b.float(), torch.full((2,), lam)], dim=1)
        expected = ((1 - lam) * F.cross_entropy(logits, a, reduction="none")
                    + lam * F.cross_entropy(logits, b, reduction="none")).mean()
        assert mixed_cross_entropy(logits, targets).item() == pytest.approx(expected.item(), abs=1e-6)


def test_strong_preset_trains_through_mixup_and_cutmix():
    torch.manual_seed(0)
    aug = Augmenter("strong", (16, 16), hflip=False)
    images, labels = torch.rand(8, 3, 16, 16), torch.randint(0, 3, (8,))
    shapes = set()
    for _ in range(4):  # plain, mixup, plain, cutmix
        x, targets = aug(images, labels)
        shapes.add(tuple(targets.shape))
        logits = torch.randn(8, 3, requires_grad=True)
        loss = mixed_cross_entropy(logits, targets, label_smoothing=0.1)
        assert x.shape == images.shape and loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
    assert shapes == {(8,), (8, 3)}


def test_cutmix_lambda_is_the_share_of_the_pasted_image():
    """Whatever kornia's default, targets[:, 2] is the share of image b (the pasted one)."""
    torch.manual_seed(1)
    aug = Augmenter("strong", (32, 32), hflip=False)
    aug.pipeline = None  # only the mixers
    images = torch.zeros(6, 3, 32, 32)
    for i in range(6):
        images[i] = i / 10  # each image a flat, distinct value
    labels = torch.arange(6)
    checked = 0
    for _ in range(4):
        x, targets = aug(images, labels)
        if targets.ndim == 2 and aug._step % 4 == 2:  # the cutmix step (mixup on the others)
            for row in range(6):
                b = int(targets[row, 1])
                if b != row:
                    share_b = (x[row, 0] == images[b, 0, 0, 0]).float().mean().item()
                    assert targets[row, 2].item() == pytest.approx(share_b, abs=0.02)
                    checked += 1
    assert checked > 0
