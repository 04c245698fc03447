"""Stand-in models with the interfaces of CoCosNet and googlenet-v3, built with OpenVINO's opset API.

The real models cannot be downloaded here, so evalkit's demo, its tests and the golden figures of the
reference tool run on these. They are small, deterministic and do something image-like, so every metric gets
values in a sensible range:

- the translation stand-in paints each pixel of the input mask with its class's mean colour in the exemplar
  (classes absent from the exemplar get the exemplar's global mean colour), then smooths with a fixed 3x3
  convolution and squashes with ``tanh``. It has CoCosNet's exact interface (input order, names, shapes, RGB
  output in [-1, 1]).
- the verifier stand-in has googlenet-v3's OMZ IR interface: ``input`` [1,3,299,299] BGR 0..255 with the
  normalisation baked in, an inner node ``InceptionV3/Logits/AvgPool_1a_8x8/AvgPool`` [1,2048,1,1] (not an
  output) and a single Result ``InceptionV3/Predictions/Softmax`` [1,1001].

Only operations of opset 13 or older are used, so that OpenVINO 2023.3 (the reference tool's runtime) reads
the IR files. Every node is named explicitly: auto-generated names carry a process-wide counter, which would
make the ``.xml`` files differ from one build to the next.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import openvino as ov
import openvino.opset13 as ops

from evalkit.demo.dataset import directory_lock, write_json_atomic
from evalkit.fileio import sha256_file

__all__ = [
    "AVGPOOL_NAME",
    "BUILD_VERSION",
    "SOFTMAX_NAME",
    "TRANSLATION_INPUTS",
    "TRANSLATION_OUTPUT",
    "VERIFIER_INPUT",
    "StandinPaths",
    "build_degraded_translation_model",
    "build_translation_model",
    "build_verifier_model",
    "save_standins",
    "standins_ready",
]

#: Bump whenever a change here changes the bytes of the saved IR files: it invalidates the stamp of every
#: directory that ``save_standins`` filled before (and tests/fixtures/golden_reference.json must be redone).
BUILD_VERSION = 1

TRANSLATION_INPUTS = ("input_seg_map", "ref_image", "ref_seg_map")
TRANSLATION_OUTPUT = "exemplar_based_output"
VERIFIER_INPUT = "input"
AVGPOOL_NAME = "InceptionV3/Logits/AvgPool_1a_8x8/AvgPool"
SOFTMAX_NAME = "InceptionV3/Predictions/Softmax"

_SIZE = 256  # CoCosNet's working resolution
_CLASSES = 151  # ADE20k: 150 classes + 0 ("other"), one-hot channel v for label value v
_VERIFIER_SIZE = 299
_FEATURES = 2048
_LOGITS = 1001
# Channels of the strided 3x3 convolutions: 299 -> 149 -> 74 -> 36 -> 17 -> 8.
_VERIFIER_CHANNELS = (8, 16, 24, 32, 32)
# Spread of the calibrated logits over classes; sets how peaked the softmax is (IS on varied images ~ 5-15).
_LOGIT_STD = 3.0
_TANH_GAIN = 1.2  # uses a good part of [-1, 1] without saturating: tanh(1.2) = 0.83
_STAMP = "standins.json"
_FILES = {
    "original": "original.xml",
    "original_baked": "original_baked.xml",
    "converted": "converted.xml",
    "verifier": "verifier.xml",
    "int8_sensitive": "int8_sensitive.xml",
}


@dataclass(frozen=True)
class StandinPaths:
    """Where ``save_standins`` put the five stand-in IR files (each ``.xml`` has its ``.bin`` beside it).

    Attributes
    ----------
    original : Path
        FP32 translation IR; ``ref_image`` is RGB, ``(x - 127.5) / 127.5`` (like the PyTorch/ONNX CoCosNet).
    original_baked : Path
        The same weights, ``ref_image`` BGR 0..255 (channel reversal and normalisation inside the graph, like
        the OMZ IR). This is the one to give the reference tool.
    converted : Path
        ``original_baked`` saved with FP16 weight compression: the "converted model" of the accuracy table.
    verifier : Path
        googlenet-v3-like verifier IR.
    int8_sensitive : Path
        FP32 translation IR with ``original``'s interface whose default INT8 quantization loses real
        accuracy (``build_translation_model(int8_sensitive=True)``): the case for ``compress --max-drop``.
    """

    original: Path
    original_baked: Path
    converted: Path
    verifier: Path
    int8_sensitive: Path


# ------------------------------------------------------------------------------------------------------------
# Translation stand-in
# ------------------------------------------------------------------------------------------------------------


def _named(node: ov.Node, name: str) -> ov.Node:
    """Give a node a fixed friendly name (see the module docstring for why every node needs one)."""
    node.set_friendly_name(name)
    return node


def _const(value: np.ndarray | float | list[int], name: str, dtype: type = np.float32) -> ov.Node:
    """A named constant of the given dtype."""
    return ops.constant(np.asarray(value, dtype=dtype), name=name)


def _parameter(shape: list[int], name: str) -> ov.Node:
    """A named f32 input whose tensor carries the same name (tensor names are what callers feed by)."""
    node = ops.parameter(shape, np.float32, name=name)
    node.output(0).get_tensor().set_names({name})
    return node


def _result(node: ov.Node, name: str) -> ov.Node:
    """Name ``node`` and its output tensor ``name`` and end the graph there.

    The Result gets Model Optimizer's ``<name>/sink_port_0``, as in the OMZ IR files.
    """
    _named(node, name)
    node.output(0).get_tensor().set_names({name})
    return ops.result(node, name=f"{name}/sink_port_0")


def _bgr255_to_rgb_normalised(image: ov.Node, prefix: str) -> ov.Node:
    """BGR 0..255 -> RGB ``(x - 127.5) / 127.5``, as Model Optimizer bakes it in.

    (``--reverse_input_channels --mean_values=127.5 --scale_values=127.5``: a Gather, a Subtract, a Divide.)
    """
    indices = _const([2, 1, 0], f"{prefix}/reverse_channels/indices", np.int64)
    axis = _const(1, f"{prefix}/reverse_channels/axis", np.int64)
    rgb = ops.gather(image, indices, axis, name=f"{prefix}/reverse_channels")
    centred = ops.subtract(rgb, _const(127.5, f"{prefix}/mean/value"), name=f"{prefix}/mean")
    return ops.divide(centred, _const(127.5, f"{prefix}/scale/value"), name=f"{prefix}/scale")


def _smoothing_kernel(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded 3x3 convolution weights (3 -> 3 channels) and bias: mostly a blur, slight channel mixing.

    Each output channel's weights sum to about 1, so the painted colours keep their level.
    """
    rng = np.random.default_rng(seed)
    blur = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
    mixing = 0.04 + 0.03 * rng.random((3, 3))  # small off-diagonal leak between colour channels
    np.fill_diagonal(mixing, 0.0)
    np.fill_diagonal(mixing, 1.0 - mixing.sum(axis=1))
    weights = mixing[:, :, None, None] * blur + 0.01 * rng.standard_normal((3, 3, 3, 3))
    bias = 0.02 * rng.standard_normal(3)
    return weights.astype(np.float32), bias.astype(np.float32)


