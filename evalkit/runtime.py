"""OpenVINO: read, check and compile models; feed by name; pin the inference precision.

Knows nothing of ADE20k or metrics: it turns a model file plus the declared interface into a compiled
model whose inputs and outputs have been checked, with one-line errors naming the file and the tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov

from evalkit.config import RuntimeSpec
from evalkit.errors import InputError


def make_core() -> ov.Core:
    """A fresh OpenVINO core (one per run; no global state)."""
    return ov.Core()


def read_model(core: ov.Core, path: Path, what: str) -> ov.Model:
    """Read any format OpenVINO reads (IR ``.xml`` + ``.bin``, ``.onnx``, ...)."""
    if not path.is_file():
        raise InputError(f"{path}: {what} model file not found")
    if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
        raise InputError(f"{path.with_suffix('.bin')}: {what} weights (.bin beside the .xml) not found")
    try:
        return core.read_model(str(path))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read {what} model: {first}") from None


def compile_model(core: ov.Core, model: ov.Model, runtime: RuntimeSpec, path: Path) -> ov.CompiledModel:
    """Compile with the inference precision pinned, so numbers do not depend on the CPU's defaults."""
    config = {"INFERENCE_PRECISION_HINT": runtime.inference_precision}
    try:
        return core.compile_model(model, runtime.device, config)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot compile for device {runtime.device}: {first}") from None


def _input_names(model: ov.Model) -> list[str]:
    return [", ".join(sorted(i.get_names())) or i.get_node().get_friendly_name() for i in model.inputs]


def find_input(model: ov.Model, name: str, path: Path, key: str) -> ov.Output:
    """The model input that has tensor name ``name``."""
    for port in model.inputs:
        if name in port.get_names():
            return port
    raise InputError(
        f"{path}: no input named '{name}' ({key}); the model's inputs are: {'; '.join(_input_names(model))}"
    )


def _result_source_name(port: ov.Output) -> str:
    # A model output is a Result node; the name people know is that of the node feeding it.
    return port.get_node().input_value(0).get_node().get_friendly_name()


def find_or_add_output(model: ov.Model, name: str, path: Path, key: str) -> int:
    """Index of the model output called ``name``, adding it with ``add_outputs`` if it is an inner node.

    ``name`` may be an output tensor name or the friendly name of the node that produces it (the
    googlenet-v3 IR's ``InceptionV3/Logits/AvgPool_1a_8x8/AvgPool`` is an inner node, not an output).
    """
    for idx, port in enumerate(model.outputs):
        if name in port.get_names() or _result_source_name(port) == name:
            return idx
    for op in model.get_ops():
        if op.get_type_name() in ("Result", "Parameter"):
            continue
        for port_idx, out in enumerate(op.outputs()):
            if name in out.get_names() or (port_idx == 0 and op.get_friendly_name() == name):
                model.add_outputs([out])
                return len(model.outputs) - 1
    outputs = "; ".join(", ".join(sorted(o.get_names())) or _result_source_name(o) for o in model.outputs)
    raise InputError(
        f"{path}: '{name}' ({key}) is neither an output nor a node of the model; outputs are: {outputs}"
    )


def fix_static_shape(model: ov.Model, shapes: Mapping[str, Sequence[int]], path: Path, what: str) -> None:
    """Check each named input against its expected static shape; give dynamic dimensions that shape.

    An ONNX export often has a dynamic batch; it is reshaped to batch 1. A static dimension that
    differs from the expected one is an error naming the input.
    """
    new_shapes = {}
    for name, expected in shapes.items():
        port = find_input(model, name, path, what)
        pshape = port.get_partial_shape()
        if pshape.rank.is_dynamic or pshape.rank.get_length() != len(expected):
            raise InputError(f"{path}: input '{name}' has shape {pshape}, expected {list(expected)}")
        for dim, want in zip(pshape, expected, strict=True):
            if dim.is_static and dim.get_length() != want:
                raise InputError(f"{path}: input '{name}' has shape {pshape}, expected {list(expected)}")
        if pshape.is_dynamic:
            new_shapes[port] = ov.PartialShape(list(expected))
        if port.get_element_type() not in (ov.Type.f32, ov.Type.f16):
            raise InputError(f"{path}: input '{name}' has type {port.get_element_type()}, expected f32")
    if new_shapes:
        model.reshape(new_shapes)


@dataclass
class CompiledModel:
    """A checked, compiled model with a reusable synchronous request, fed and read by name."""

    path: Path
    compiled: ov.CompiledModel
    input_names: tuple[str, ...]
    output_indices: tuple[int, ...]

    def __post_init__(self) -> None:
        self._request = self.compiled.create_infer_request()

    def infer(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference; returns copies of the selected outputs in ``output_indices`` order."""
        self._request.infer(dict(inputs))
        outs = [self._request.get_output_tensor(i).data.copy() for i in self.output_indices]
        for idx, out in zip(self.output_indices, outs, strict=True):
            if not np.all(np.isfinite(out)):
                name = ", ".join(sorted(self.compiled.outputs[idx].get_names()))
                raise InputError(f"{self.path}: output '{name}' contains NaN or Inf")
        return outs
