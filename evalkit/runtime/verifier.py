"""The Inception-V3 verifier: one pass per image gives both the IS probabilities and the FID features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov

from evalkit import defaults
from evalkit.config import InputConvention, RuntimeSpec, VerifierSpec
from evalkit.data.preprocess import VERIFIER_INTERPOLATION, image_tensor, verifier_image
from evalkit.errors import InputError
from evalkit.runtime.core import CompiledModel, CompileMode, compile_model, find_or_add_output, read_model


@dataclass(frozen=True)
class VerifierOutput:
    """What the verifier says about one image."""

    probabilities: np.ndarray  #: softmax row, e.g. 1001 values (background class included)
    features: np.ndarray  #: pooled features, e.g. 2048 values


@dataclass(frozen=True)
class VerifierPreprocessing:
    """Every parameter that turns a uint8 RGB image into the verifier's input tensor.

    :meth:`Verifier.feed` applies exactly these values, and the ground-truth feature cache builds its key
    from them (:class:`evalkit.execution.cache.VerifierIdentity`), so a change to any of them is a new
    key. A new parameter of the preprocessing belongs here, or the cache cannot see it.
    """

    size: tuple[int, int]  #: (height, width) of the input, read from the model (square)
    layout: str  #: "NCHW" or "NHWC", read from the model
    convention: InputConvention  #: channel order, then ``(x - mean) / scale`` (config ``verifier.input``)
    interpolation: int = VERIFIER_INTERPOLATION  #: the ``cv2.resize`` flag from ground-truth size to ``size``

    def tensor(self, rgb: np.ndarray) -> np.ndarray:
        """The input tensor of one uint8 RGB image at ground-truth resolution."""
        bgr = verifier_image(rgb, size=self.size[0], interpolation=self.interpolation)
        return image_tensor(bgr, self.convention, layout=self.layout)


@dataclass
class Verifier:
    """A compiled verifier with its preprocessing (layout and size read from the model, not assumed)."""

    spec: VerifierSpec
    model: CompiledModel
    preprocessing: VerifierPreprocessing

    @property
    def layout(self) -> str:
        """"NCHW" or "NHWC"."""
        return self.preprocessing.layout

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the input."""
        return self.preprocessing.size

    def __call__(self, rgb: np.ndarray) -> VerifierOutput:
        """Verify one uint8 RGB image at ground-truth resolution (both outputs from one inference)."""
        return self.output(self.model.infer(self.feed(rgb)))

    def feed(self, rgb: np.ndarray) -> dict[str, np.ndarray]:
        """The verifier's input for one uint8 RGB image at ground-truth resolution, by tensor name."""
        return {self.model.input_names[0]: self.preprocessing.tensor(rgb)}

    @staticmethod
    def output(outs: list[np.ndarray]) -> VerifierOutput:
        """The verifier's two selected outputs (probabilities, features) as flat rows."""
        probs, feats = outs
        return VerifierOutput(probabilities=probs.reshape(-1), features=feats.reshape(-1))


def _layout(shape: list[int], path: Path) -> tuple[str, tuple[int, int]]:
    if len(shape) == 4 and shape[0] == 1 and shape[1] == 3 and shape[2] == shape[3]:
        return "NCHW", (shape[2], shape[3])
    if len(shape) == 4 and shape[0] == 1 and shape[3] == 3 and shape[1] == shape[2]:
        return "NHWC", (shape[1], shape[2])
    raise InputError(
        f"{path}: verifier input has shape {shape}; expected [1,3,S,S] (NCHW) or [1,S,S,3] (NHWC)"
    )


@dataclass(frozen=True)
class VerifierInterface:
    """A read and checked verifier model: its layout, input size and the indices of both outputs."""

    model: ov.Model
    input_name: str
    layout: str
    size: tuple[int, int]
    probabilities_index: int
    features_index: int


def read_verifier_model(core: ov.Core, spec: VerifierSpec) -> VerifierInterface:
    """Read the verifier, add its features node as an output if needed, and check its interface."""
    assert spec.path is not None, "config completeness is checked before loading"
    model = read_model(core, spec.path, "verifier")
    if len(model.inputs) != 1:
        raise InputError(f"{spec.path}: verifier has {len(model.inputs)} inputs, expected 1")
    port = model.inputs[0]
    pshape = port.get_partial_shape()
    if pshape.is_dynamic:
        raise InputError(
            f"{spec.path}: verifier input has dynamic shape {pshape}; reshape it to a static one"
        )
    layout, size = _layout(list(pshape.to_shape()), spec.path)
    probs_idx = find_or_add_output(
        model, spec.probabilities_output, spec.path, "verifier.probabilities_output"
    )
    feats_idx = find_or_add_output(model, spec.features_output, spec.path, "verifier.features_output")
    check_output_sizes(spec, _static_size(model, probs_idx), _static_size(model, feats_idx))
    return VerifierInterface(model, port.get_any_name(), layout, size, probs_idx, feats_idx)


