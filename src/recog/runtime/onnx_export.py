"""PyTorch → ONNX: the task's forward as one fp32 graph with a dynamic batch axis.

The graph comes from the ``torch.export``-based exporter (the default in
torch 2.13: a clean, constant-folded graph, batch-norm folded into the
convolutions); if it fails on a model the TorchScript exporter is tried and
the fallback is recorded. The graph's input is ``pixel_values``
(``(N, 3, H, W)`` normalized float32), its output the task's raw output (classifiers: and ``features``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recog.errors import ConfigError, ExportError
from recog.tasks import get_task

if TYPE_CHECKING:
    from recog.tasks import Task


def _TaskGraph(model, task: "Task"):
    """A ``torch.nn.Module`` whose forward is ``task.forward(model, pixel_values)`` (what gets exported), and
    for a classifier also the pooled features its head sees (``task.forward_features``): a second output
    named ``features`` (the OOD score's embedding distance, :mod:`recog.monitor.features`)."""
    import torch

    class TaskGraph(torch.nn.Module):
        def __init__(self, inner, task):
            super().__init__()
            self.inner = inner
            self.task = task
            self.with_features = with_features

        def forward(self, pixel_values):
            if self.with_features:
                return self.task.forward_features(self.inner, pixel_values)
            return self.task.forward(self.inner, pixel_values)

    with_features = _has_features(model, task)
    return TaskGraph(model, task).eval()


def _has_features(model, task: "Task") -> bool:
    """Whether the task returns pooled features beside its output for this network (classify with a head)."""
    import torch

    both = getattr(task, "forward_features", None)
    if both is None:
        return False
    with torch.inference_mode():
        p = next(model.parameters())
        size = getattr(getattr(model, "config", None), "image_size", None) or 64
        size = int(size[0] if isinstance(size, (list, tuple)) else size)
        return both(model, torch.zeros(1, 3, size, size, dtype=p.dtype, device=p.device))[1] is not None


@contextlib.contextmanager
def quiet():
    """Silence the exporters' progress prints, warnings and log lines."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def torch_to_onnx(model, size: tuple[int, int], out: str | Path, *, task: "Task | None" = None,
                  exporter: str = "dynamo", opset: int | None = None) -> dict[str, Any]:
    """Write ``task.forward(model, x)`` as an fp32 ONNX file with input ``pixel_values``.

    Args:
        model: the task's network.
        task: the task whose forward is exported (default: classify); its
            ``output`` names the graph's output.
        size: (height, width) of the input.
        out: ONNX file to write (one file, weights inside).
        exporter: ``"dynamo"`` (``torch.export``-based; falls back to
            TorchScript on failure) or ``"torchscript"``.
        opset: ONNX opset; None = the exporter's default.

    Returns:
        ``{"exporter": ..., "opset": ...}`` plus ``exporter_fallback`` (the
        dynamo error) when the fallback was used.

    Raises:
        ExportError: both exporters failed.
    """
    import torch

    if exporter not in ("dynamo", "torchscript"):
        raise ConfigError(f"exporter must be dynamo or torchscript, got {exporter!r}.")
    wrapped = _TaskGraph(model.eval(), task or get_task("classify"))
    outputs = [wrapped.task.output] + (["features"] if wrapped.with_features else [])
    h, w = size
    example = (torch.zeros(2, 3, h, w),)
    info: dict[str, Any] = {}
    first_error: str | None = None
    if exporter == "dynamo":
        try:
            with quiet(), torch.inference_mode(False):
                batch = torch.export.Dim("batch", min=1, max=4096)
                program = torch.onnx.export(wrapped, example, None, dynamo=True, input_names=["pixel_values"],
                                            output_names=outputs, opset_version=opset,
                                            dynamic_shapes={"pixel_values": {0: batch}}, external_data=False,
                                            optimize=True)
                program.save(str(out), external_data=False)
            info["exporter"] = "dynamo"
        except Exception as exc:  # noqa: BLE001 - recorded and retried with the other exporter below
            first_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
            info["exporter_fallback"] = first_error
    if "exporter" not in info:
        try:
            with quiet():
                torch.onnx.export(wrapped, example, str(out), dynamo=False, input_names=["pixel_values"],
                                  output_names=outputs, opset_version=opset or 17,
                                  dynamic_axes={"pixel_values": {0: "batch"}, **{o: {0: "batch"} for o in outputs}})
            info["exporter"] = "torchscript"
        except Exception as exc:  # noqa: BLE001 - both failures are reported together
            raise ExportError(
                f"could not export the model to ONNX (dynamo: {first_error or 'not tried'}; torchscript: "
                f"{type(exc).__name__}: {str(exc)[:300]}).",
                hint="report the model name; predict with --backend torch meanwhile") from exc
    import onnx

    proto = onnx.load(str(out), load_external_data=False)
    info["opset"] = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    return info
