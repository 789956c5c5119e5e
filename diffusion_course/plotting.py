"""Pictures of the diffusion process: image grids, noise schedules, denoising strips and GIFs.

Every plotting function returns a `matplotlib.figure.Figure` and, given `path`, also saves it.
Figures are made without `pyplot`, so nothing opens a window and any backend works (Agg on
servers). They render themselves as PNG (`_repr_png_`), so a notebook shows a figure returned
by a cell's last line, or passed to `display()`, exactly once, with or without
`%matplotlib inline`, in Jupyter as in nbconvert/nbgrader runs. `save_image_grid` and
`write_gif` write pixels with Pillow, exactly and without any matplotlib rendering; their
`scale` and `gap` make small images large enough to see.

Images are (height, width, 3) arrays with values in [0, 1]: NumPy arrays or backend tensors.
"""

import io
import math
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter
from PIL import Image, ImageDraw, ImageFont

CELL_INCHES = 2.0  # size of one image in a figure
GAP_COLOUR = 255  # white lines between the images of a mosaic
LABEL_HEIGHT = 24  # pixels of the band above a labelled GIF frame


class NotebookFigure(Figure):
    """A Figure that notebooks display as a PNG, without pyplot or `%matplotlib inline`."""

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


# ---- pixels --------------------------------------------------------------------------------


def to_uint8(images):
    """[0, 1] floats (any shape, NumPy or tensor) -> uint8 pixels: clipped, * 255, rounded."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images  # already pixels: clipping them to [0, 1] would turn them white
    images = images.astype("float32")
    if not np.all(np.isfinite(images)):
        raise ValueError(
            f"The images hold {np.size(images) - np.count_nonzero(np.isfinite(images))} "
            "NaN or infinite values, which have no colour. The network that produced them has "
            "probably diverged: check its loss, or lower the learning rate."
        )
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype("uint8")


def enlargement(image_size, min_size=128):
    """The whole factor (`scale` of `tile_images`) that shows `image_size`-pixel images at
    least `min_size` pixels wide: a mosaic of 16-pixel images is otherwise too small to see."""
    return max(1, math.ceil(min_size / image_size))


def _image_batch(images, what="images"):
    """`images` as uint8 pixels of shape (n, height, width, 3), n >= 1, or a clear error."""
    pixels = to_uint8(images)
    if pixels.ndim != 4 or pixels.shape[-1] != 3 or pixels.shape[0] == 0:
        raise ValueError(
            f"{what} must have shape (number_of_images >= 1, height, width, 3), got "
            f"{pixels.shape}. Add a batch axis with images[None] for one image, and repeat a "
            "grey channel with np.repeat(images, 3, axis=-1)."
        )
    return pixels


def _grid_shape(num_images, num_rows=None, num_cols=None):
    """(rows, columns) that fit `num_images`: as square as possible unless one is given."""
    if num_rows is None and num_cols is None:
        num_cols = math.ceil(math.sqrt(num_images))
    if num_cols is None:
        num_cols = math.ceil(num_images / num_rows)
    if num_rows is None:
        num_rows = math.ceil(num_images / num_cols)
    if num_rows < 1 or num_cols < 1 or num_rows * num_cols < num_images:
        raise ValueError(
            f"A grid of {num_rows} rows x {num_cols} columns cannot hold {num_images} images. "
            "Pass fewer images, a larger grid, or only one of num_rows and num_cols."
        )
    return num_rows, num_cols


def _check_scale_and_gap(scale, gap):
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale={scale!r} must be a whole number >= 1 (pixels per pixel).")
    if not isinstance(gap, int) or gap < 0:
        raise ValueError(f"gap={gap!r} must be a whole number >= 0 (pixels between images).")


def tile_images(images, num_cols=None, scale=1, gap=0):
    """(n, h, w, 3) images -> one uint8 mosaic; empty cells are black.

    Each image is enlarged `scale` times (every pixel becomes a scale x scale block, so nothing
    is blurred) and the images are separated by `gap` white pixels.
    """
    _check_scale_and_gap(scale, gap)
    pixels = _image_batch(images).repeat(scale, axis=1).repeat(scale, axis=2)
    num_images, height, width, _ = pixels.shape
    num_rows, num_cols = _grid_shape(num_images, num_cols=num_cols)
    mosaic = np.full((num_rows * (height + gap) - gap, num_cols * (width + gap) - gap, 3),
                     GAP_COLOUR, "uint8")
    for index in range(num_rows * num_cols):
        row, col = divmod(index, num_cols)
        cell = pixels[index] if index < num_images else 0
        mosaic[row * (height + gap):row * (height + gap) + height,
               col * (width + gap):col * (width + gap) + width] = cell
    return mosaic


def save_image_grid(images, path, num_cols=None, scale=1, gap=0):
    """Writes the images as one PNG mosaic with Pillow (no matplotlib); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(tile_images(images, num_cols, scale, gap)).save(path)
    return path


