"""The translation model (CoCosNet interface): three named inputs, one RGB tanh output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import openvino as ov

from evalkit import defaults
from evalkit.config import ModelSpec, RuntimeSpec
from evalkit.errors import InputError
from evalkit.preprocess import image_tensor
from evalkit.runtime import CompiledModel, compile_model, find_or_add_output, fix_static_shape, read_model


@dataclass
class Translator:
    """A compiled translation model and the input convention it was declared with."""

    spec: ModelSpec
    model: CompiledModel

    def translate(self, mask: np.ndarray, exemplar_bgr: np.ndarray, exemplar_mask: np.ndarray) -> np.ndarray:
        """Run the model on one pair.

        Parameters
        ----------
        mask, exemplar_mask
            One-hot ``151 x 256 x 256`` float32 arrays.
        exemplar_bgr
            The resized exemplar, ``256 x 256 x 3`` uint8 BGR; this model's colour order and
            normalisation are applied here.

        Returns
        -------
        numpy.ndarray
            The raw ``3 x 256 x 256`` float32 output (RGB, tanh range).
        """
        t = self.spec.tensors
        feed = {
            t.input_seg_map: mask[np.newaxis],
            t.ref_image: image_tensor(exemplar_bgr, self.spec.ref_image),
            t.ref_seg_map: exemplar_mask[np.newaxis],
        }
        (out,) = self.model.infer(feed)
        return out[0]


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


def load_translator(core: ov.Core, spec: ModelSpec, runtime: RuntimeSpec) -> Translator:
    """Read, check (names and shapes, by name) and compile one translation model."""
    assert spec.path is not None, "config completeness is checked before loading"
    model, out_idx = read_translator_model(core, spec)
    t = spec.tensors
    compiled = compile_model(core, model, runtime, spec.path)
    return Translator(
        spec=spec,
        model=CompiledModel(
            path=spec.path,
            compiled=compiled,
            input_names=(t.input_seg_map, t.ref_image, t.ref_seg_map),
            output_indices=(out_idx,),
        ),
    )
