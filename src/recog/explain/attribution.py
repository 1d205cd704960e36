"""Attribution maps: Grad-CAM, Integrated Gradients, occlusion.

Every method explains one **score** (a callable ``(N, 3, H, W) → (N,)``: a class logit of a
classifier, the class-score logit of one detector box) for one normalized input
``(1, 3, H, W)`` and returns an ``(H, W)`` float32 map over the model input (Grad-CAM is
upsampled bilinearly from the layer's resolution). The score callables come from the task
(:mod:`recog.tasks`): the model is only called through it.

- ``gradcam``: a layer the task names (a classifier's last convolutional stage, a box's
  pyramid level), its activations weighted by the score's gradients, ReLU applied: one
  forward and one backward pass. Refused for transformers (ViT, DINOv2) with the methods
  that do work. The weights (:attr:`MethodOptions.cam_weights`):

  * ``averaged`` (a classifier's default; captum ``LayerGradCam``): the gradient averaged
    over the map, one weight per channel (Selvaraju et al. 2017);
  * ``per-location`` (a detector box's default; captum ``LayerGradientXActivation`` summed
    over channels): gradient times activation at each location, the instance-specific form
    of Zhao et al., "ODAM", ICLR 2023. Averaged weights light every object of the box's
    class, or nothing (the pyramid's features are signed);
  * ``plus-plus``: Grad-CAM++ (Chattopadhay et al., WACV 2018; captum has none), weights
    ``sum_ij alpha_ij relu(g_ij)`` with ``alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)``. Measured,
    not kept as a method: no better than Grad-CAM on labels (pointing game and two objects
    of one class), no map at all on boxes (``benchmarks/explain.py``, docs/explanations.md).
- ``ig``: captum ``IntegratedGradients`` from a black image, ``steps`` points
  (Gauss-Legendre), summed over colour channels (signed). Sums to
  ``score(x) - score(black)`` up to the integration error (completeness).
- ``occlusion``: captum ``Occlusion`` with a grey (mean colour, 0 after
  normalization) square of about 1/7 of the input side, stride half of it:
  the drop of the score when that patch is hidden (positive = evidence for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from recog.errors import ConfigError, RecogError, did_you_mean

if TYPE_CHECKING:
    import torch

METHODS = ("gradcam", "ig", "occlusion")
#: Grad-CAM's channel weightings (:attr:`MethodOptions.cam_weights`); ``auto``: per-location for a
#: detector box, averaged for a label.
CAM_WEIGHTS = ("auto", "averaged", "per-location", "plus-plus")

Score = Callable[["torch.Tensor"], "torch.Tensor"]


class ExplanationStopped(RecogError):
    """The caller asked an explanation in progress to stop (the service: its request's deadline passed)."""

    code = "explanation_stopped"
    http_status = 504


@dataclass(frozen=True)
class MethodOptions:
    """Knobs of the methods (the defaults are what the CLI, the service and the benchmark use).

    Attributes:
        ig_steps: integration points of Integrated Gradients.
        ig_batch: forward passes per batch inside IG (memory bound).
        occlusion_window: occluding square side as a fraction of the input side.
        occlusion_batch: occluded copies per forward pass.
        cam_weights: Grad-CAM's weighting, one of :data:`CAM_WEIGHTS` (the others than ``auto``
            are there to compare: ``benchmarks/explain.py``).
    """

    ig_steps: int = 32
    ig_batch: int = 16
    occlusion_window: float = 1 / 7
    occlusion_batch: int = 32
    cam_weights: str = "auto"

    def __post_init__(self) -> None:
        if self.cam_weights not in CAM_WEIGHTS:
            raise ConfigError(f"cam_weights must be one of {', '.join(CAM_WEIGHTS)}, got {self.cam_weights!r}.")


def check_method(method: str) -> str:
    """``method`` if known, else ConfigError naming the known ones (and the closest)."""
    if method not in METHODS:
        hint = did_you_mean(method, METHODS, cutoff=0.3) or f"choose one of {', '.join(METHODS)}"
        if method.lower().replace("-", "") in ("gradcam++", "gradcampp", "gradcamplusplus"):
            hint = "use gradcam: Grad-CAM++ was measured no better on labels and mapless on boxes (docs/explanations.md)"
        raise ConfigError(f"unknown explanation method {method!r}; expected one of {', '.join(METHODS)}.",
                          hint=hint)
    return method


def black_baseline(x: "torch.Tensor", mean: tuple[float, ...], std: tuple[float, ...]) -> "torch.Tensor":
    """A black image in the model's normalized space, shaped like ``x``."""
    import torch

    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((0.0 - m) / s).expand_as(x).contiguous()


def gradcam_plus_plus(score: Score, layer: "torch.nn.Module", x: "torch.Tensor") -> "torch.Tensor":
    """Grad-CAM++ of ``score`` at ``layer``: ``(1, 3, H, W)`` → ``(1, 1, h, w)`` at the layer's resolution.

    Chattopadhay et al. 2018, eq. 19 with the exponential of the score (so higher derivatives are
    powers of the first): ``alpha_kij = g^2 / (2 g^2 + sum_ab A_kab g^3)``, weights
    ``w_k = sum_ij alpha_kij relu(g_kij)``, map ``relu(sum_k w_k A_k)``.
    """
    import torch

    seen: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        y = score(x.detach().clone().requires_grad_(True))
    finally:
        hook.remove()
    if len(seen) != 1:
        raise ConfigError(f"the Grad-CAM layer ran {len(seen)} times in one forward pass; expected once.")
    act = seen[0]
    (g,) = torch.autograd.grad(y.sum(), act)
    act, g = act.detach(), g.detach()
    g2, g3 = g.pow(2), g.pow(3)
    denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3
    alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g))
    weights = (alpha * torch.relu(g)).sum(dim=(2, 3), keepdim=True)
    return torch.relu((weights * act).sum(dim=1, keepdim=True))


