"""Synthetic flower-like images, for machines that cannot download Oxford Flowers.

They are chosen explicitly (the source "synthetic"), or as a fallback that every plot title
labels, never silently. Two generators:

- `synthetic_flowers`: varied radial flowers (4-8 petals of any colour, anywhere near the
  middle, on any background gradient). The autograder calibrated its KID margins on these
  (autograder/verdicts/training.py): change them only together with a re-measurement there.
- `synthetic_garden`: fewer kinds of flower (5 or 6 petals in one of six garden colours,
  around a brown or yellow centre, on green foliage). A model small enough to train on a CPU in
  minutes learns to draw them recognisably, so the data source "synthetic" of the labs, the
  assignment and the quick reference checkpoints uses these.
"""

import numpy as np

# petal colours of the garden: yellow, pink, purple, white, red, orange
GARDEN_PETAL_COLOURS = np.array([[1.00, 0.85, 0.10], [1.00, 0.45, 0.70], [0.60, 0.30, 0.90],
                                 [0.95, 0.95, 0.95], [0.90, 0.15, 0.15], [1.00, 0.55, 0.10]],
                                np.float32)
GARDEN_CENTRE_COLOURS = np.array([[0.35, 0.20, 0.05], [1.00, 0.80, 0.10]], np.float32)


def _draw_flower(y, x, image_size, background, centre, size, petals, rotation, petal_colour,
                 centre_colour, petal_depth):
    """One image: petals around a centre over `background`, edges antialiased over 1.5 px."""
    radius = np.hypot(y - centre[0], x - centre[1])
    angle = np.arctan2(y - centre[0], x - centre[1])
    # a petal's outline in polar coordinates: r(θ) = size · (1 - d + d·|cos(petals · θ / 2)|)
    outline = size * (1 - petal_depth + petal_depth * np.abs(np.cos(petals * (angle + rotation)
                                                                     / 2)))
    petal_mask = np.clip((outline - radius) * image_size / 1.5, 0.0, 1.0)[..., None]
    centre_mask = np.clip((0.3 * size - radius) * image_size / 1.5, 0.0, 1.0)[..., None]
    image = background * (1 - petal_mask) + petal_colour * petal_mask
    image = image * (1 - centre_mask) + centre_colour * centre_mask
    return np.clip(image, 0.0, 1.0)


def _pixel_coordinates(image_size):
    coordinates = (np.arange(image_size) + 0.5) / image_size
    return np.meshgrid(coordinates, coordinates, indexing="ij")


def synthetic_flowers(num_images, image_size, seed=0):
    """float32 images in [0, 1], shaped (num_images, image_size, image_size, 3)."""
    rng = np.random.default_rng(seed)
    y, x = _pixel_coordinates(image_size)
    images = np.empty((num_images, image_size, image_size, 3), np.float32)
    for index in range(num_images):
        top, bottom = rng.uniform(0.0, 0.6, 3), rng.uniform(0.1, 0.7, 3)
        background = top + (bottom - top) * y[..., None]
        centre = rng.uniform(0.35, 0.65, 2)
        petals = rng.integers(4, 9)
        size = rng.uniform(0.25, 0.45)
        rotation = rng.uniform(0, np.pi)
        petal_colour = rng.uniform(0.3, 1.0, 3)
        centre_colour = rng.uniform(0.0, 1.0, 3)
        images[index] = _draw_flower(y, x, image_size, background, centre, size, petals,
                                     rotation, petal_colour, centre_colour, petal_depth=0.65)
    return images


def synthetic_garden(num_images, image_size, seed=0):
    """float32 images in [0, 1], shaped (num_images, image_size, image_size, 3): one large
    flower per image, in garden colours on green foliage."""
    rng = np.random.default_rng(seed)
    y, x = _pixel_coordinates(image_size)
    images = np.empty((num_images, image_size, image_size, 3), np.float32)
    for index in range(num_images):
        # foliage: a dark green that lightens towards the bottom
        top = np.array([0.05, 0.25, 0.08]) * rng.uniform(0.7, 1.3)
        background = top + np.array([0.05, 0.15, 0.04]) * y[..., None]
        centre = rng.uniform(0.42, 0.58, 2)
        petals = rng.integers(5, 7)
        size = rng.uniform(0.36, 0.46)
        rotation = rng.uniform(0, np.pi)
        petal_colour = GARDEN_PETAL_COLOURS[rng.integers(len(GARDEN_PETAL_COLOURS))]
        petal_colour = np.clip(petal_colour + rng.uniform(-0.05, 0.05, 3), 0.0, 1.0)
        centre_colour = GARDEN_CENTRE_COLOURS[rng.integers(len(GARDEN_CENTRE_COLOURS))]
        images[index] = _draw_flower(y, x, image_size, background, centre, size, petals,
                                     rotation, petal_colour, centre_colour, petal_depth=0.75)
    return images
