"""The sample submissions planted for the similarity report (autograder/similarity/pairs.py).

Two honest solutions written independently, in different styles, and three copies of the
first. Every one is correct and earns full marks: the report, not the grade, must tell them
apart. Expected flags (autograder/README.md):

| student | its code | flagged with |
|---|---|---|
| honest-independent-a | loops over steps, two helpers | the three copies |
| honest-independent-b | zips time pairs, no helper | nobody |
| copy-verbatim | honest-independent-a's notebook, byte for byte | a and the other copies |
| copy-renamed | a's code, every name changed, the helpers swapped | a and the other copies |
| copy-commented | a's code with comments added | a and the other copies |
"""

INDEPENDENT_A = {
    "diffusion_schedule": """import math


def diffusion_schedule(self, diffusion_times):
    start_angle = math.acos(self.config.max_signal_rate)
    end_angle = math.acos(self.config.min_signal_rate)
    angles = start_angle + diffusion_times * (end_angle - start_angle)
    return ops.sin(angles), ops.cos(angles)
""",
    "denoise": """def denoise(self, noisy_images, noise_rates, signal_rates, training):
    if training:
        pred_noises = self.network([noisy_images, ops.square(noise_rates)], training=True)
    else:
        pred_noises = self.ema_network([noisy_images, ops.square(noise_rates)], training=False)
    pred_images = noisy_images / signal_rates - (noise_rates / signal_rates) * pred_noises
    return pred_noises, pred_images
""",
    "reverse_diffusion": """def times_column(num_images, time):
    return ops.full((num_images, 1, 1, 1), time)


def remix(images, noises, noise_rates, signal_rates):
    return signal_rates * images + noise_rates * noises


def reverse_diffusion(self, initial_noise, diffusion_steps):
    num_images = ops.shape(initial_noise)[0]
    noisy_images = initial_noise
    for step in range(diffusion_steps):
        times = times_column(num_images, 1.0 - step / diffusion_steps)
        noise_rates, signal_rates = self.diffusion_schedule(times)
        pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates, False)
        next_noise_rates, next_signal_rates = self.diffusion_schedule(times - 1 / diffusion_steps)
        noisy_images = remix(pred_images, pred_noises, next_noise_rates, next_signal_rates)
    return pred_images
""",
}

INDEPENDENT_B = {
    "diffusion_schedule": """def diffusion_schedule(self, diffusion_times):
    # angle(t) runs linearly from arccos(max_signal_rate) to arccos(min_signal_rate)
    first = ops.arccos(ops.convert_to_tensor(self.config.max_signal_rate, "float32"))
    last = ops.arccos(ops.convert_to_tensor(self.config.min_signal_rate, "float32"))
    theta = (1.0 - diffusion_times) * first + diffusion_times * last
    noise_rates, signal_rates = ops.sin(theta), ops.cos(theta)
    return noise_rates, signal_rates
""",
    "denoise": """def denoise(self, noisy_images, noise_rates, signal_rates, training):
    network = {True: self.network, False: self.ema_network}[bool(training)]
    pred_noises = network([noisy_images, noise_rates * noise_rates], training=training)
    return pred_noises, (noisy_images - pred_noises * noise_rates) / signal_rates
""",
    "reverse_diffusion": """def reverse_diffusion(self, initial_noise, diffusion_steps):
    batch = ops.shape(initial_noise)[0]
    grid = [1.0 - i / diffusion_steps for i in range(diffusion_steps + 1)]
    images = initial_noise
    for now, later in zip(grid[:-1], grid[1:]):
        noise_now, signal_now = self.diffusion_schedule(ops.full((batch, 1, 1, 1), now))
        noises, clean = self.denoise(images, noise_now, signal_now, training=False)
        noise_later, signal_later = self.diffusion_schedule(ops.full((batch, 1, 1, 1), later))
        images = signal_later * clean + noise_later * noises
    return clean
""",
}