#: The ``int8_sensitive`` stand-in carries pixel counts in units of this many pixels (0..32 at 256 x 256):
#: large beside colours in [-1, 1], so that one INT8 scale for both leaves colour steps of ~0.25.
_COUNT_UNIT = 2048.0


def _paint_with_counts(palette: ov.Node, counts: ov.Node, global_mean: ov.Node, in_masks: ov.Node) -> ov.Node:
    """Paint with ``[colour | pixel count]`` rows; a pixel whose class the exemplar lacks (count 0) takes the
    exemplar's global mean colour.

    In float this is the plain painting (the palette already holds the global mean for absent classes).
    The one MatMul sees colours in [-1, 1] beside counts up to 32 units: harmless in float, ruinous under
    a per-tensor INT8 scale (see ``int8_sensitive`` of :func:`build_translation_model`). Greater and
    Select are not quantized, so the MatMul is the one operation that costs accuracy.
    """
    units = ops.divide(counts, _const(_COUNT_UNIT, "paint/count_unit"), name="paint/counts")
    rows = ops.concat([palette, units], 1, name="paint/rows")  # [151, 4]
    painted = ops.matmul(rows, in_masks, True, False, name="paint")  # [4, pixels]

    def rows_of(start: int, stop: int, name: str) -> ov.Node:
        return ops.slice(
            painted,
            _const([start], f"{name}/start", np.int64),
            _const([stop], f"{name}/stop", np.int64),
            _const([1], f"{name}/step", np.int64),
            _const([0], f"{name}/axes", np.int64),
            name=name,
        )

    colours, count = rows_of(0, 3, "paint/colours"), rows_of(3, 4, "paint/count")
    present = ops.greater(count, _const(0.0, "paint/present/zero"), name="paint/present")
    mean = ops.reshape(
        global_mean, _const([3, 1], "paint/global_mean/shape", np.int64), False, name="paint/global_mean"
    )
    return ops.select(present, colours, mean, name="paint/image_flat")


