"""Attribution maps through captum: Grad-CAM, Integrated Gradients, occlusion.

Every method explains the **logit** of one class for one normalized input
``(1, 3, H, W)`` and returns an ``(H, W)`` float32 map over the model input
(Grad-CAM is upsampled bilinearly from the stage's resolution). The model is
called only through ``task.forward`` (the seam in :mod:`recog.tasks`).

- ``gradcam``: captum ``LayerGradCam`` on ``task.target_layer(model)`` (the
  last convolutional stage), ReLU applied: one forward and one backward pass.
  Refused for transformers (ViT, DINOv2) with the methods that do work.
- ``ig``: captum ``IntegratedGradients`` from a black image, ``steps``
  points (Gauss-Legendre), summed over colour channels (signed). Sums to
  ``logit(x) - logit(black)`` up to the integration error (completeness).
- ``occlusion``: captum ``Occlusion`` with a grey (mean colour, 0 after
  normalization) square of about 1/7 of the input side, stride half of it:
  the drop of the logit when that patch is hidden (positive = evidence for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from recog.errors import ConfigError, RecogError, did_you_mean

if TYPE_CHECKING:
    import torch

METHODS = ("gradcam", "ig", "occlusion")


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
    """

    ig_steps: int = 32
    ig_batch: int = 16
    occlusion_window: float = 1 / 7
    occlusion_batch: int = 32


def check_method(method: str) -> str:
    """``method`` if known, else ConfigError naming the known ones (and the closest)."""
    if method not in METHODS:
        hint = did_you_mean(method, METHODS, cutoff=0.3) or f"choose one of {', '.join(METHODS)}"
        raise ConfigError(f"unknown explanation method {method!r}; expected one of {', '.join(METHODS)}.",
                          hint=hint)
    return method


def black_baseline(x: "torch.Tensor", mean: tuple[float, ...], std: tuple[float, ...]) -> "torch.Tensor":
    """A black image in the model's normalized space, shaped like ``x``."""
    import torch

    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return ((0.0 - m) / s).expand_as(x).contiguous()


def attribute(task: Any, model: "torch.nn.Module", x: "torch.Tensor", target: int, method: str, *,
              mean: tuple[float, ...], std: tuple[float, ...],
              options: MethodOptions = MethodOptions(), should_stop: Callable[[], bool] | None = None
              ) -> np.ndarray:
    """``(1, 3, H, W)`` normalized input → ``(H, W)`` float32 attribution map for class ``target``.

    ``should_stop`` is checked before every forward pass (IG and occlusion make dozens):
    when it returns True the work ends with :class:`ExplanationStopped`.

    Raises:
        ConfigError: unknown method; Grad-CAM on a model without a convolutional stage.
        ExplanationStopped: ``should_stop`` said so.
    """
    import torch
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion

    check_method(method)

    def forward(inp: "torch.Tensor") -> "torch.Tensor":
        if should_stop is not None and should_stop():
            raise ExplanationStopped("the explanation was stopped before it finished.")
        return task.forward(model, inp)

    h, w = x.shape[-2:]
    with torch.enable_grad():
        if method == "gradcam":
            layer = task.target_layer(model)
            cam = LayerGradCam(forward, layer).attribute(x, target=target, relu_attributions=True)
            out = LayerAttribution.interpolate(cam.detach(), (h, w), interpolate_mode="bilinear")
            return out[0].sum(0).float().cpu().numpy()
        if method == "ig":
            ig = IntegratedGradients(forward)
            attr = ig.attribute(x, baselines=black_baseline(x, mean, std), target=target,
                                n_steps=options.ig_steps, internal_batch_size=options.ig_batch)
            return attr.detach()[0].sum(0).float().cpu().numpy()
    side = max(2, round(min(h, w) * options.occlusion_window))
    stride = max(1, side // 2)
    with torch.no_grad():
        attr = Occlusion(forward).attribute(x, sliding_window_shapes=(3, side, side), strides=(3, stride, stride),
                                            baselines=0.0, target=target,
                                            perturbations_per_eval=options.occlusion_batch)
    return attr[0].mean(0).float().cpu().numpy()


def integrated_gradients_with_delta(task: Any, model: "torch.nn.Module", x: "torch.Tensor", target: int, *,
                                    mean: tuple[float, ...], std: tuple[float, ...], steps: int = 32
                                    ) -> tuple[np.ndarray, float]:
    """IG attributions ``(3, H, W)`` and captum's convergence delta: ``sum(attr) - (f(x) - f(baseline))``."""
    import torch
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        attr, delta = IntegratedGradients(lambda inp: task.forward(model, inp)).attribute(
            x, baselines=black_baseline(x, mean, std), target=target, n_steps=steps,
            return_convergence_delta=True)
    return attr.detach()[0].float().cpu().numpy(), float(delta.detach().reshape(-1)[0])
