"""Synthetic flower-like images, for machines that cannot download Oxford Flowers.

They are chosen explicitly (the source "synthetic"), never as a silent fallback: the autograder
uses them because it has no internet, and tests use them because they are deterministic. Each
image is a radial flower: a number of petals of one colour around a centre of another, on a
smooth background gradient, with random position, size and rotation.
"""

import numpy as np


def synthetic_flowers(num_images, image_size, seed=0):
    """float32 images in [0, 1], shaped (num_images, image_size, image_size, 3)."""
    rng = np.random.default_rng(seed)
    coordinates = (np.arange(image_size) + 0.5) / image_size
    y, x = np.meshgrid(coordinates, coordinates, indexing="ij")
    images = np.empty((num_images, image_size, image_size, 3), np.float32)
    for index in range(num_images):
        top, bottom = rng.uniform(0.0, 0.6, 3), rng.uniform(0.1, 0.7, 3)
        background = top + (bottom - top) * y[..., None]

        centre_y, centre_x = rng.uniform(0.35, 0.65, 2)
        radius = np.hypot(y - centre_y, x - centre_x)
        angle = np.arctan2(y - centre_y, x - centre_x)
        petals = rng.integers(4, 9)
        size = rng.uniform(0.25, 0.45)
        # a petal's outline in polar coordinates: r(θ) = size · |cos(petals · θ / 2)|
        outline = size * (0.35 + 0.65 * np.abs(np.cos(petals * (angle + rng.uniform(0, np.pi))
                                                      / 2)))
        petal_mask = np.clip((outline - radius) * image_size / 1.5, 0.0, 1.0)[..., None]
        centre_mask = np.clip((0.3 * size - radius) * image_size / 1.5, 0.0, 1.0)[..., None]

        petal_colour = rng.uniform(0.3, 1.0, 3)
        centre_colour = rng.uniform(0.0, 1.0, 3)
        image = background * (1 - petal_mask) + petal_colour * petal_mask
        image = image * (1 - centre_mask) + centre_colour * centre_mask
        images[index] = np.clip(image, 0.0, 1.0)
    return images
