"""ONNX Runtime backends: ``onnx`` (fp32) and ``onnx-int8`` (static int8, QDQ).

:data:`recog.runtime.backends.BACKENDS` names both; this module needs
``onnxruntime`` and is imported only when one of them is asked for.

Each backend creates its ``InferenceSession`` once, with explicit thread
counts (``threads`` = intra-op threads, default: the CPUs this process may
run on; inter-op parallelism is off, since image classifiers are one chain of
operators) and full graph optimization (Conv+BN+ReLU fusion, NCHWc layouts).
Idle workers spin between runs by default (lowest latency); pass
``spin=False`` when several models share few cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from recog.errors import BundleError, ConfigError
from recog.models.bundle import BundleManifest

#: backend name → default file name in the bundle.
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


def default_threads() -> int:
    """CPUs this process may run on (respects taskset / cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None, *, spin: bool = True) -> "ort.SessionOptions":
    """Session options with explicit threads and full graph optimization.

    Args:
        threads: intra-op threads; None = all CPUs this process may use.
        spin: let idle worker threads spin briefly between runs. On (ONNX
            Runtime's default) halves batch-1 latency of small models; turn
            it off when several sessions or processes share few cores, since
            one session's spinning workers slow the others down.
    """
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}.")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return so


def create_session(path: str | Path, threads: int | None = None, *, spin: bool = True) -> "ort.InferenceSession":
    """An ``InferenceSession`` on the CPU for an ONNX file (see :func:`session_options`)."""
    return ort.InferenceSession(str(path), session_options(threads, spin=spin), providers=["CPUExecutionProvider"])


class OnnxBackend:
    """Runs one of the bundle's ONNX exports with ONNX Runtime on the CPU.

    Args:
        manifest: the verified bundle manifest.
        export: ``"onnx"`` or ``"onnx-int8"`` (the key in recog.json ``exports``).
        threads: intra-op threads; None = all CPUs this process may use.
        spin: idle workers spin between runs (see :func:`session_options`).
        allow_unverified: load an export whose parity check did not pass
            (for debugging only).

    Raises:
        BundleError: the bundle has no such export, or its check refused it.
    """

    def __init__(self, manifest: BundleManifest, *, export: str = "onnx", threads: int | None = None,
                 spin: bool = True, allow_unverified: bool = False, device: str = "cpu") -> None:
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}.")
        if device != "cpu":
            raise ConfigError(f"the {export} backend runs on the CPU; got device={device!r}.",
                              hint="use --backend torch for other devices")
        entry = manifest.exports.get(export)
        fname = (entry or {}).get("file")
        fix = f"run `recog export {manifest.path} --format onnx" + (" --quantize int8 --calibration DIR`"
                                                                    if export == "onnx-int8" else "`")
        if not entry or not fname or fname not in manifest.files:
            raise BundleError(f"{manifest.path}: no {export} export in this bundle.", hint=fix)
        if not entry.get("verified") and not allow_unverified:
            raise BundleError(f"{manifest.path}: the {export} export did not pass its accuracy check "
                              f"({entry.get('refused', 'not verified')}).", hint=fix)
        self.name = export
        self.file = manifest.path / fname
        self.threads = threads or default_threads()
        self.spin = spin
        self.session = create_session(self.file, self.threads, spin=spin)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        #: exports made since the OOD score uses embedding distance carry the head's input as ``features``.
        self.features_name = next((o.name for o in self.session.get_outputs()[1:] if o.name == "features"), None)
        batch_dim = self.session.get_inputs()[0].shape[0]
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) else None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` → the exported graph's float32 output ``(N, ...)``."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            return np.concatenate([self.infer(x[i:i + 1]) for i in range(x.shape[0])], axis=0)
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def infer_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(raw, features)`` from one run of the graph; features are None for a graph exported without them."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self.features_name is None:
            return self.infer(x), None
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            parts = [self.infer_features(x[i:i + 1]) for i in range(x.shape[0])]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        raw, features = self.session.run([self.output_name, self.features_name], {self.input_name: x})
        return raw, features


__all__ = ["ONNX_FILES", "OnnxBackend", "create_session", "default_threads", "session_options"]