def build_translation_model(
    *,
    ref_image_convention: Literal["rgb-normalised", "bgr-0-255"],
    seed: int = 0,
    int8_sensitive: bool = False,
) -> ov.Model:
    """Build the CoCosNet stand-in.

    Parameters
    ----------
    ref_image_convention : {"rgb-normalised", "bgr-0-255"}
        What ``ref_image`` takes: RGB ``(x - 127.5) / 127.5`` (the original model) or BGR 0..255 with the
        channel reversal and normalisation inside the graph (the OMZ IR).
    seed : int
        Seed of the smoothing convolution's weights. Both conventions with the same seed compute the same
        function.
    int8_sensitive : bool
        Carry each class's exemplar pixel count (in units of 2048 pixels) beside its mean colour through
        the painting MatMul, and paint classes the exemplar lacks with its global mean by that count. In
        float this computes what the plain stand-in computes (up to rounding); under INT8 post-training
        quantization the MatMul's input (colours in [-1, 1] beside counts up to 32) gets one per-tensor
        scale whose step (~0.25) coarsens every colour: a stand-in whose default INT8 loses real accuracy,
        so that accuracy control (``evalkit compress --max-drop``) has something to restore.

    Returns
    -------
    ov.Model
        Inputs, in this order (the reference tool feeds by position): ``input_seg_map`` [1,151,256,256]
        (one-hot input mask), ``ref_image`` [1,3,256,256], ``ref_seg_map`` [1,151,256,256] (one-hot exemplar
        mask), all f32. Output ``exemplar_based_output`` [1,3,256,256] f32, RGB, in [-1, 1].
    """
    if ref_image_convention not in ("rgb-normalised", "bgr-0-255"):
        raise ValueError(f"unknown ref_image_convention {ref_image_convention!r}")
    pixels = _SIZE * _SIZE
    input_seg_map = _parameter([1, _CLASSES, _SIZE, _SIZE], "input_seg_map")
    ref_image = _parameter([1, 3, _SIZE, _SIZE], "ref_image")
    ref_seg_map = _parameter([1, _CLASSES, _SIZE, _SIZE], "ref_seg_map")

    exemplar: ov.Node = ref_image
    if ref_image_convention == "bgr-0-255":
        exemplar = _bgr255_to_rgb_normalised(ref_image, "ref_image")
    exemplar = ops.reshape(
        exemplar, _const([3, pixels], "exemplar/flat/shape", np.int64), False, name="exemplar/flat"
    )
    ref_masks = ops.reshape(
        ref_seg_map,
        _const([_CLASSES, pixels], "ref_masks/flat/shape", np.int64),
        False,
        name="ref_masks/flat",
    )

    # Mean colour per class: colour sums by one MatMul, divided by the pixel count (at least 1).
    sums = ops.matmul(ref_masks, exemplar, False, True, name="palette/sums")  # [151, 3]
    counts = ops.reduce_sum(
        ref_masks, _const([1], "palette/counts/axes", np.int64), True, name="palette/counts"
    )  # [151, 1]
    safe_counts = ops.maximum(counts, _const(1.0, "palette/one"), name="palette/safe_counts")
    means = ops.divide(sums, safe_counts, name="palette/means")
    global_mean = ops.reduce_mean(
        exemplar, _const([1], "palette/global_mean/axes", np.int64), False, name="palette/global_mean"
    )  # [3], broadcasts over classes
    present = ops.greater(counts, _const(0.0, "palette/zero"), name="palette/present")
    palette = ops.select(present, means, global_mean, name="palette")  # [151, 3]

    # Paint: every pixel of the one-hot input mask picks its class's row of the palette.
    in_masks = ops.reshape(
        input_seg_map,
        _const([_CLASSES, pixels], "in_masks/flat/shape", np.int64),
        False,
        name="in_masks/flat",
    )
    if int8_sensitive:
        painted = _paint_with_counts(palette, counts, global_mean, in_masks)
    else:
        painted = ops.matmul(palette, in_masks, True, False, name="paint")  # [3, pixels]
    painted = ops.reshape(
        painted, _const([1, 3, _SIZE, _SIZE], "paint/image/shape", np.int64), False, name="paint/image"
    )

    # Edge padding keeps the borders from fading towards grey, as zero padding would.
    # The pad value is unused in "edge" mode, but an implicit one would get an auto-generated name.
    padded = ops.pad(
        painted,
        _const([0, 0, 1, 1], "smooth/pad/begin", np.int64),
        _const([0, 0, 1, 1], "smooth/pad/end", np.int64),
        "edge",
        _const(0.0, "smooth/pad/value"),
        name="smooth/pad",
    )
    weights, bias = _smoothing_kernel(seed)
    conv = ops.convolution(
        padded, _const(weights, "smooth/weights"), [1, 1], [0, 0], [0, 0], [1, 1], name="smooth/conv"
    )
    biased = ops.add(conv, _const(bias.reshape(1, 3, 1, 1), "smooth/bias/value"), name="smooth/bias")
    gained = ops.multiply(biased, _const(_TANH_GAIN, "output/gain/value"), name="output/gain")
    output = _result(ops.tanh(gained), TRANSLATION_OUTPUT)
    return ov.Model([output], [input_seg_map, ref_image, ref_seg_map], "cocosnet_standin")