def _static_size(model: ov.Model, index: int) -> int | None:
    # Values per image of one output, when the model's shape says so (None: dynamic).
    pshape = model.outputs[index].get_partial_shape()
    return int(np.prod(list(pshape.to_shape()))) if pshape.is_static else None


def check_output_sizes(spec: VerifierSpec, n_probabilities: int | None, n_features: int | None) -> None:
    """Check the sizes of the two selected outputs (``None``: not known, not checked).

    The probabilities output needs at least :data:`evalkit.defaults.VERIFIER_MIN_CLASSES` classes and the
    features output ``spec.feature_size`` values; the two outputs named the wrong way round are said to be
    swapped rather than reported as two separate problems.

    Raises
    ------
    InputError
        One line naming the verifier file, the output and the config key.
    """
    minimum, size = defaults.VERIFIER_MIN_CLASSES, spec.feature_size
    if (
        n_probabilities is not None
        and n_features is not None
        and n_probabilities == size
        and n_features >= minimum
        and n_features != size
    ):
        raise InputError(_swapped(spec))
    if n_probabilities is not None and n_probabilities < minimum:
        raise InputError(
            f"{spec.path}: verifier output '{spec.probabilities_output}' has {n_probabilities} values, "
            f"expected a probability vector of at least {minimum} classes: point "
            "verifier.probabilities_output at the classifier's softmax"
        )
    if n_features is not None and n_features != size:
        raise InputError(
            f"{spec.path}: verifier output '{spec.features_output}' has {n_features} values, "
            f"verifier.feature_size is {size}: point verifier.features_output at the pooled features "
            "or set verifier.feature_size"
        )


def _swapped(spec: VerifierSpec) -> str:
    return (
        f"{spec.path}: verifier outputs look swapped: probabilities_output '{spec.probabilities_output}' "
        f"has the feature size and features_output '{spec.features_output}' looks like the class "
        "probabilities; exchange verifier.probabilities_output and verifier.features_output"
    )


def _is_probability_vector(values: np.ndarray) -> bool:
    tolerance = defaults.VERIFIER_PROBABILITY_TOLERANCE
    return bool(np.all(values >= 0) and abs(float(values.sum(dtype=np.float64)) - 1.0) <= tolerance)


def probe_verifier(verifier: Verifier) -> None:
    """Run the verifier once on a mid-grey image and check that it is what the config claims.

    The probabilities output must be a probability vector (finite, non-negative, summing to 1 within
    :data:`evalkit.defaults.VERIFIER_PROBABILITY_TOLERANCE`) of at least
    :data:`evalkit.defaults.VERIFIER_MIN_CLASSES` classes, and the features output must have
    ``verifier.feature_size`` finite values. This catches what the static shapes cannot: a logits output
    named instead of the softmax, and outputs of dynamic shape.

    Raises
    ------
    InputError
        One line naming the verifier file, the output and what to change in the config.
    """
    spec = verifier.spec
    grey = np.full((*verifier.size, 3), 128, dtype=np.uint8)  # deterministic, valid for any classifier
    out = verifier(grey)
    probs, feats = out.probabilities, out.features
    for name, values in ((spec.probabilities_output, probs), (spec.features_output, feats)):
        if not np.all(np.isfinite(values)):
            raise InputError(
                f"{spec.path}: verifier output '{name}' has NaN or infinite values on a grey image"
            )
    if probs.size == spec.feature_size and feats.size >= defaults.VERIFIER_MIN_CLASSES and (
        _is_probability_vector(feats)
    ):
        raise InputError(_swapped(spec))
    check_output_sizes(spec, probs.size, feats.size)
    if not _is_probability_vector(probs):
        negative = " and has negative values" if np.any(probs < 0) else ""
        raise InputError(
            f"{spec.path}: verifier output '{spec.probabilities_output}' is not a probability vector "
            f"(sums to {float(probs.sum(dtype=np.float64)):.4g}{negative}): point "
            "verifier.probabilities_output at the softmax"
        )


def load_verifier(
    core: ov.Core,
    spec: VerifierSpec,
    runtime: RuntimeSpec,
    *,
    mode: CompileMode = "latency",
    cache_dir: Path | None = None,
) -> Verifier:
    """Read, check, compile and probe the verifier (see :func:`evalkit.runtime.core.compile_model` for
    ``mode`` and ``cache_dir``, :func:`probe_verifier` for the probe): no IS or FID is computed from a
    verifier that is not what the config claims."""
    assert spec.path is not None, "config completeness is checked before loading"
    interface = read_verifier_model(core, spec)
    compiled = compile_model(core, interface.model, runtime, spec.path, mode=mode, cache_dir=cache_dir)
    verifier = Verifier(
        spec=spec,
        model=CompiledModel(
            path=spec.path,
            compiled=compiled,
            input_names=(interface.input_name,),
            output_indices=(interface.probabilities_index, interface.features_index),
        ),
        preprocessing=VerifierPreprocessing(
            size=interface.size, layout=interface.layout, convention=spec.input
        ),
    )
    probe_verifier(verifier)
    return verifier
