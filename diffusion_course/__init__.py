"""diffusion_course: the shared library of the diffusion-models course kit.

One module per concept: `config` (hyperparameter profiles), `data` (Oxford Flowers and image
folders), `gaussian_diffusion` (the DDPM utility), `networks` (U-Nets and EMA), `ddim` and `ddpm`
(the trainable models), `models` (the two by name: build or load one), `samplers` (compiled
sampling loops), `kid` (the quality metric), `checkpoints` and `plotting`; `selfcheck` (the
assignment's visible checks), `training` (callbacks), `synthetic` (offline test images),
`devices` (GPU, XLA and mixed precision), `runtime` (threads, seeds, determinism), and the TA
command line (`cli`, `references`, `reference_archives`: `python -m diffusion_course --help`).
"""

__version__ = "0.1.0"

import warnings

# Keras 3.15 warns on every fit() with a tf.data dataset that its shuffle=True default is
# ignored; our pipelines shuffle themselves, so the warning only adds noise (and stderr output
# zeroes an nbgrader test cell).
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
