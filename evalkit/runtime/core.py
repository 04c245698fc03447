"""OpenVINO: read, check and compile models; feed by name; pin the inference precision.

Knows nothing of ADE20k or metrics: it turns a model file plus the declared interface into a compiled
model whose inputs and outputs have been checked, with one-line errors naming the file and the tensor.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import openvino as ov

from evalkit.config import RuntimeSpec
from evalkit.errors import InputError
from evalkit.fileio import sha256_file

try:
    import fcntl
except ImportError:  # Windows: the thread lock only (OpenVINO recompiles a blob it cannot read)
    fcntl = None  # type: ignore[assignment]


def make_core() -> ov.Core:
    """A fresh OpenVINO core (one per run; no global state)."""
    return ov.Core()


def read_model(core: ov.Core, path: Path, what: str) -> ov.Model:
    """Read any format OpenVINO reads (IR ``.xml`` + ``.bin``, ``.onnx``, ...)."""
    if not path.exists():
        raise InputError(f"{path}: {what} model file not found")
    if not path.is_file():  # checked before any open: a FIFO would block
        kind = "a directory" if path.is_dir() else "a special file (FIFO, socket or device)"
        raise InputError(f"{path}: is {kind}, not a {what} model file")
    if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
        raise InputError(f"{path.with_suffix('.bin')}: {what} weights (.bin beside the .xml) not found")
    try:
        return core.read_model(str(path))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line text
        raise InputError(f"{path}: cannot read {what} model: {openvino_message(exc)}") from None


#: Lines of an OpenVINO error that name a C++ source location, not the problem: "Exception from
#: src/inference/src/cpp/core.cpp:84:" and "Check 'is_valid_weights_range(...)' failed at src/...:900:".
_CPP_FRAME = re.compile(r"^(Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:)$")


def openvino_message(exc: BaseException) -> str:
    """The first line of an OpenVINO error that says what is wrong, without the C++ frames.

    OpenVINO's messages start with one line per C++ frame the exception passed (``Exception from
    src/...cpp:84:``); the useful line (e.g. ``Incorrect weights in bin file!``) comes after them.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not _CPP_FRAME.match(line)]
    return (useful or lines or [type(exc).__name__])[0]


#: OpenVINO CPU threads per stream, always. The CPU plugin's f32 kernels are not invariant to the thread
#: count (the stand-in translation models' outputs differ in their last bits between one and two threads per
#: stream, OpenVINO 2026.4). With one thread per stream every inference runs the same kernels whatever the
#: number of streams, requests or cores, so every executor and every pipelining setting gives the same bits.
THREADS_PER_STREAM = 1

CompileMode = Literal["latency", "throughput"]


def _is_cpu(device: str) -> bool:
    return device.split(".")[0].upper() == "CPU"


