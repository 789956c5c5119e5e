"""How much faster is the compiled DDPM sampler than a `predict` loop (the course's tf.keras 2 lab)?

Both run the same randomly initialised attention U-Net (weights do not change the speed) on the
same batch of noise for the same number of steps, with the same seed, so their images must agree
too. Compilation is timed separately: `warm_up` traces and compiles the loop (running one
step), and the seed-style loop's first `predict` builds Keras's predict function.

    python benchmarks/sampling_speed.py --profile quick --steps 1000 --batch 16 --repeats 1
    python benchmarks/sampling_speed.py --profile full --steps 20 --batch 2

`--steps` sets the model's number of timesteps T (DDPM samples every one of them); the cost of
a step does not depend on the noise schedule, so fewer steps only make the benchmark shorter.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from diffusion_course.config import PROFILES, DDPMConfig  # noqa: E402
from diffusion_course.gaussian_diffusion import GaussianDiffusion  # noqa: E402
from diffusion_course.networks import build_attention_unet  # noqa: E402
from diffusion_course.samplers import DDPMSampler, sample_step_by_step  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=PROFILES, default="quick",
                        help="network size: the DDPMConfig profile (default: quick)")
    parser.add_argument("--steps", type=int, default=1000,
                        help="number of sampling steps, i.e. the model's timesteps (default: 1000)")
    parser.add_argument("--batch", type=int, default=16, help="images per batch (default: 16)")
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="XLA for the compiled sampler's step (default: auto)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each sampler, alternating; the fastest counts "
                             "(default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error(f"--steps={args.steps} is too small: use at least 2.")
    if args.batch < 1:
        parser.error(f"--batch={args.batch} is invalid: use at least 1.")
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats} is invalid: use at least 1.")
    return args


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main():
    args = parse_args()
    keras.utils.set_random_seed(args.seed)
    config = DDPMConfig.from_profile(args.profile, timesteps=args.steps)
    diffusion = GaussianDiffusion(config.beta_start, config.beta_end, config.timesteps,
                                  config.clip_min, config.clip_max)
    network = build_attention_unet(config)
    initial_noise = np.random.default_rng(args.seed).standard_normal(
        (args.batch, config.image_size, config.image_size, 3)).astype("float32")
    jit_compile = {"auto": "auto", "on": True, "off": False}[args.jit_compile]

    print(f"backend {keras.backend.backend()}, profile {args.profile} "
          f"({network.count_params():,} parameters), {args.steps} steps, batch {args.batch}")

    # the tf.keras 2 lab's loop: one predict per step; its first call builds the predict function
    timesteps = np.full((args.batch,), args.steps - 1, dtype="int32")
    _, seed_style_build = timed(network.predict, [initial_noise, timesteps],
                                batch_size=args.batch, verbose=0)
    # ours: warming up compiles the loop (and runs one step)
    sampler = DDPMSampler(diffusion, jit_compile=jit_compile)
    _, compile_time = timed(sampler.warm_up, network, initial_noise)

    # alternate the two, so that both see the same load on a shared machine; keep the fastest
    seed_style_times, compiled_times = [], []
    for _ in range(args.repeats):
        seed_style_images, seconds = timed(sample_step_by_step, network, diffusion,
                                           initial_noise, seed=args.seed)
        seed_style_times.append(seconds)
        compiled_images, seconds = timed(sampler.sample, network, initial_noise, seed=args.seed)
        compiled_times.append(seconds)

    seed_style_per_step = min(seed_style_times) / args.steps
    compiled_per_step = min(compiled_times) / args.steps
    print(f"seed-style predict loop: {seed_style_per_step * 1000:9.2f} ms/step "
          f"(first predict, which builds it: {seed_style_build:.2f} s)")
    print(f"compiled loop:           {compiled_per_step * 1000:9.2f} ms/step "
          f"(compile, with one step: {compile_time:.2f} s)")
    print(f"speed-up (seconds per step, seed-style / compiled): "
          f"{seed_style_per_step / compiled_per_step:.2f}x (best of {args.repeats} runs each)")
    print(f"max |difference| between their images: "
          f"{np.abs(seed_style_images - compiled_images).max():.2e}")


if __name__ == "__main__":
    main()