RENAMED_COPY = {
    "diffusion_schedule": """import math


def diffusion_schedule(self, diffusion_times):
    angle_from = math.acos(self.config.max_signal_rate)
    angle_to = math.acos(self.config.min_signal_rate)
    phi = angle_from + diffusion_times * (angle_to - angle_from)
    return ops.sin(phi), ops.cos(phi)
""",
    "denoise": """def denoise(self, noisy_images, noise_rates, signal_rates, training):
    if training:
        eps = self.network([noisy_images, ops.square(noise_rates)], training=True)
    else:
        eps = self.ema_network([noisy_images, ops.square(noise_rates)], training=False)
    x0 = noisy_images / signal_rates - (noise_rates / signal_rates) * eps
    return eps, x0
""",
    "reverse_diffusion": """def mix(clean, eps, sigma, alpha):
    return alpha * clean + sigma * eps


def time_tensor(n, t):
    return ops.full((n, 1, 1, 1), t)


def reverse_diffusion(self, initial_noise, diffusion_steps):
    n = ops.shape(initial_noise)[0]
    x = initial_noise
    for k in range(diffusion_steps):
        t = time_tensor(n, 1.0 - k / diffusion_steps)
        sigma, alpha = self.diffusion_schedule(t)
        eps, x0 = self.denoise(x, sigma, alpha, False)
        sigma_next, alpha_next = self.diffusion_schedule(t - 1 / diffusion_steps)
        x = mix(x0, eps, sigma_next, alpha_next)
    return x0
""",
}

COMMENTED_COPY = {
    "diffusion_schedule": """import math


def diffusion_schedule(self, diffusion_times):
    # the cosine schedule: signal rate = cos(angle), noise rate = sin(angle)
    start_angle = math.acos(self.config.max_signal_rate)  # angle at t = 0
    end_angle = math.acos(self.config.min_signal_rate)  # angle at t = 1
    # linear in the angle
    angles = start_angle + diffusion_times * (end_angle - start_angle)
    return ops.sin(angles), ops.cos(angles)  # (noise_rates, signal_rates)
""",
    "denoise": """def denoise(self, noisy_images, noise_rates, signal_rates, training):
    # the training network learns; the EMA network is the one we sample with
    if training:
        pred_noises = self.network([noisy_images, ops.square(noise_rates)], training=True)
    else:
        pred_noises = self.ema_network([noisy_images, ops.square(noise_rates)], training=False)
    # x_t = signal * x_0 + noise * eps, solved for x_0
    pred_images = noisy_images / signal_rates - (noise_rates / signal_rates) * pred_noises
    return pred_noises, pred_images
""",
    "reverse_diffusion": """def times_column(num_images, time):
    # one diffusion time per image, shaped like the images' rates
    return ops.full((num_images, 1, 1, 1), time)


def remix(images, noises, noise_rates, signal_rates):
    # DDIM with eta = 0: no fresh noise, just the predicted components at the new rates
    return signal_rates * images + noise_rates * noises


def reverse_diffusion(self, initial_noise, diffusion_steps):
    num_images = ops.shape(initial_noise)[0]
    noisy_images = initial_noise  # starts as pure noise
    for step in range(diffusion_steps):
        # from t = 1 down towards t = 0
        times = times_column(num_images, 1.0 - step / diffusion_steps)
        noise_rates, signal_rates = self.diffusion_schedule(times)
        # split the noisy images into predicted noise and predicted image
        pred_noises, pred_images = self.denoise(noisy_images, noise_rates, signal_rates, False)
        # one step closer to the data
        next_noise_rates, next_signal_rates = self.diffusion_schedule(times - 1 / diffusion_steps)
        noisy_images = remix(pred_images, pred_noises, next_noise_rates, next_signal_rates)
    return pred_images
""",
}

# student: (answers, the student whose notebook it copies byte for byte, or None)
SIMILARITY_SAMPLES = {
    "honest-independent-a": (INDEPENDENT_A, None),
    "honest-independent-b": (INDEPENDENT_B, None),
    "copy-verbatim": (None, "honest-independent-a"),
    "copy-renamed": (RENAMED_COPY, None),
    "copy-commented": (COMMENTED_COPY, None),
}
# the pairs the report must flag, and the pair it must not
PLANTED_PAIRS = [("copy-verbatim", "honest-independent-a"),
                 ("copy-renamed", "honest-independent-a"),
                 ("copy-commented", "honest-independent-a")]
INDEPENDENT_PAIR = ("honest-independent-a", "honest-independent-b")