def _with_label(mosaic, label):
    """The mosaic below a white band that shows `label` in black."""
    frame = Image.new("RGB", (mosaic.shape[1], mosaic.shape[0] + LABEL_HEIGHT), "white")
    frame.paste(Image.fromarray(mosaic), (0, LABEL_HEIGHT))
    font = ImageFont.load_default(size=LABEL_HEIGHT - 6)
    ImageDraw.Draw(frame).text((4, 2), label, fill="black", font=font)
    return frame


def write_gif(frames, path, duration_ms=100, labels=None, num_cols=None, scale=1, gap=0):
    """Writes an animated GIF that loops forever; returns the path.

    Each frame is one (h, w, 3) image or a batch (n, h, w, 3), shown as a mosaic (`num_cols`,
    `scale` and `gap` as in `tile_images`), e.g. the samples after every epoch. `labels`, one
    per frame (e.g. "epoch 3"), are written above the frames. Pillow merges a frame identical
    to the one before it into that frame, adding their durations.
    """
    if duration_ms <= 0:
        raise ValueError(f"duration_ms={duration_ms!r} must be > 0 (milliseconds per frame).")
    frames = list(frames)
    if not frames:
        raise ValueError(
            "write_gif got no frames. Pass a list of (h, w, 3) images, or of (n, h, w, 3) "
            "batches, e.g. the images after every sampling step."
        )
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"{len(labels)} labels were given for {len(frames)} frames; pass one "
                         "per frame.")
    mosaics = [tile_images(frame if np.ndim(frame) == 4 else np.asarray(frame)[None],
                           num_cols, scale, gap)
               for frame in frames]
    if len({mosaic.shape for mosaic in mosaics}) > 1:
        raise ValueError(
            f"All GIF frames must have one size, got {sorted({m.shape for m in mosaics})}. "
            "Resize the images, or pass the same number of images in every frame."
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if labels is None:
        first, *rest = [Image.fromarray(mosaic) for mosaic in mosaics]
    else:
        first, *rest = [_with_label(mosaic, str(label))
                        for mosaic, label in zip(mosaics, labels, strict=True)]
    first.save(path, save_all=True, append_images=rest, duration=duration_ms, loop=0)
    return path


# ---- figures -------------------------------------------------------------------------------


def _new_figure(num_rows, num_cols, title=None):
    """A figure of num_rows x num_cols image cells; its axes show no ticks or frames."""
    figure = NotebookFigure(figsize=(num_cols * CELL_INCHES, num_rows * CELL_INCHES),
                            layout="constrained")
    axes = figure.subplots(num_rows, num_cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    if title:
        figure.suptitle(title)
    return figure, axes


def _finish(figure, path):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    return figure


def image_grid(images, num_rows=None, num_cols=None, path=None, title=None):
    """A figure with the images in a grid (as square as possible unless a side is given)."""
    pixels = _image_batch(images)
    num_rows, num_cols = _grid_shape(len(pixels), num_rows, num_cols)
    figure, axes = _new_figure(num_rows, num_cols, title)
    for ax, image in zip(axes.flat[:len(pixels)], pixels, strict=True):
        ax.imshow(image)
    return _finish(figure, path)


def denoising_strip(rows_of_images, row_labels=None, column_labels=None, path=None, title=None):
    """A grid of process images: one row per sequence, e.g. noisy images above predictions.

    `rows_of_images` is a list of (k, h, w, 3) batches (or one (rows, k, h, w, 3) array); a
    shorter row leaves blank cells. Labels name the rows (left) and the columns (top), e.g.
    "t = 0", "t = 100", ...
    """
    rows = [_image_batch(row, what=f"rows_of_images[{index}]")
            for index, row in enumerate(rows_of_images)]
    if not rows:
        raise ValueError("denoising_strip got no rows; pass a list of (k, h, w, 3) batches.")
    num_cols = max(len(row) for row in rows)
    for labels, count, what in ((row_labels, len(rows), "row"),
                                (column_labels, num_cols, "column")):
        if labels is not None and len(labels) != count:
            raise ValueError(
                f"{len(labels)} {what}_labels were given for {count} {what}s; pass one per {what}."
            )
    figure, axes = _new_figure(len(rows), num_cols, title)
    for ax_row, row in zip(axes, rows, strict=True):
        for ax, image in zip(ax_row[:len(row)], row, strict=True):
            ax.imshow(image)
    if row_labels is not None:
        for ax, label in zip(axes[:, 0], row_labels, strict=True):
            ax.set_ylabel(label)
    if column_labels is not None:
        for ax, label in zip(axes[0], column_labels, strict=True):
            ax.set_title(label)
    return _finish(figure, path)


def _rates_figure(times, rates, time_label, title, path):
    """Shared by both schedule plots: each (label, rates) as one line against time."""
    figure = NotebookFigure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    for label, values in rates:
        ax.plot(times, values, label=label)
    ax.set_xlabel(time_label)
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return _finish(figure, path)


def plot_schedule(schedule_fn, num_points=101, path=None, title="Diffusion schedule"):
    """Plots `schedule_fn`'s noise and signal rates against diffusion time in [0, 1].

    `schedule_fn` maps diffusion times of shape (n, 1, 1, 1), float32, to
    (noise_rates, signal_rates), like `DiffusionModel.diffusion_schedule`.
    """
    if num_points < 2:
        raise ValueError(f"num_points={num_points!r} must be >= 2 to draw a line.")
    diffusion_times = np.linspace(0.0, 1.0, num_points, dtype="float32").reshape(-1, 1, 1, 1)
    noise_rates, signal_rates = schedule_fn(diffusion_times)
    noise_rates = np.asarray(noise_rates, "float32")
    signal_rates = np.asarray(signal_rates, "float32")
    for name, rates in (("noise_rates", noise_rates), ("signal_rates", signal_rates)):
        if rates.size != num_points:
            raise ValueError(
                f"schedule_fn returned {name} of shape {rates.shape} for {num_points} times; "
                "it must return one rate per diffusion time, shaped like its input (n, 1, 1, 1)."
            )
    rates = [("noise rate", noise_rates.ravel()), ("signal rate", signal_rates.ravel())]
    return _rates_figure(diffusion_times.ravel(), rates, "diffusion time", title, path)


def plot_ddpm_rates(alphas_cumprod, path=None, title="DDPM schedule"):
    """Plots sqrt(ᾱ_t) (signal rate) and sqrt(1 - ᾱ_t) (noise rate) against the timestep t.

    The forward process gives x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε (DDPM paper, eq. 4).
    """
    alphas_cumprod = np.asarray(alphas_cumprod, "float64")
    if alphas_cumprod.ndim != 1 or alphas_cumprod.size < 2:
        raise ValueError(
            f"alphas_cumprod must be a 1-D array with one ᾱ_t per timestep, got shape "
            f"{alphas_cumprod.shape}."
        )
    if np.any(alphas_cumprod < 0) or np.any(alphas_cumprod > 1):
        raise ValueError(
            "alphas_cumprod must lie in [0, 1] (they are products of 1 - beta_t); pass the "
            "cumulative products, not the betas."
        )
    rates = [(r"noise rate $\sqrt{1 - \bar\alpha_t}$", np.sqrt(1.0 - alphas_cumprod)),
             (r"signal rate $\sqrt{\bar\alpha_t}$", np.sqrt(alphas_cumprod))]
    return _rates_figure(np.arange(alphas_cumprod.size), rates, "timestep t", title, path)


def plot_kid_vs_evaluations(rows, path=None, title="KID against network evaluations"):
    """One line per sampler: KID (y) against network evaluations (x, log scale).

    `rows` are dicts with "sampler" (the line's label), "network_evaluations" and "kid", e.g.
    from `sampler_comparison.kid_against_evaluations`; the y label names their "kid_features".
    """
    rows = list(rows)
    if not rows:
        raise ValueError("plot_kid_vs_evaluations got no rows; measure at least one sampler.")
    figure = NotebookFigure(figsize=(6, 4), layout="constrained")
    ax = figure.subplots()
    for sampler in dict.fromkeys(row["sampler"] for row in rows):
        points = sorted((row["network_evaluations"], row["kid"]) for row in rows
                        if row["sampler"] == sampler)
        ax.plot(*zip(*points, strict=True), marker="o", label=sampler)
    evaluations = sorted({row["network_evaluations"] for row in rows})
    ax.set_xscale("log", base=2)
    if all(row["kid"] > 0 for row in rows):  # (KID's unbiased estimate can be slightly < 0)
        ax.set_yscale("log")  # a sampler far off at few steps would flatten the others
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xticks(evaluations, [str(count) for count in evaluations])
    ax.set_xlabel("network evaluations")
    features = rows[0].get("kid_features")
    ax.set_ylabel(f"KID ({features})" if features else "KID")
    ax.yaxis.label.set_wrap(True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _finish(figure, path)


def plot_schedules(schedules, num_points=101, path=None, title="Diffusion schedules"):
    """Noise rates (left) and signal rates (right) against diffusion time, one line per schedule.

    `schedules` maps a name to a function from diffusion times (n,) to (noise_rates,
    signal_rates), such as `make_schedule(name).rates`.
    """
    if num_points < 2:
        raise ValueError(f"num_points={num_points!r} must be >= 2 to draw a line.")
    diffusion_times = np.linspace(0.0, 1.0, num_points)
    figure = NotebookFigure(figsize=(10, 4), layout="constrained")
    noise_ax, signal_ax = figure.subplots(1, 2, sharey=True)
    for name, schedule_fn in schedules.items():
        noise_rates, signal_rates = (np.asarray(rates, "float64").ravel()
                                     for rates in schedule_fn(diffusion_times))
        noise_ax.plot(diffusion_times, noise_rates, label=name)
        signal_ax.plot(diffusion_times, signal_rates, label=name)
    for ax, what in ((noise_ax, "noise rate"), (signal_ax, "signal rate")):
        ax.set_xlabel("diffusion time")
        ax.set_title(what)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    noise_ax.set_ylabel("rate")
    signal_ax.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return _finish(figure, path)


def plot_training_curves(history, kid_features=None, path=None, title="Training"):
    """The losses per epoch and, when they were measured, the validation KIDs per epoch.

    `history` is what `model.fit` returns (or its `.history` dict). Losses are every entry
    ending in "loss" (a total that equals one of its parts is drawn once); KIDs are "val_kid",
    on a second axis labelled with `kid_features`, the name of the features they used.
    """
    values = getattr(history, "history", history)
    losses = {name: series for name, series in values.items()
              if name.endswith("loss") and not name.startswith("val_")}
    if "loss" in losses and any(np.allclose(losses["loss"], series)
                                for name, series in losses.items() if name != "loss"):
        del losses["loss"]
    if not losses:
        raise ValueError(f"The history holds no losses (its entries: {sorted(values)}); pass "
                         "what model.fit returned.")
    kids = values.get("val_kid")
    figure = NotebookFigure(figsize=(11 if kids else 6, 3.5), layout="constrained")
    axes = figure.subplots(1, 2 if kids else 1, squeeze=False)[0]
    epochs = np.arange(1, len(next(iter(losses.values()))) + 1)
    for name, series in losses.items():
        axes[0].plot(epochs, series, marker="o", label=name)
    axes[0].set(xlabel="epoch", ylabel="training loss (mean over the epoch)", title="loss")
    axes[0].legend()
    if kids:
        axes[1].plot(epochs[:len(kids)], kids, marker="o", color="tab:red")
        axes[1].set(xlabel="epoch", ylabel="KID (lower is better)")
        features = textwrap.fill(f"features: {kid_features or 'not given'}", width=55)
        axes[1].set_title(f"validation KID\n{features}", fontsize="small")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    figure.suptitle(title)
    return _finish(figure, path)