def build_degraded_translation_model(
    noise: float, fade: float = 0.0, *, seed: int = 0, pattern_seed: int = 1
) -> ov.Model:
    """The original translation stand-in (RGB-normalised ``ref_image``), faded and with a noise pattern.

    ``output = clip((1 - fade) * original + noise * P, -1, 1)`` with ``P`` one seeded standard-normal
    image, the same for every pair: a candidate whose metrics drift smoothly from the original's as
    ``noise`` (PSNR, SSIM, IS) and ``fade`` (contrast towards grey: also FID and KID) grow; 0 and 0 give
    the original's outputs. For ladders of "slightly worse" models (``benchmarks/sequential.py``, the
    sequential gate's tests).
    """
    model = build_translation_model(ref_image_convention="rgb-normalised", seed=seed)
    source = model.get_results()[0].input_value(0)
    source.get_tensor().set_names(set())  # the name moves to the new output below
    pattern = np.random.default_rng(pattern_seed).standard_normal((1, 3, _SIZE, _SIZE))
    faded = ops.multiply(source, _const(1.0 - fade, "degrade/fade/value"), name="degrade/fade")
    noised = ops.add(faded, _const(noise * pattern, "degrade/pattern"), name="degrade/add")
    clipped = ops.clamp(noised, -1.0, 1.0, name="degrade/clip")
    output = _result(clipped, TRANSLATION_OUTPUT)
    return ov.Model([output], list(model.get_parameters()), "cocosnet_standin_degraded")


# ------------------------------------------------------------------------------------------------------------
# Verifier stand-in
# ------------------------------------------------------------------------------------------------------------


