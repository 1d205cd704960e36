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
