"""diffusion_course: the shared library of the diffusion-models course kit.

One module per concept: `config` (hyperparameter profiles), `data` (Oxford Flowers and image
folders), `gaussian_diffusion` (the DDPM utility), `networks` (U-Nets and EMA), `ddim` and `ddpm`
(the trainable models), `samplers` (compiled sampling loops), `kid` (the quality metric),
`checkpoints` and `plotting`.
"""

__version__ = "0.1.0"
