"""How good are the quick reference checkpoints? KID on held-out images, next to the data's own.

A KID means little alone, so this prints it next to the floor that the data itself sets: the KID
between training images and held-out images (both real samples of the same distribution; it
is about 0 up to estimation noise). Every KID here uses the same weight-free offline features
(the quick references are trained on synthetic images without internet), one kernel over all
images at once, and the held-out images that no reference trained on: the synthetic
validation split (`synthetic_garden`, seed 1).

    python benchmarks/reference_quality.py --images 256
"""

import argparse
import time

import numpy as np
from keras import ops

from diffusion_course.data import SYNTHETIC_IMAGES, to_unit_range
from diffusion_course.kid import kernel_inception_distance, make_encoder
from diffusion_course.models import load_model
from diffusion_course.references import reference_checkpoint
from diffusion_course.samplers import DDIMSampler, DDPMSampler
from diffusion_course.synthetic import synthetic_garden


def kid(encoder, real_images, generated_images):
    real_features = encoder(ops.convert_to_tensor(real_images), training=False)
    generated_features = encoder(ops.convert_to_tensor(generated_images), training=False)
    return float(kernel_inception_distance(real_features, generated_features))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256, help="images per set (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated images' noise")
    args = parser.parse_args()

    size = 16  # the quick profile's
    held_out = synthetic_garden(args.images, size, seed=1)
    training = synthetic_garden(SYNTHETIC_IMAGES["train"], size, seed=0)[:args.images]
    encoder = make_encoder("offline", size)
    print(f"KID, offline features ({encoder.feature_name}), {args.images} vs {args.images} "
          "images; held-out = synthetic validation images")
    print(f"  training images (the data itself)   {kid(encoder, held_out, training):8.4f}")

    noise = np.random.default_rng(args.seed).standard_normal(
        (args.images, size, size, 3)).astype("float32")
    ddpm, manifest = load_model(reference_checkpoint("quick", "ddpm"))
    for name, sampler in (("DDPM, 1000 steps", DDPMSampler(ddpm.diffusion)),
                          ("DDIM, 50 steps", DDIMSampler(ddpm.diffusion, num_steps=50, eta=0.0)),
                          ("DDIM, 20 steps", DDIMSampler(ddpm.diffusion, num_steps=20, eta=0.0)),
                          ("DDIM, 1 step", DDIMSampler(ddpm.diffusion, num_steps=1, eta=0.0))):
        start = time.perf_counter()
        images = to_unit_range(sampler.sample(ddpm.ema_network, noise, seed=args.seed))
        print(f"  ddpm reference ({manifest['step']} steps), {name:16s} "
              f"{kid(encoder, held_out, images):8.4f}   ({time.perf_counter() - start:.0f} s)")
    ddim, manifest = load_model(reference_checkpoint("quick", "ddim"))
    for steps in (20, 5):
        images = ddim.generate(args.images, steps, seed=args.seed)
        print(f"  ddim reference ({manifest['step']} steps), {steps} steps       "
              f"{kid(encoder, held_out, images):8.4f}")


if __name__ == "__main__":
    main()
