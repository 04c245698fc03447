"""The translation model (CoCosNet interface): three named inputs, one RGB tanh output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as opset

from evalkit import defaults
from evalkit.config import ModelSpec, OneHotPlacement, RuntimeSpec
from evalkit.data.preprocess import image_tensor, one_hot
from evalkit.errors import InputError
from evalkit.runtime.core import (
    CompiledModel,
    CompileMode,
    compile_model,
    find_or_add_output,
    fix_static_shape,
    read_model,
)


@dataclass
class Translator:
    """A compiled translation model and the input convention it was declared with.

    With ``one_hot="graph"`` the compiled model has a OneHot op in front of each mask input and is fed
    the 256 x 256 uint8 label maps; with ``"host"`` it is the model as read, fed NumPy one-hot arrays.
    """

    spec: ModelSpec
    model: CompiledModel
    one_hot: OneHotPlacement = "graph"

    def feed(
        self, mask: np.ndarray, exemplar_bgr: np.ndarray, exemplar_mask: np.ndarray
    ) -> dict[str, np.ndarray]:
        """The model's inputs by tensor name.

        Parameters
        ----------
        mask, exemplar_mask
            ``256 x 256`` uint8 label maps (values 0..150), nearest-neighbour resized.
        exemplar_bgr
            The resized exemplar, ``256 x 256 x 3`` uint8 BGR; this model's colour order and
            normalisation are applied here.
        """
        return model_inputs(self.spec, mask, exemplar_bgr, exemplar_mask, one_hot_placement=self.one_hot)

    def translate(self, mask: np.ndarray, exemplar_bgr: np.ndarray, exemplar_mask: np.ndarray) -> np.ndarray:
        """Run the model on one pair (arguments as :meth:`feed`); returns the raw ``3 x 256 x 256`` float32
        output (RGB, tanh range)."""
        (out,) = self.model.infer(self.feed(mask, exemplar_bgr, exemplar_mask))
        return out[0]


def model_inputs(
    spec: ModelSpec,
    mask: np.ndarray,
    exemplar_bgr: np.ndarray,
    exemplar_mask: np.ndarray,
    *,
    one_hot_placement: OneHotPlacement,
) -> dict[str, np.ndarray]:
    """The inputs of the model ``spec`` for one pair, by tensor name (what :meth:`Translator.feed` feeds).

    Parameters
    ----------
    spec
        The model's tensor names and ``ref_image`` convention.
    mask, exemplar_bgr, exemplar_mask
        As :meth:`Translator.feed`.
    one_hot_placement
        ``"graph"``: the masks as ``1 x 256 x 256`` uint8 labels, for a model with :func:`one_hot_in_graph`
        applied; ``"host"``: ``1 x 151 x 256 x 256`` float32 one-hot arrays, the model file's own inputs.

    Notes
    -----
    Both placements give the model the same 0/1 floats; NNCF calibration (``evalkit compress``) feeds
    ``"host"``, because it works on the model file as read, before any OneHot is put in front of it.
    """
    t = spec.tensors
    if one_hot_placement == "graph":
        masks = mask[np.newaxis], exemplar_mask[np.newaxis]
    else:
        masks = one_hot(mask)[np.newaxis], one_hot(exemplar_mask)[np.newaxis]
    return {
        t.input_seg_map: masks[0],
        t.ref_image: image_tensor(exemplar_bgr, spec.ref_image),
        t.ref_seg_map: masks[1],
    }


def one_hot_in_graph(
    model: ov.Model, names: tuple[str, ...], num_classes: int = defaults.NUM_CLASSES
) -> None:
    """Replace each named ``1 x C x H x W`` float input by a ``1 x H x W`` uint8 label input and a OneHot op.

    The model then computes on exactly the 0/1 floats :func:`evalkit.data.preprocess.one_hot` would have fed
    it, without 2 x 40 MiB of host memory written and copied per pair. The new input keeps the tensor
    name, so the model is still fed by name.
    """
    for name in names:
        port = next(p for p in model.inputs if name in p.get_names())
        _, classes, height, width = port.get_partial_shape().to_shape()
        assert classes == num_classes, "shapes are checked by read_translator_model"
        labels = opset.parameter([1, height, width], ov.Type.u8, name=f"{name}/labels")
        indices = opset.convert(labels, ov.Type.i32)
        encoded = opset.one_hot(indices, np.int32(classes), np.float32(1), np.float32(0), axis=1)
        dense = opset.convert(encoded, port.get_element_type())
        old = port.get_node()
        for target in port.get_target_inputs():
            target.replace_source_output(dense.output(0))
        model.remove_parameter(old)
        model.add_parameters([labels])
        old.output(0).get_tensor().set_names(set())
        labels.output(0).get_tensor().set_names({name})
    model.validate_nodes_and_infer_types()


def read_translator_model(core: ov.Core, spec: ModelSpec) -> tuple[ov.Model, int]:
    """Read one translation model and check its inputs and output by name; returns it and the output index."""
    assert spec.path is not None, "config completeness is checked before loading"
    model = read_model(core, spec.path, f"translation ({spec.name})")
    t = spec.tensors
    mask_shape = (1, defaults.NUM_CLASSES, defaults.MODEL_SIZE, defaults.MODEL_SIZE)
    image_shape = (1, 3, defaults.MODEL_SIZE, defaults.MODEL_SIZE)
    key = f"models.{spec.name}.tensors"
    fix_static_shape(
        model,
        {t.input_seg_map: mask_shape, t.ref_image: image_shape, t.ref_seg_map: mask_shape},
        spec.path,
        key,
    )
    out_idx = find_or_add_output(model, t.output, spec.path, f"{key}.output")
    out_shape = model.outputs[out_idx].get_partial_shape()
    if out_shape.is_dynamic or list(out_shape.to_shape()) != list(image_shape):
        raise InputError(
            f"{spec.path}: output '{t.output}' has shape {out_shape}, expected {list(image_shape)}"
        )
    return model, out_idx


def load_translator(
    core: ov.Core,
    spec: ModelSpec,
    runtime: RuntimeSpec,
    *,
    mode: CompileMode = "latency",
    cache_dir: Path | None = None,
) -> Translator:
    """Read, check (names and shapes, by name) and compile one translation model (see
    :func:`evalkit.runtime.core.compile_model` for ``mode`` and ``cache_dir``)."""
    assert spec.path is not None, "config completeness is checked before loading"
    model, out_idx = read_translator_model(core, spec)
    t = spec.tensors
    if runtime.one_hot == "graph":
        one_hot_in_graph(model, (t.input_seg_map, t.ref_seg_map))
    compiled = compile_model(core, model, runtime, spec.path, mode=mode, cache_dir=cache_dir)
    return Translator(
        spec=spec,
        model=CompiledModel(
            path=spec.path,
            compiled=compiled,
            input_names=(t.input_seg_map, t.ref_image, t.ref_seg_map),
            output_indices=(out_idx,),
        ),
        one_hot=runtime.one_hot,
    )