def _round_sig(values: np.ndarray, digits: int = 4) -> np.ndarray:
    """Round to ``digits`` significant decimal digits.

    Calibrated constants are computed in float64, whose last bits may depend on the machine's BLAS kernels;
    rounding them makes the saved weights (and so the IR hashes tied to the golden figures) the same
    everywhere.
    """
    values = np.asarray(values, dtype=np.float64)
    return np.array([float(f"{v:.{digits}g}") for v in values.ravel()]).reshape(values.shape)


def _round_abs(values: np.ndarray, quantum: float = 1.0 / 1024.0) -> np.ndarray:
    """Round O(1) offsets to a fixed absolute grid (same reason as :func:`_round_sig`)."""
    return np.round(np.asarray(values, dtype=np.float64) / quantum) * quantum


def _calibration_images(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` varied BGR 0..255 images [N,3,299,299] (float64): coloured Voronoi regions under a gradient.

    They stand for "natural" inputs when the verifier's layers are scaled, like data-dependent initialisation.
    """
    size = _VERIFIER_SIZE
    yy, xx = np.meshgrid(np.linspace(0.0, 1.0, size), np.linspace(0.0, 1.0, size), indexing="ij")
    images = np.empty((count, 3, size, size))
    for i in range(count):
        cells = int(rng.integers(3, 10))
        points = rng.random((cells, 2))
        colours = rng.uniform(0.0, 255.0, (cells, 3))
        distance = (yy[None] - points[:, 0, None, None]) ** 2 + (xx[None] - points[:, 1, None, None]) ** 2
        image = colours[np.argmin(distance, axis=0)].transpose(2, 0, 1)
        angle = rng.uniform(0.0, 2.0 * np.pi)
        image += rng.uniform(10.0, 50.0) * (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5))
        images[i] = np.clip(image, 0.0, 255.0)
    return images


def _conv_stride2(batch: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Valid 3x3 convolution with stride 2 (cross-correlation, as OpenVINO's Convolution) in float64."""
    windows = np.lib.stride_tricks.sliding_window_view(batch, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    return np.einsum("nchwij,ocij->nohw", windows, weights, optimize=True)


def _calibrate_relu(pre: np.ndarray, active: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel gain and bias that make ``pre`` roughly unit-variance and shifted by ``active`` std.

    Returns the (rounded) gain and bias; a shift of 0.5 std keeps about 70 % of the units active, so no
    channel is dead and the features vary between images.
    """
    axes = tuple(i for i in range(pre.ndim) if i != 1)
    gain = _round_sig(1.0 / np.maximum(pre.std(axis=axes), 1e-12), 3)
    bias = _round_abs(active - pre.mean(axis=axes) * gain)
    return gain, bias


def _verifier_weights(seed: int) -> dict[str, np.ndarray]:
    """Random weights, scaled on calibration images so that every layer is alive and the softmax is graded."""
    weights_seq, images_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(weights_seq)
    images = _calibration_images(np.random.default_rng(images_seq), 24)
    activations = (images[:, ::-1] - 127.5) / 127.5  # the graph's own BGR -> RGB and normalisation

    params: dict[str, np.ndarray] = {}
    in_channels = 3
    for index, out_channels in enumerate(_VERIFIER_CHANNELS):
        raw = rng.standard_normal((out_channels, in_channels, 3, 3), dtype=np.float32)
        pre = _conv_stride2(activations, raw.astype(np.float64))
        gain, bias = _calibrate_relu(pre)
        params[f"conv{index}/weights"] = raw * gain.astype(np.float32)[:, None, None, None]
        params[f"conv{index}/bias"] = bias.astype(np.float32)
        # Carry on with exactly the stored float32 weights, so the next layer is calibrated on what runs.
        stored = params[f"conv{index}/weights"].astype(np.float64)
        activations = np.maximum(_conv_stride2(activations, stored) + bias[None, :, None, None], 0.0)
        in_channels = out_channels

    raw = rng.standard_normal((_FEATURES, in_channels, 1, 1), dtype=np.float32)
    pre = np.einsum("nchw,oc->nohw", activations, raw[:, :, 0, 0].astype(np.float64))
    gain, bias = _calibrate_relu(pre)
    params["features/weights"] = raw * gain.astype(np.float32)[:, None, None, None]
    params["features/bias"] = bias.astype(np.float32)
    stored = params["features/weights"][:, :, 0, 0].astype(np.float64)
    features = np.maximum(np.einsum("nchw,oc->nohw", activations, stored) + bias[None, :, None, None], 0.0)
    features = features.mean(axis=(2, 3))  # the AvgPool [N, 2048]

    # Logits = gain * W (f - mean f): centring on the calibration mean removes the part shared by all images,
    # which would otherwise make every image prefer the same classes (Inception Score ~ 1).
    classifier = rng.standard_normal((_FEATURES, _LOGITS), dtype=np.float32)
    centred = (features - features.mean(axis=0)) @ classifier.astype(np.float64)
    logit_gain = _round_sig(np.array(_LOGIT_STD / centred.std()), 3).astype(np.float32)
    params["logits/weights"] = classifier * logit_gain
    stored = params["logits/weights"].astype(np.float64)
    params["logits/bias"] = _round_abs(-features.mean(axis=0) @ stored).astype(np.float32)
    return params


def build_verifier_model(*, seed: int = 0) -> ov.Model:
    """Build the googlenet-v3 stand-in (the verification network of the IS and FID metrics).

    Parameters
    ----------
    seed : int
        Seed of ``np.random.default_rng`` for the weights (and of the calibration images that scale them).

    Returns
    -------
    ov.Model
        Input ``input`` [1,3,299,299] f32, NCHW, BGR 0..255 (channel reversal and ``(x - 127.5) / 127.5``
        baked in). Five strided 3x3 Conv+ReLU (299 -> 8 spatial), a 1x1 Conv+ReLU to 2048 channels, the
        AvgPool ``InceptionV3/Logits/AvgPool_1a_8x8/AvgPool`` [1,2048,1,1] (an inner node: add it with
        ``add_outputs``), a MatMul to 1001 logits and the only Result, ``InceptionV3/Predictions/Softmax``.
    """
    params = _verifier_weights(seed)
    image = _parameter([1, 3, _VERIFIER_SIZE, _VERIFIER_SIZE], VERIFIER_INPUT)
    x = _bgr255_to_rgb_normalised(image, VERIFIER_INPUT)
    for index in range(len(_VERIFIER_CHANNELS)):
        name = f"InceptionV3/Conv2d_{index}"
        conv = ops.convolution(
            x,
            _const(params[f"conv{index}/weights"], f"{name}/weights"),
            [2, 2],
            [0, 0],
            [0, 0],
            [1, 1],
            name=f"{name}/Conv2D",
        )
        bias = _const(params[f"conv{index}/bias"].reshape(1, -1, 1, 1), f"{name}/bias")
        x = ops.relu(ops.add(conv, bias, name=f"{name}/BiasAdd"), name=f"{name}/Relu")
    name = "InceptionV3/Mixed_features"
    conv = ops.convolution(
        x,
        _const(params["features/weights"], f"{name}/weights"),
        [1, 1],
        [0, 0],
        [0, 0],
        [1, 1],
        name=f"{name}/Conv2D",
    )
    bias = _const(params["features/bias"].reshape(1, -1, 1, 1), f"{name}/bias")
    x = ops.relu(ops.add(conv, bias, name=f"{name}/BiasAdd"), name=f"{name}/Relu")

    pool = ops.avg_pool(x, [1, 1], [0, 0], [0, 0], [8, 8], True, "floor", name=AVGPOOL_NAME)
    # The harness and the reference tool add this node as an output by name: tensor name = node name (as MO).
    pool.output(0).get_tensor().set_names({AVGPOOL_NAME})
    flat = ops.reshape(
        pool,
        _const([1, _FEATURES], "InceptionV3/Logits/SpatialSqueeze/shape", np.int64),
        False,
        name="InceptionV3/Logits/SpatialSqueeze",
    )
    logits = ops.matmul(
        flat,
        _const(params["logits/weights"], "InceptionV3/Logits/weights"),
        False,
        False,
        name="InceptionV3/Logits/MatMul",
    )
    logits = ops.add(
        logits,
        _const(params["logits/bias"].reshape(1, -1), "InceptionV3/Logits/bias"),
        name="InceptionV3/Logits/BiasAdd",
    )
    softmax = _result(ops.softmax(logits, -1), SOFTMAX_NAME)
    return ov.Model([softmax], [image], "googlenet_v3_standin")


# ------------------------------------------------------------------------------------------------------------
# Saving
# ------------------------------------------------------------------------------------------------------------


def _stamp_for(seed: int) -> dict[str, object]:
    """What a stand-in directory must have been built with to be reused as it is."""
    return {"build_version": BUILD_VERSION, "seed": seed, "openvino": ov.get_version()}


def _up_to_date(directory: Path, seed: int) -> bool:
    """True when the stamp matches and every file it lists is there with its recorded hash."""
    try:
        stamp = json.loads((directory / _STAMP).read_text(encoding="utf-8"))
        files = stamp["sha256"]
        if {k: stamp.get(k) for k in _stamp_for(seed)} != _stamp_for(seed):
            return False
        expected = {f for xml in _FILES.values() for f in (xml, xml[:-4] + ".bin")}
        return set(files) == expected and all(sha256_file(directory / f) == h for f, h in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def standins_ready(directory: Path, *, seed: int = 0) -> bool:
    """True when :func:`save_standins` would reuse the stand-ins in ``directory`` as they are (no build)."""
    return _up_to_date(Path(directory), seed)


def save_standins(directory: Path, *, seed: int = 0) -> StandinPaths:
    """Write the five stand-in IRs into ``directory`` (created if needed), or reuse them if already there.

    Files: ``original``, ``original_baked``, ``converted``, ``verifier`` and ``int8_sensitive`` (``.xml`` +
    ``.bin`` each) and
    ``standins.json`` (seed, ``BUILD_VERSION``, OpenVINO version, SHA-256 of every file). Nothing is rebuilt
    when the stamp matches and the hashes check out. Files are written into a temporary folder inside
    ``directory`` and renamed into place, under a lock, so concurrent builders never leave a torn file.

    Parameters
    ----------
    directory : Path
        Destination folder.
    seed : int
        Weight seed of both the translation models and the verifier.

    Returns
    -------
    StandinPaths
        Paths of the five ``.xml`` files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = StandinPaths(**{key: directory / name for key, name in _FILES.items()})
    if _up_to_date(directory, seed):
        return paths
    with directory_lock(directory):
        if _up_to_date(directory, seed):  # another process built them while we waited
            return paths
        (directory / _STAMP).unlink(missing_ok=True)  # no stamp while files are being swapped
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=directory))
        try:
            baked = build_translation_model(ref_image_convention="bgr-0-255", seed=seed)
            rgb = build_translation_model(ref_image_convention="rgb-normalised", seed=seed)
            models: dict[str, tuple[ov.Model, bool]] = {
                "original": (rgb, False),
                "original_baked": (baked, False),
                "converted": (baked, True),
                "verifier": (build_verifier_model(seed=seed), False),
                "int8_sensitive": (
                    build_translation_model(
                        ref_image_convention="rgb-normalised", seed=seed, int8_sensitive=True
                    ),
                    False,
                ),
            }
            hashes: dict[str, str] = {}
            for key, (model, fp16) in models.items():
                # compress_to_fp16 defaults to True in ov.save_model: the FP32 files must say False.
                ov.save_model(model, staging / _FILES[key], compress_to_fp16=fp16)
            for xml in _FILES.values():
                # .bin first: a reader that finds the new .xml also finds its weights.
                for name in (xml[:-4] + ".bin", xml):
                    hashes[name] = sha256_file(staging / name)
                    os.replace(staging / name, directory / name)
            write_json_atomic(directory / _STAMP, {**_stamp_for(seed), "sha256": hashes})
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return paths
