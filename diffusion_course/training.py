"""Callbacks that watch a diffusion model train: KID on validation images, and sample grids.

KID is measured at the end of an epoch, not in every validation step: generating images is the
expensive part, and a metric computed once per epoch is enough to pick the best checkpoint.
"""

from pathlib import Path

import keras
import numpy as np

from diffusion_course.plotting import enlargement, image_grid, save_image_grid
from diffusion_course.samplers import initial_noise

GRID_GAP = 4  # white pixels between the images of a saved grid


class KIDCallback(keras.callbacks.Callback):
    """Adds `val_kid` to the epoch logs: KID of generated vs validation images.

    Put it before a `ModelCheckpoint(monitor="val_kid")` in the callback list, so the value is
    in the logs when the checkpoint callback reads them.
    """

    def __init__(self, validation_images, kid, diffusion_steps, max_batches=None, seed=0,
                 verbose=True):
        super().__init__()
        self.validation_images = validation_images
        self.kid = kid
        self.diffusion_steps = diffusion_steps
        self.max_batches = max_batches
        self.seed = seed
        self.verbose = verbose
        self.history = []

    def measure(self):
        """KID of freshly generated images against the validation images."""
        self.kid.reset_state()
        for batch_index, real_images in enumerate(self.validation_images):
            if self.max_batches is not None and batch_index >= self.max_batches:
                break
            generated_images = self.model.generate(
                int(real_images.shape[0]), self.diffusion_steps, seed=self.seed + batch_index)
            self.kid.update_state(real_images, generated_images)
        return float(self.kid.result())

    def on_epoch_end(self, epoch, logs=None):
        value = self.measure()
        self.history.append(value)
        if logs is not None:
            logs["val_kid"] = value
        if self.verbose:
            print(f"epoch {epoch + 1}: {self.kid.describe(value)}")


class SampleGridCallback(keras.callbacks.Callback):
    """Generates the same initial noise every epoch and keeps (and optionally saves) the grids.

    Fixed noise makes the grids comparable across epochs, which is what a training GIF shows.
    With `show=True` a notebook displays each grid as it is made, titled `title` with the epoch
    filled in ("samples after epoch {epoch}"): the flowers appear while the model trains.
    """

    def __init__(self, num_images=18, diffusion_steps=20, directory=None, num_cols=6, seed=0,
                 show=False, title="samples after epoch {epoch}"):
        super().__init__()
        self.num_images = num_images
        self.diffusion_steps = diffusion_steps
        self.directory = Path(directory) if directory else None
        self.num_cols = num_cols
        self.seed = seed
        self.show = show
        self.title = title
        self.frames = []

    def on_epoch_end(self, epoch, logs=None):
        size = self.model.config.image_size
        noise = initial_noise(self.num_images, size, self.seed)
        images = np.asarray(self.model.generate(self.num_images, self.diffusion_steps,
                                                initial_noise=noise))
        self.frames.append(images)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            save_image_grid(images, self.directory / f"epoch_{epoch + 1:03d}.png",
                            self.num_cols, scale=enlargement(size), gap=GRID_GAP)
        if self.show:
            from IPython.display import display

            display(image_grid(images, num_cols=self.num_cols,
                               title=self.title.format(epoch=epoch + 1)))
