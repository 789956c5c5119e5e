"""The assignment's variants: which schedule family, rate bounds and prediction target this term's
`diffusion_schedule` and `denoise` implement.

A variant is a set of `DDIMConfig` values, so it travels wherever the configuration does (the
notebook, its self-checks, the grader's runners and its reference). The course's variant is one
setting, `COURSE_VARIANT` in `course_variant.py`; the instructor sets it with
`python -m autograder bundle --variant NAME`, which writes that file, and the student bundle's
wheel carries it. The notebook reads it at run time:

    config = assignment_config("quick")      # the course's variant, quick profile
    display(Markdown(assignment_text(config)))

Every schedule runs from signal_rate = max_signal_rate at t = 0 to min_signal_rate at t = 1;
the families differ in which quantity moves linearly in t in between.
"""

import math
from dataclasses import dataclass

from diffusion_course.config import DDIMConfig
from diffusion_course.course_variant import COURSE_VARIANT


class UnknownVariant(ValueError):
    """A variant name that is not in VARIANTS."""


@dataclass(frozen=True)
class Family:
    """A schedule family: its configuration name, and what is linear in t (for the text)."""

    schedule: str
    title: str
    linear_quantity: str  # what moves linearly in t, from its value at t=0 to that at t=1


@dataclass(frozen=True)
class Target:
    """What the network predicts, and how the other component follows (for the text)."""

    prediction: str
    what: str
    identities: str


FAMILIES = {family.schedule: family for family in (
    Family("assignment-cosine", "cosine",
           "the angle `arccos(signal_rate)` (so signal_rate = cos(angle), noise_rate = "
           "sin(angle))"),
    Family("linear", "linear noise power",
           "the noise power `noise_rate²`"),
    Family("log-snr-linear", "log-SNR linear",
           "the log signal-to-noise ratio `log(signal_rate² / noise_rate²)`"),
    Family("log-signal-linear", "log-signal linear",
           "the log signal power `log(signal_rate²)`"),
)}

TARGETS = {target.prediction: target for target in (
    Target("noise", "the noise component ε̂ of a noisy image x",
           "the image follows by solving x = s·x₀ + n·ε for x₀ with ε̂ in place of ε: "
           "x̂₀ = (x − n·ε̂) / s"),
    Target("image", "the clean image x̂₀ itself",
           "the noise follows by solving x = s·x₀ + n·ε for ε with x̂₀ in place of x₀: "
           "ε̂ = (x − s·x̂₀) / n"),
    Target("velocity", "the velocity v̂, where v = s·ε − n·x₀ (Salimans & Ho 2022, "
           "section 4)",
           "since s² + n² = 1, both components follow from x and v̂: x̂₀ = s·x − n·v̂ and "
           "ε̂ = n·x + s·v̂"),
)}


@dataclass(frozen=True)
class Variant:
    """One term's assignment: the schedule family, its signal-rate bounds, the prediction."""

    name: str
    schedule: str
    min_signal_rate: float
    max_signal_rate: float
    prediction: str
    changes: str  # what it changes against the default, for the instructor

    def config_values(self):
        """The DDIMConfig values of this variant. The library's model takes the other families'
        bounds as log-SNRs (schedules.py): they are set to the signal-rate bounds' own, so that
        it gives the same rates; the cosine's are left as they are (it ignores them)."""
        values = {"schedule": self.schedule, "min_signal_rate": self.min_signal_rate,
                  "max_signal_rate": self.max_signal_rate, "prediction": self.prediction}
        if self.schedule != "assignment-cosine":
            values.update(start_log_snr=log_snr_of(self.max_signal_rate),
                          end_log_snr=log_snr_of(self.min_signal_rate))
        return values


def log_snr_of(signal_rate):
    """log(s² / (1 − s²)), the log signal-to-noise ratio at a signal rate below 1."""
    return math.log(signal_rate**2) - math.log1p(-signal_rate**2)


DEFAULT_VARIANT = "cosine-noise"
VARIANTS = {variant.name: variant for variant in (
    Variant(DEFAULT_VARIANT, "assignment-cosine", 0.02, 0.95, "noise",
            "nothing: the Keras DDIM text's cosine schedule and noise prediction"),
    Variant("log-snr-velocity", "log-snr-linear", 0.05, 0.98, "velocity",
            "the schedule (log-SNR linear), its bounds (0.05 to 0.98) and denoise "
            "(velocity prediction)"),
    Variant("log-signal-noise", "log-signal-linear", 0.02, 0.95, "noise",
            "the schedule only (log signal power linear); denoise predicts the noise as in the "
            "default"),
    Variant("linear-image", "linear", 0.05, 0.95, "image",
            "the schedule (noise power linear), its lower bound (0.05) and denoise (image "
            "prediction)"),
)}
# the (schedule, prediction) pairs that some variant's functions implement
ASSIGNMENT_DESIGNS = tuple(sorted({(variant.schedule, variant.prediction)
                                   for variant in VARIANTS.values()}))


def variant(name=None):
    """The variant called `name` (the course's when None); UnknownVariant lists the valid ones."""
    name = COURSE_VARIANT if name is None else name
    if name not in VARIANTS:
        raise UnknownVariant(f"{name!r} is not a variant of the assignment; the variants are: "
                             f"{', '.join(VARIANTS)}. Pick one of them.")
    return VARIANTS[name]


def assignment_config(profile, variant_name=None, **overrides):
    """The assignment's DDIMConfig in a profile, with the variant's values (the course's)."""
    return DDIMConfig.from_profile(profile, **{**variant(variant_name).config_values(),
                                               **overrides})


def variant_of(config):
    """The variant whose values a configuration has (bounds aside), or None."""
    for candidate in VARIANTS.values():
        if (candidate.schedule, candidate.prediction) == (config.schedule, config.prediction):
            return candidate
    return None


def schedule_text(config):
    """The schedule's description, in the notebook's words."""
    family = FAMILIES[config.schedule]
    return (f"This term's schedule is the **{family.title}** schedule: {family.linear_quantity} "
            f"changes linearly with the diffusion time, from its value at `signal_rate = "
            f"max_signal_rate` (t = 0) to its value at `signal_rate = min_signal_rate` (t = 1). "
            f"In this term's configuration max_signal_rate = {config.max_signal_rate} and "
            f"min_signal_rate = {config.min_signal_rate}; read them from `self.config`.")


def denoise_text(config):
    """What the network predicts and how denoise gets both components, in the notebook's words."""
    target = TARGETS[config.prediction]
    return (f"This term the network predicts {target.what}. Knowing the rates, "
            f"{target.identities}. `denoise` returns `(pred_noises, pred_images)` whatever the "
            f"network predicts; training minimises the error of `pred_noises`.")


def assignment_text(config):
    """This term's assignment, as the notebook shows it (Markdown)."""
    return (f"**This term's assignment** (variant `{variant_of(config).name}`)\n\n"
            f"- *Schedule* (part 1): {schedule_text(config)}\n"
            f"- *Denoising* (part 2): {denoise_text(config)}\n")