def attribute(score: Score, x: "torch.Tensor", method: str, *, layer: Callable[[], "torch.nn.Module"],
              mean: tuple[float, ...], std: tuple[float, ...], box: bool = False,
              options: MethodOptions = MethodOptions(), should_stop: Callable[[], bool] | None = None
              ) -> np.ndarray:
    """``(1, 3, H, W)`` normalized input → ``(H, W)`` float32 attribution map of ``score``.

    Args:
        score: ``(N, 3, H, W)`` → ``(N,)``, the number explained (from the task).
        layer: the task's layer for Grad-CAM (called only by it: a ViT has none).
        box: ``score`` is one detector box's (Grad-CAM's ``auto`` weights are then per location).
        should_stop: checked before every forward pass (IG and occlusion make dozens); when it
            returns True the work ends with :class:`ExplanationStopped`.

    Raises:
        ConfigError: unknown method; a CAM method on a model without a convolutional stage.
        ExplanationStopped: ``should_stop`` said so.
    """
    import torch
    from captum.attr import (IntegratedGradients, LayerAttribution, LayerGradCam, LayerGradientXActivation,
                             Occlusion)

    check_method(method)

    def forward(inp: "torch.Tensor") -> "torch.Tensor":
        if should_stop is not None and should_stop():
            raise ExplanationStopped("the explanation was stopped before it finished.")
        return score(inp)

    h, w = x.shape[-2:]
    with torch.enable_grad():
        if method == "gradcam":
            target_layer = layer()
            weights = options.cam_weights
            if weights == "auto":
                weights = "per-location" if box else "averaged"
            if weights == "plus-plus":
                cam = gradcam_plus_plus(forward, target_layer, x)
            elif weights == "per-location":
                cam = torch.relu(LayerGradientXActivation(forward, target_layer).attribute(x).sum(1, keepdim=True))
            else:
                cam = LayerGradCam(forward, target_layer).attribute(x, relu_attributions=True)
            out = LayerAttribution.interpolate(cam.detach(), (h, w), interpolate_mode="bilinear")
            return out[0].sum(0).float().cpu().numpy()
        if method == "ig":
            ig = IntegratedGradients(forward)
            attr = ig.attribute(x, baselines=black_baseline(x, mean, std), n_steps=options.ig_steps,
                                internal_batch_size=options.ig_batch)
            return attr.detach()[0].sum(0).float().cpu().numpy()
    side = max(2, round(min(h, w) * options.occlusion_window))
    stride = max(1, side // 2)
    with torch.no_grad():
        attr = Occlusion(forward).attribute(x, sliding_window_shapes=(3, side, side), strides=(3, stride, stride),
                                            baselines=0.0, perturbations_per_eval=options.occlusion_batch)
    return attr[0].mean(0).float().cpu().numpy()


def integrated_gradients_with_delta(score: Score, x: "torch.Tensor", *, mean: tuple[float, ...],
                                    std: tuple[float, ...], steps: int = 32) -> tuple[np.ndarray, float]:
    """IG attributions ``(3, H, W)`` of ``score`` and captum's convergence delta:
    ``sum(attr) - (score(x) - score(baseline))``."""
    import torch
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        attr, delta = IntegratedGradients(score).attribute(
            x, baselines=black_baseline(x, mean, std), n_steps=steps, return_convergence_delta=True)
    return attr.detach()[0].float().cpu().numpy(), float(delta.detach().reshape(-1)[0])
