"""Every default in one place: the reference method's fixed numbers, then the defaults of the settings.

The first part comes from ``cocosnet-accuracy-method.md`` (the OMZ Accuracy Checker's cocosnet method):
changing one changes the published table. The second part is what a config key or a command-line flag
takes when it is not given; :mod:`evalkit.config`, the command line's help and the library read them here.
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
#: The verifier's probabilities output must have at least this many classes (an ImageNet classifier's softmax;
#: fewer classes means the output named is not the classifier's probabilities, and IS would be meaningless).
VERIFIER_MIN_CLASSES = 1000
#: How far from 1 the probabilities of the probe image may sum. A softmax sums to 1 up to rounding (f32:
#: ~1e-6; bf16/f16 inference precision: ~1e-3); logits miss it by far more.
VERIFIER_PROBABILITY_TOLERANCE = 1e-2

#: OpenVINO's CPU plugin may otherwise run FP32 models in bf16 and move FID in the third digit.
INFERENCE_PRECISION = "f32"
DEVICE = "CPU"

# ------------------------------------------------------------------- defaults of configurable settings

#: ``output``: where reports go when neither the config nor ``--output`` says (relative to the cwd).
OUTPUT = "reports/evalkit"
#: ``dataset.max_pixels``: the most pixels (width x height) an image of a pair may declare; a larger one is
#: refused from its header, before it is decoded (a 60000 x 60000 PNG header would otherwise ask for ~10 GB).
#: ADE20k's largest validation image is ~2 Mpx, far below it; 40 Mpx of RGB is ~120 MB decoded.
MAX_PIXELS = 40_000_000
#: Largest pairs file read (bytes): ADE20k's lists 2000 pairs in 962 kB; a bound keeps
#: ``--pairs /dev/zero`` (or a wrong, huge file) from filling the memory.
PAIRS_FILE_MAX_BYTES = 64 * 1024 * 1024
#: YAML files (configs, gate files) are refused past these bounds instead of expanding aliases without end
#: ("billion laughs") or recursing past Python's stack: configs are small and shallow.
YAML_MAX_ALIASES = 100
YAML_MAX_NODES = 100_000
YAML_MAX_DEPTH = 50
#: An offending value is quoted in an error message up to this many characters (the message stays one line).
ERROR_VALUE_CHARS = 80
#: ``runtime.reader_threads``: threads reading and preprocessing pairs ahead of inference.
READER_THREADS = 2
#: ``runtime.one_hot``: label maps expanded to one-hot inside the model graph ("graph") or by NumPy.
ONE_HOT = "graph"
#: ``metrics.ssim_constants``: the reference tool's SSIM constants.
SSIM_CONSTANTS = "reference"
#: ``metrics.fid_method``: how FID's matrix square root is taken ("auto": chosen by the feature counts).
FID_METHOD = "auto"
#: ``metrics.profile`` (``--metrics``): "all" adds the extended table and the paired comparison.
METRIC_PROFILE = "all"
#: ``metrics.bootstrap`` (``--bootstrap``): resamples of the paired comparison's intervals (0 = off).
BOOTSTRAP = 200
#: ``metrics.seed``: seed of the bootstrap, KID's subsets, the extended IS splits and the gallery.
SEED = 0

#: ``sequential.alpha`` (``--alpha``): the error level of a sequential gate's decisions (each gated metric's
#: chance of a decision that differs from the full run's gate).
SEQUENTIAL_ALPHA = 0.05
#: ``sequential.look_every`` (``--look-every``): pairs between two looks of a sequential gate (the first look
#: comes after at most a quarter of the listed pairs).
SEQUENTIAL_LOOK_EVERY = 50

#: ``--gallery-pairs``: pairs of each kind (largest PSNR drop, random) in the report's gallery.
GALLERY_PAIRS = 4
#: ``evalkit compress --calibration-pairs``: pairs NNCF calibrates on (NNCF's own default subset size).
CALIBRATION_PAIRS = 300
#: ``--shard-size``: consecutive pairs per Dask task.
SHARD_SIZE = 16
#: ``evalkit demo --output``: not tracked by git (the committed example report is ``reports/demo/``).
DEMO_OUTPUT = "evalkit-demo"
#: ``evalkit demo --pairs``: synthetic pairs.
DEMO_PAIRS = 32