def _compile(
    core: ov.Core, model: ov.Model, device: str, config: dict[str, Any], path: Path
) -> ov.CompiledModel:
    try:
        return core.compile_model(model, device, config)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line text
        raise InputError(f"{path}: cannot compile for device {device}: {openvino_message(exc)}") from None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else the CPU count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def compile_model(
    core: ov.Core,
    model: ov.Model,
    runtime: RuntimeSpec,
    path: Path,
    *,
    mode: CompileMode = "latency",
    cache_dir: Path | None = None,
) -> ov.CompiledModel:
    """Compile with the inference precision and the CPU threads per stream pinned.

    Parameters
    ----------
    core, model
        The OpenVINO core and the read (and checked) model.
    runtime
        Device, inference precision and, for ``mode="throughput"``, ``streams`` (``None``: on the CPU one
        per usable core, elsewhere the THROUGHPUT hint's choice).
    path
        The model file, for error messages.
    mode
        ``"latency"``: one stream, for one synchronous request at a time (the sequential executor, Dask
        workers, the gallery). ``"throughput"``: the THROUGHPUT hint, for many requests in flight (the
        pipelined executor).
    cache_dir
        OpenVINO's compiled-model cache (its ``CACHE_DIR``): a model compiled once with the same graph,
        weights and properties is then imported from there instead of compiled (same bits, tested).
        ``None``: no cache. See :func:`compiled_cache_lock` for how writers sharing it are kept apart.

    Notes
    -----
    On the CPU every stream gets :data:`THREADS_PER_STREAM` thread, in both modes, so the numbers depend
    neither on the mode nor on the number of streams or cores: a 2-core runner and a 64-core workstation
    with the same CPU type agree bit for bit (CPUs with other instruction sets may run other kernels). The
    price is that one synchronous request uses one core.
    """
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": runtime.inference_precision}
    cpu = _is_cpu(runtime.device)
    if mode == "latency":
        if cpu:
            config |= {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": THREADS_PER_STREAM}
    else:
        config["PERFORMANCE_HINT"] = "THROUGHPUT"
        if cpu:
            streams = runtime.streams or usable_cpus()
            config |= {"NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": streams * THREADS_PER_STREAM}
        elif runtime.streams is not None:
            config["NUM_STREAMS"] = runtime.streams
    if cache_dir is None:
        return _compile(core, model, runtime.device, config, path)
    with compiled_cache_lock(cache_dir) as usable:
        if usable:
            config["CACHE_DIR"] = str(cache_dir)
        return _compile(core, model, runtime.device, config, path)


#: One compilation with the compiled-model cache at a time in this process (OpenVINO's own guard is per
#: core, and every run makes its own core).
_CACHE_THREAD_LOCK = threading.Lock()
_LOCK_FILE = ".evalkit-lock"


@contextlib.contextmanager
def compiled_cache_lock(cache_dir: Path) -> Iterator[bool]:
    """Hold ``cache_dir`` for one compilation; yields whether the cache may be used.

    OpenVINO writes a cache blob in place (no temporary file and rename), so a process reading a blob
    that another one is still writing could map a file that changes under it. Compilations that use the
    cache therefore take an exclusive ``lockf`` lock on a file in the folder (POSIX record locks also hold
    between hosts on NFS and other shared file systems) and this process's thread lock: the first worker
    compiles and writes, the others then import. Where the folder cannot be created or locked (read-only,
    no lock support), the model is compiled without the cache: it only saves time.
    """
    with _CACHE_THREAD_LOCK:
        fd = _lock_cache_folder(cache_dir)
        try:
            yield fd is not None
        finally:
            if fd is not None and fd >= 0:
                fcntl.lockf(fd, fcntl.LOCK_UN)
                os.close(fd)


def _lock_cache_folder(cache_dir: Path) -> int | None:
    # The locked descriptor (-1 where there is no fcntl), or None when the cache cannot be used.
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return -1
        fd = os.open(cache_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd


def optimal_requests(compiled: ov.CompiledModel, runtime: RuntimeSpec) -> int:
    """Infer requests to keep in flight: ``runtime.requests``, else what OpenVINO says is optimal."""
    if runtime.requests is not None:
        return runtime.requests
    try:
        return max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    except RuntimeError:  # a plugin without the property
        return 1


def model_sha256(path: Path) -> str:
    """sha256 of a model: of the file, or for an IR of the ``.xml`` bytes followed by the ``.bin`` bytes."""
    weights = path.with_suffix(".bin")
    return sha256_file(path, weights) if path.suffix == ".xml" and weights.is_file() else sha256_file(path)


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


def nonfinite_error(path: Path, compiled: ov.CompiledModel, index: int, out: np.ndarray) -> InputError | None:
    """The error for output ``index`` of ``compiled`` if ``out`` holds NaN or Inf, else ``None``."""
    if np.all(np.isfinite(out)):
        return None
    name = ", ".join(sorted(compiled.outputs[index].get_names()))
    return InputError(f"{path}: output '{name}' contains NaN or Inf")


@dataclass
class CompiledModel:
    """A checked, compiled model, fed and read by name.

    :meth:`infer` runs one synchronous request; the pipelined executor makes its own requests and reads
    them with :meth:`outputs_of` and :meth:`check_finite`.
    """

    path: Path
    compiled: ov.CompiledModel
    input_names: tuple[str, ...]
    output_indices: tuple[int, ...]
    _request: ov.InferRequest | None = field(default=None, init=False, repr=False)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference; returns copies of the selected outputs in ``output_indices`` order."""
        if self._request is None:  # made on first use: the pipelined executor never needs it
            self._request = self.compiled.create_infer_request()
        self._request.infer(dict(inputs))
        outs = self.outputs_of(self._request)
        error = self.check_finite(outs)
        if error is not None:
            raise error
        return outs

    def outputs_of(self, request: ov.InferRequest) -> list[np.ndarray]:
        """Copies of the selected outputs of a finished ``request``, in ``output_indices`` order."""
        return [request.get_output_tensor(i).data.copy() for i in self.output_indices]

    def check_finite(self, outs: Sequence[np.ndarray]) -> InputError | None:
        """The error naming the first selected output that holds NaN or Inf, else ``None``."""
        for idx, out in zip(self.output_indices, outs, strict=True):
            error = nonfinite_error(self.path, self.compiled, idx, out)
            if error is not None:
                return error
        return None
