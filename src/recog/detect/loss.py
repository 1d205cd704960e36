"""FCOS training targets and losses: focal loss for classes, GIoU for boxes, BCE for centre-ness.

Targets (Tian et al. 2019, with centre sampling): a location is positive for
an object when it lies inside the box, within ``radius x stride`` of the
box centre, and the largest of its distances to the box sides is in its
pyramid level's size range; a location claimed by several objects takes the
smallest. Positives learn the object's class (sigmoid focal loss,
``alpha=0.25, gamma=2``, normalised by the number of positives), its box
(``1 - GIoU``, weighted by the centre-ness target) and the centre-ness
``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` (binary
cross-entropy). Everything is batched over images: the ground truth comes
padded as ``(N, M, 5)`` rows ``[x1, y1, x2, y2, class]`` with class ``-1``
for padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recog.detect.boxes import giou_loss

RADIUS = 1.5
BOX_WEIGHT = 2.0


def fcos_targets(points: torch.Tensor, strides: torch.Tensor, ranges: torch.Tensor, gt: torch.Tensor,
                 radius: float = RADIUS) -> tuple[torch.Tensor, torch.Tensor]:
    """Assign locations to objects.

    Args:
        points: ``(A, 2)`` location centres; strides ``(A,)``; ranges ``(A, 2)`` size range per location.
        gt: ``(N, M, 5)`` padded ground truth in input pixels.

    Returns:
        ``(labels, boxes)``: ``(N, A)`` int64 class per location (``-1`` background) and ``(N, A, 4)``
        the assigned object's box (zeros at background).
    """
    n, m = gt.shape[:2]
    if m == 0:
        return (torch.full((n, len(points)), -1, dtype=torch.long, device=points.device),
                torch.zeros(n, len(points), 4, device=points.device))
    boxes, cls = gt[..., :4], gt[..., 4]
    px, py = points[:, 0].view(1, -1, 1), points[:, 1].view(1, -1, 1)           # (1, A, 1)
    x1, y1, x2, y2 = (boxes[..., i].unsqueeze(1) for i in range(4))              # (N, 1, M)
    l, t, r, b = px - x1, py - y1, x2 - px, y2 - py                              # (N, A, M)
    inside = torch.minimum(torch.minimum(l, t), torch.minimum(r, b)) > 0
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    s = strides.view(1, -1, 1) * radius
    in_centre = ((px - torch.maximum(cx - s, x1) > 0) & (torch.minimum(cx + s, x2) - px > 0)
                 & (py - torch.maximum(cy - s, y1) > 0) & (torch.minimum(cy + s, y2) - py > 0))
    reach = torch.maximum(torch.maximum(l, t), torch.maximum(r, b))
    in_range = (reach >= ranges[:, 0].view(1, -1, 1)) & (reach <= ranges[:, 1].view(1, -1, 1))
    valid = inside & in_centre & in_range & (cls >= 0).unsqueeze(1)
    areas = ((x2 - x1) * (y2 - y1)).expand_as(l)
    areas = torch.where(valid, areas, torch.full_like(areas, float("inf")))
    best_area, best = areas.min(dim=2)                                           # (N, A)
    labels = torch.gather(cls.long(), 1, best)
    labels = torch.where(torch.isinf(best_area), torch.full_like(labels, -1), labels)
    assigned = torch.gather(boxes, 1, best.unsqueeze(-1).expand(-1, -1, 4))
    return labels, assigned


def centreness(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``(K, 2)`` points inside ``(K, 4)`` boxes → ``(K,)`` FCOS centre-ness in [0, 1]."""
    l, t = points[:, 0] - boxes[:, 0], points[:, 1] - boxes[:, 1]
    r, b = boxes[:, 2] - points[:, 0], boxes[:, 3] - points[:, 1]
    lr = torch.minimum(l, r).clamp(min=0) / torch.maximum(l, r).clamp(min=1e-6)
    tb = torch.minimum(t, b).clamp(min=0) / torch.maximum(t, b).clamp(min=1e-6)
    return torch.sqrt(lr * tb)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Summed focal loss of ``logits`` against 0/1 ``targets`` of the same shape (Lin et al. 2017)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    return (loss * (alpha * targets + (1 - alpha) * (1 - targets))).sum()


def fcos_loss(raw: dict[str, torch.Tensor], gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"loss", "cls", "box", "ctr"}`` for the raw outputs of :meth:`FCOSLite.raw` against padded ``gt``."""
    cls_logits, ltrb, ctr_logits, points = raw["cls"], raw["ltrb"], raw["ctr"], raw["points"]
    labels, assigned = fcos_targets(points, raw["strides"], raw["ranges"], gt.to(ltrb.dtype))
    pos = labels >= 0
    num_pos = max(1.0, float(pos.sum()))
    onehot = torch.zeros_like(cls_logits)
    onehot[pos] = F.one_hot(labels[pos], cls_logits.shape[-1]).to(onehot.dtype)
    loss_cls = sigmoid_focal_loss(cls_logits.float(), onehot.float()) / num_pos
    if not pos.any():
        zero = ltrb.sum() * 0 + ctr_logits.sum() * 0
        return {"loss": loss_cls + zero, "cls": loss_cls.detach(), "box": zero.detach(), "ctr": zero.detach()}
    p = points.unsqueeze(0).expand(len(labels), -1, -1)[pos]
    d = ltrb[pos].float()
    pred = torch.cat([p - d[:, :2], p + d[:, 2:]], dim=1)
    target = assigned[pos].float()
    ctr_t = centreness(p, target)
    loss_box = (giou_loss(pred, target) * ctr_t).sum() / ctr_t.sum().clamp(min=1e-6)
    loss_ctr = F.binary_cross_entropy_with_logits(ctr_logits[pos].float(), ctr_t, reduction="sum") / num_pos
    total = loss_cls + BOX_WEIGHT * loss_box + loss_ctr
    return {"loss": total, "cls": loss_cls.detach(), "box": loss_box.detach(), "ctr": loss_ctr.detach()}
