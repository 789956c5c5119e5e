"""KID against network evaluations, one line per sampler: the extended DDIM codebase's chart.

A sampler is chosen by name with its parameter (continuous_samplers.py): "ddim" with η,
"ddpm-vp" and "ddpm-large" (η = 1, the two variances of DDIM eq. 16), "second-order" with α, and
"multistep" with its order. The cost of a run is its number of network evaluations (NFE): the
steps, or twice the steps for the second-order sampler, so the chart compares samplers at equal
cost rather than at equal steps.

    choices = [SamplerChoice("ddim"), SamplerChoice("multistep", order=3)]
    generators = {choice.label: SampledImages(model, choice) for choice in choices}
    rows = kid_against_evaluations(generators, [2, 4, 8], validation_batches, kid)
    write_rows(rows, "kid_vs_nfe.csv")
    plot_kid_vs_evaluations(rows, path="kid_vs_nfe.png")
"""

import csv
import dataclasses
from pathlib import Path

import numpy as np

from diffusion_course import samplers
from diffusion_course.config import CONTINUOUS_SAMPLER_NAMES
from diffusion_course.continuous_samplers import make_sampler
from diffusion_course.schedules import schedule_from_config
from diffusion_course.training import KIDCallback

ROW_COLUMNS = ("sampler", "diffusion_steps", "network_evaluations", "kid", "kid_features")


@dataclasses.dataclass(frozen=True)
class SamplerChoice:
    """A continuous sampler by name, with the one parameter that its name takes."""

    name: str
    eta: float = 0.0  # "ddim": 0 is deterministic
    alpha: float = 1.0  # "second-order": 0.5 midpoint, 1 Heun
    order: int = 2  # "multistep": 1 to 4

    def __post_init__(self):
        if self.name not in CONTINUOUS_SAMPLER_NAMES:
            raise ValueError(f"sampler {self.name!r} is unknown: choose one of "
                             f"{', '.join(CONTINUOUS_SAMPLER_NAMES)}.")

    @property
    def label(self):
        """The name of its line on the chart, e.g. "ddim η=0.5", "multistep order 3"."""
        if self.name == "ddim":
            return "ddim" if self.eta == 0.0 else f"ddim η={self.eta:g}"
        if self.name == "second-order":
            return f"second-order α={self.alpha:g}"
        if self.name == "multistep":
            return f"multistep order {self.order}"
        return self.name

    def sampler(self, config, diffusion_steps):
        """The sampler for a `DDIMConfig`'s schedule and prediction."""
        return make_sampler(self.name, schedule_from_config(config), diffusion_steps,
                            config.prediction, eta=self.eta, alpha=self.alpha, order=self.order)


class SampledImages:
    """A DDIM model's images in [0, 1] from one sampler choice, through `DiffusionModel`'s
    interface `generate(num_images, diffusion_steps, initial_noise, seed)`: the same seed gives
    the same initial noise as `model.generate`."""

    def __init__(self, model, choice):
        self.model = model
        self.config = model.config
        self.choice = choice
        self._samplers = {}

    def sampler(self, diffusion_steps):
        if diffusion_steps not in self._samplers:  # their step tables are computed once
            self._samplers[diffusion_steps] = self.choice.sampler(self.config, diffusion_steps)
        return self._samplers[diffusion_steps]

    def evaluations_for(self, diffusion_steps):
        """The network evaluations of sampling with `diffusion_steps` steps."""
        return self.sampler(diffusion_steps).network_evaluations

    def generate(self, num_images, diffusion_steps, initial_noise=None, seed=0):
        if initial_noise is None:
            initial_noise = samplers.initial_noise(num_images, self.config.image_size, seed)
        images = self.sampler(diffusion_steps).sample(self.model.ema_network, initial_noise,
                                                      seed=seed)
        return np.asarray(self.model.denormalize(images))


def kid_against_evaluations(generators, step_counts, validation_batches, kid, seed=0,
                            report=None):
    """One row per generator and number of steps: its KID against `validation_batches`.

    `generators` maps a label to an object with `generate` (as `SampledImages`) and
    `evaluations_for(diffusion_steps)`. Every measurement uses the same initial noises
    (seeds `seed`, `seed` + 1, ... per batch), as training's KID does. `report(row)` is called
    after each measurement, e.g. to print progress.
    """
    rows = []
    for label, generator in generators.items():
        for diffusion_steps in step_counts:
            measurement = KIDCallback(validation_batches, kid, diffusion_steps, seed=seed,
                                      verbose=False)
            measurement.set_model(generator)
            rows.append({"sampler": label, "diffusion_steps": diffusion_steps,
                         "network_evaluations": generator.evaluations_for(diffusion_steps),
                         "kid": measurement.measure(), "kid_features": kid.feature_name})
            if report is not None:
                report(rows[-1])
    return rows


def write_rows(rows, path, columns=ROW_COLUMNS):
    """The rows as a CSV file, one measurement per line; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_rows(path):
    """Rows written by `write_rows`, with numbers as numbers."""
    with open(path, newline="", encoding="utf-8") as file:
        return [{**row, "diffusion_steps": int(row["diffusion_steps"]),
                 "network_evaluations": int(row["network_evaluations"]),
                 "kid": float(row["kid"])} for row in csv.DictReader(file)]


def rows_table(rows):
    """A markdown table: one row per sampler, one column per number of network evaluations."""
    evaluations = sorted({row["network_evaluations"] for row in rows})
    kids = {(row["sampler"], row["network_evaluations"]): row["kid"] for row in rows}
    lines = ["| sampler | " + " | ".join(f"NFE {count}" for count in evaluations) + " |",
             "| :-- |" + " --: |" * len(evaluations)]
    for sampler in dict.fromkeys(row["sampler"] for row in rows):
        cells = [f"{kids[(sampler, count)]:.4f}" if (sampler, count) in kids else ""
                 for count in evaluations]
        lines.append(f"| {sampler} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
