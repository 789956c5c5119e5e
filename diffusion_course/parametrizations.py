"""What the network predicts: the noise, the image or the velocity, and how each gives the others.

A noisy image is x = s·x0 + n·ε (signal rate s, noise rate n, s² + n² = 1), and its velocity is
v = s·ε − n·x0 (Salimans & Ho 2022, section 4). Given x and the rates, any one of ε̂, x̂0 and v̂
determines the other two:

    noise:     x̂0 = (x − n·ε̂)/s                    (DDIM eq. 9 solved for x0)
    image:     ε̂ = (x − s·x̂0)/n
    velocity:  x̂0 = s·x − n·v̂,  ε̂ = n·x + s·v̂      (since s² + n² = 1)

The prediction type is configuration data (`DDIMConfig.prediction`); `convert` is the one place
that turns a network's output into all three. Which error training minimises is a separate
choice, the loss weighting (losses.py).
"""

from diffusion_course.config import PREDICTIONS
from diffusion_course.losses import velocities


def convert(prediction, predicted, noisy_images, noise_rates, signal_rates):
    """{"noise": ε̂, "image": x̂0, "velocity": v̂} from `predicted`, a network output that
    predicts `prediction` for `noisy_images` at these rates."""
    if prediction == "noise":
        pred_noises = predicted
        pred_images = (noisy_images - noise_rates * pred_noises) / signal_rates
    elif prediction == "image":
        pred_images = predicted
        pred_noises = (noisy_images - signal_rates * pred_images) / noise_rates
    elif prediction == "velocity":
        pred_images = signal_rates * noisy_images - noise_rates * predicted
        pred_noises = noise_rates * noisy_images + signal_rates * predicted
        return {"noise": pred_noises, "image": pred_images, "velocity": predicted}
    else:
        raise ValueError(f"prediction={prediction!r} is unknown: choose one of {PREDICTIONS}.")
    return {"noise": pred_noises, "image": pred_images,
            "velocity": velocities(pred_images, pred_noises, noise_rates, signal_rates)}
