"""Data and preprocessing: the pairs file and the ADE20k tree -> pairs, images and label maps, resized as the
reference does; model outputs -> images at ground-truth size."""
