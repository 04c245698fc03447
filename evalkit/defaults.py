"""The reference method's fixed numbers, in one place.

Every value here comes from ``cocosnet-accuracy-method.md`` (the OMZ Accuracy Checker's cocosnet method).
Changing one changes the published table; configurable settings live in :mod:`evalkit.config` instead.
"""

from __future__ import annotations

#: ADE20k label values 0..150; value v goes to one-hot channel v (0 = "other", no shift).
NUM_CLASSES = 151
#: Side of the square the masks and the exemplar are resized to (aspect ratio not kept).
MODEL_SIZE = 256
#: Side of the square the verifier sees (bilinear cv2.resize, aspect ratio not kept).
VERIFIER_SIZE = 299
#: The translation model's tanh output maps back to 0..255 as ``x * OUTPUT_SCALE + OUTPUT_SHIFT``.
OUTPUT_SCALE = 127.5
OUTPUT_SHIFT = 127.5

#: Tensor names of the real CoCosNet model (OMZ IR and the ONNX export alike).
INPUT_MASK_NAME = "input_seg_map"
EXEMPLAR_NAME = "ref_image"
EXEMPLAR_MASK_NAME = "ref_seg_map"
OUTPUT_NAME = "exemplar_based_output"

#: googlenet-v3 (Inception-V3, TF-slim weights, 1001 classes): the softmax result and the inner
#: 2048-d pooling node that FID reads (added as an extra output by name).
VERIFIER_PROBABILITIES = "InceptionV3/Predictions/Softmax"
VERIFIER_FEATURES = "InceptionV3/Logits/AvgPool_1a_8x8/AvgPool"
VERIFIER_CLASSES = 1001
VERIFIER_FEATURE_DIM = 2048

#: OpenVINO's CPU plugin may otherwise run FP32 models in bf16 and move FID in the third digit.
INFERENCE_PRECISION = "f32"
DEVICE = "CPU"

#: Pairs of each kind (largest PSNR drop, random) in the report's gallery.
GALLERY_PAIRS = 4
