"""Samplers: from pure noise to images with a trained noise-prediction network.

Every sampler has the same small interface (after Hugging Face diffusers' schedulers):

- `timesteps`: the network's timestep at each step, in sampling order (descending);
- `step_tables()`: every per-step coefficient, as arrays with one entry per step;
- `sample(network, initial_noise, seed)`: all steps as ONE compiled loop;
- `network_evaluations`: the cost of a run, the number of times it calls the network.

The DDPM and DDIM samplers here also have `step(pred_noises, noisy_images, coefficients,
noises)`: one reverse step in `keras.ops`, given this step's coefficients and the network's ε̂;
it returns `(next_noisy_images, pred_images)`. The continuous-time samplers of the DDIM model
(continuous_samplers.py) share the loop but have no such `step`: theirs may call the network
twice, or carry past predictions from step to step, so each implements `denoising_step`, which
calls the network itself.

The course's earlier tf.keras 2 lab called `network.predict` 1000 times in a Python loop; here
the whole loop is traced once (`tf.function`, or `jax.jit`) and runs without returning to Python
between steps.

    sampler = DDIMSampler(model.diffusion, num_steps=50, eta=0.0)
    images = sampler.sample(model.ema_network, initial_noise, seed=42)

The step tables and the number of steps are inputs of the compiled loop, not constants in it, so
samplers of one kind share one compiled loop per network: 1, 2, ..., 20 DDIM steps, or any eta,
compile once.

Noise is counter-based: step i adds the noise of the key (seed, i), the same numbers as the i-th
draw of `keras.random.SeedGenerator(seed)`. So `sample_step_by_step`, the seed-style reference
that draws from such a generator, adds exactly the noise that the compiled loop adds.
"""

import functools
import random
import weakref
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

# TensorFlow's stateless random ops take int32 keys, and Keras folds larger seeds into this range
MAX_SEED = 2**31 - 2
SUPPORTED_BACKENDS = ("tensorflow", "jax")


def _require_supported_backend():
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise NotImplementedError(
            f"The compiled samplers run on the {SUPPORTED_BACKENDS} backends, not {backend!r}; "
            "set KERAS_BACKEND to one of them.")
    return backend


def _check_seed(seed):
    if seed is None:
        return random.randint(0, MAX_SEED)
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed={seed!r} is invalid: it must be an integer in [0, {MAX_SEED}] "
                         "or None (a random seed).")
    return int(seed)


def initial_noise(num_images, image_size, seed=None):
    """The pure noise that sampling starts from: `num_images` RGB images of standard normal
    pixels, `image_size` square; the same seed gives the same noise."""
    return keras.random.normal((num_images, image_size, image_size, 3), seed=seed)


def step_noise(shape, seed, step_index, dtype="float32"):
    """Standard normal noise for one sampling step, from the counter-based key (seed, step_index).

    These are the numbers of the `step_index`-th draw of `keras.random.SeedGenerator(seed)`. The one
    backend switch exists because `keras.random.normal` takes no tensor seed on TensorFlow.
    """
    key = ops.stack([ops.cast(seed, "int32"), ops.cast(step_index, "int32")])
    if _require_supported_backend() == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_normal(shape, seed=key, dtype=dtype)
    return keras.random.normal(shape, dtype=dtype, seed=ops.cast(key, "uint32"))


def resolve_sampler_jit_compile(setting):
    """`"auto"` compiles TensorFlow's sampling step with XLA.

    On this 2-core CPU it is faster than plain graph mode for both profiles (see
    benchmarks/sampling_speed.py), and it is the usual choice on GPUs. JAX always compiles.
    """
    if setting not in ("auto", True, False):
        raise ValueError(f'jit_compile={setting!r} is invalid: use "auto", True or False.')
    return True if setting == "auto" else setting


@dataclass
class Trajectory:
    """Snapshots of a sampling run, one every `record_every` steps (for strips and GIFs).

    `noisy_images[j]` is the input of step `steps[j]` (at timestep `timesteps[j]`, a diffusion
    time in [0, 1] for the continuous samplers of continuous_samplers.py) and
    `pred_images[j]` the clean image x̂_0 predicted from it; both are (records, batch, H, W, C).
    """

    steps: np.ndarray
    timesteps: np.ndarray
    noisy_images: np.ndarray
    pred_images: np.ndarray


class Sampler:
    """What all samplers share: the compiled sampling loop.

    A subclass sets `timesteps` (the time of each step, in sampling order) and `adds_noise`, and
    implements `step_tables`, `table_length` and `denoising_step`. In `denoising_step`,
    `coefficients` holds this step's entry of every step table; `carried` holds what the loop
    carries from step to step besides the noisy images (`initial_carried`: nothing by default,
    past predictions for a multistep sampler).
    """

    timesteps: np.ndarray
    adds_noise: bool
    # the dtype of the loop: the images, the step tables and the noise
    dtype = "float32"
    # network evaluations per step
    evaluations_per_step = 1
    # compiled loops, shared by samplers whose traces are the same (see `_trace_key`); each
    # entry lasts as long as its network (see `_compiled_loop`)
    _compiled_loops = {}

    def __init__(self, jit_compile="auto"):
        self.jit_compile = resolve_sampler_jit_compile(jit_compile)

    @property
    def num_steps(self):
        return len(self.timesteps)

    @property
    def network_evaluations(self):
        """The cost of a run: the number of times it calls the network."""
        return self.evaluations_per_step * self.num_steps

    @property
    def table_length(self):
        """The length to which every step table is padded (the most steps a sampler can take)."""
        raise NotImplementedError

    def step_tables(self):
        """Per-step coefficients: a dict name -> array with one row per step."""
        raise NotImplementedError

    def initial_carried(self, initial_noise):
        """The tensors that the loop carries besides the noisy images, before the first step."""
        return ()

    def denoising_step(self, call_network, noisy_images, carried, coefficients, noises):
        """One reverse step, with `call_network(inputs)` the network; returns
        `(next_noisy_images, next_carried, pred_images)`."""
        raise NotImplementedError

    def trace_details(self):
        """What `denoising_step` reads from the sampler besides the step tables."""
        return ()

    def final_images(self, loop_state):
        """The generated images, from the loop's final state (numpy arrays)."""
        return loop_state[0]

    def coefficients_at(self, step_index, batch_size):
        """Step `step_index`'s coefficients, as the compiled loop hands them to the step."""
        return self._coefficients(self._padded_tables(), step_index, batch_size)

    # ---- the compiled loop ---------------------------------------------------------------

    def sample(self, network, initial_noise, seed=None, return_trajectory=False, record_every=1):
        """Runs every step on `initial_noise` (batch, H, W, C) as one compiled loop.

        Returns the generated images as a numpy array, and with `return_trajectory=True` also a
        `Trajectory` recorded every `record_every` steps. The first call for a network and
        batch shape compiles the loop; later calls reuse it.
        """
        loop_state = self._run_checked(network, initial_noise, seed, return_trajectory,
                                       record_every)
        images = self.final_images(loop_state)
        if not return_trajectory:
            return images
        steps = np.arange(0, self.num_steps, record_every)
        return images, Trajectory(steps, self.timesteps[steps], loop_state[-2], loop_state[-1])

    def warm_up(self, network, initial_noise):
        """Compiles the loop for this network and batch shape by running a single step.

        `sample` compiles on its first call anyway; warming up first lets one time sampling
        apart from compilation.
        """
        self._run(network, initial_noise, 0, 1, None)

    def _run_checked(self, network, initial_noise, seed, return_trajectory, record_every):
        seed = _check_seed(seed)
        if not isinstance(record_every, int) or record_every < 1:
            raise ValueError(f"record_every={record_every!r} is invalid: it must be an integer "
                             ">= 1 (record one step in every `record_every`).")
        # (k, number of records): static, because the records' shape depends on them
        recording = None
        if return_trajectory:
            recording = (record_every, -(-self.num_steps // record_every))
        return self._run(network, initial_noise, seed, self.num_steps, recording)

    def _run(self, network, initial_noise, seed, num_steps, recording):
        sampling_loop = self._compiled_loop(network, recording)
        outputs = sampling_loop(ops.convert_to_tensor(initial_noise, self.dtype),
                                ops.convert_to_tensor(seed, "int32"),
                                ops.convert_to_tensor(num_steps, "int32"),
                                self._padded_tables())
        return [ops.convert_to_numpy(output) for output in outputs]

    def _padded_tables(self):
        """The step tables as tensors, padded to `table_length` rows so that every number of
        steps has the same shapes (and so the same compiled loop)."""
        tables = {}
        for name, table in self.step_tables().items():
            padded = np.zeros((self.table_length, *np.shape(table)[1:]), np.asarray(table).dtype)
            padded[:len(table)] = table
            tables[name] = ops.convert_to_tensor(
                padded, "int32" if name == "timesteps" else self.dtype)
        return tables

    @staticmethod
    def _coefficients(tables, step_index, batch_size):
        coefficients = {name: ops.take(table, step_index, axis=0)
                        for name, table in tables.items()}
        if "timesteps" in coefficients:  # the network takes one timestep per image
            coefficients["timesteps"] = ops.broadcast_to(coefficients["timesteps"], (batch_size,))
        return coefficients

    def _sampling_loop(self, denoising_step, initial_noise, seed, num_steps, tables, recording):
        """The backend-neutral loop around
        `denoising_step(noisy_images, carried, coefficients, noises)`."""
        batch_size = ops.shape(initial_noise)[0]
        carried = tuple(self.initial_carried(initial_noise))

        def one_step(step_index, state):
            noisy_images = state[0]
            coefficients = self._coefficients(tables, step_index, batch_size)
            noises = (step_noise(ops.shape(noisy_images), seed, step_index, self.dtype)
                      if self.adds_noise else None)
            next_noisy_images, next_carried, pred_images = denoising_step(
                noisy_images, state[1:1 + len(carried)], coefficients, noises)
            next_state = (next_noisy_images, *next_carried)
            if recording is None:
                return next_state
            return (*next_state, *self._record(state[1 + len(carried):], step_index,
                                               recording[0], noisy_images, pred_images))

        state = (initial_noise, *carried)
        if recording is not None:
            empty_records = ops.zeros((recording[1], *ops.shape(initial_noise)), self.dtype)
            state = (*state, empty_records, empty_records)
        return ops.fori_loop(0, num_steps, one_step, state)

    @staticmethod
    def _record(records, step_index, record_every, noisy_images, pred_images):
        """Writes this step's images into their slot when `step_index` is a multiple of k."""
        slot = step_index // record_every

        def write():
            return tuple(ops.slice_update(recorded, [slot, 0, 0, 0, 0], images[None])
                         for recorded, images in zip(records, (noisy_images, pred_images)))

        return ops.cond(step_index % record_every == 0, write, lambda: tuple(records))

    def _trace_key(self, network, recording):
        """Everything that a trace reads from outside its inputs: equal keys, equal traces."""
        return (type(self), id(network), self.jit_compile, self.adds_noise, self.dtype, recording,
                *self.trace_details())

    def _compiled_loop(self, network, recording):
        key = self._trace_key(network, recording)
        if key not in Sampler._compiled_loops:
            # The loop holds its network weakly, and the entry goes when the network does: a
            # notebook that builds many models does not keep them all alive, and the network's
            # id in the key cannot be reused by another network while the entry stands.
            weakref.finalize(network, Sampler._compiled_loops.pop, key, None)
            Sampler._compiled_loops[key] = self._compile(weakref.ref(network), recording)
        return Sampler._compiled_loops[key]

    def _compile(self, network_ref, recording):
        """The backend-specific driver: `tf.function` on TensorFlow, `jax.jit` on JAX.
        `network_ref()` is the network: alive whenever the loop runs, since `sample` holds it."""
        if _require_supported_backend() == "tensorflow":
            import tensorflow as tf

            # XLA compiles the network and the step; the loop and its noise stay outside it,
            # because TensorFlow's random ops give other numbers under XLA than without.
            # (Partial functions, not closures: TensorFlow would count the first traces of all
            # the samplers' loops as retraces of one function, and warn about them.)
            denoising_step = tf.function(
                functools.partial(self.denoising_step,
                                  lambda inputs: network_ref()(inputs, training=False)),
                jit_compile=self.jit_compile, reduce_retracing=True)
            # one trace serves every batch size (XLA still compiles once per shape)
            return tf.function(functools.partial(self._sampling_loop, denoising_step,
                                                 recording=recording), reduce_retracing=True)

        import jax

        def run_stateless(trainable_values, non_trainable_values, initial_noise, seed,
                          num_steps, tables):
            # the weights are arguments, not constants baked into the compiled program
            def call_network(inputs):
                outputs, _ = network_ref().stateless_call(trainable_values, non_trainable_values,
                                                          inputs, training=False)
                return outputs

            return self._sampling_loop(functools.partial(self.denoising_step, call_network),
                                       initial_noise, seed, num_steps, tables, recording)

        jitted = jax.jit(run_stateless)

        def run(initial_noise, seed, num_steps, tables):
            network = network_ref()
            return jitted([weight.value for weight in network.trainable_variables],
                          [weight.value for weight in network.non_trainable_variables],
                          initial_noise, seed, num_steps, tables)

        return run


class DiscreteSampler(Sampler):
    """A sampler of the discrete DDPM model: the network takes integer timesteps, and `step`
    turns its ε̂ into the next noisy images.

    In `step`, `coefficients` holds this step's entry of every step table: scalars, except
    `timesteps`, which has one entry per image, as the network takes it.
    """

    def __init__(self, diffusion, clip_denoised=True, jit_compile="auto"):
        super().__init__(jit_compile)
        self.diffusion = diffusion
        self.clip_denoised = bool(clip_denoised)

    @property
    def table_length(self):
        return self.diffusion.timesteps

    def step_tables(self):
        return {"timesteps": self.timesteps}

    def step(self, pred_noises, noisy_images, coefficients, noises):
        """One reverse step; returns `(next_noisy_images, pred_images)`."""
        raise NotImplementedError

    def denoising_step(self, call_network, noisy_images, carried, coefficients, noises):
        pred_noises = call_network([noisy_images, coefficients["timesteps"]])
        next_noisy_images, pred_images = self.step(pred_noises, noisy_images, coefficients,
                                                   noises)
        return next_noisy_images, (), pred_images

    def trace_details(self):
        return (id(self.diffusion), self.clip_denoised)

    def predict_images(self, pred_noises, noisy_images, timesteps):
        """x̂_0 = √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·ε̂ (DDPM eq. 4 solved for x_0), clipped if asked."""
        pred_images = self.diffusion.predict_start_from_noise(noisy_images, timesteps, pred_noises)
        if self.clip_denoised:
            pred_images = ops.clip(pred_images, self.diffusion.clip_min, self.diffusion.clip_max)
        return pred_images


class DDPMSampler(DiscreteSampler):
    """Ancestral sampling (DDPM Algorithm 2): all T timesteps, T−1 down to 0."""

    adds_noise = True

    def __init__(self, diffusion, clip_denoised=True, jit_compile="auto"):
        super().__init__(diffusion, clip_denoised, jit_compile)
        self.timesteps = np.arange(diffusion.timesteps - 1, -1, -1)

    def step(self, pred_noises, noisy_images, coefficients, noises):
        # 1. this step's timestep t, one per image (the diffusion's tables are indexed by t)
        timesteps = coefficients["timesteps"]
        # 2. predicted x̂_0 from x_t and ε̂ (eq. 4 solved for x_0), clipped to the data range
        pred_images = self.predict_images(pred_noises, noisy_images, timesteps)
        # 3. mean and clipped log-variance of the posterior q(x_{t−1} | x_t, x̂_0) (eqs. 6–7)
        posterior_mean, _, posterior_log_variance = self.diffusion.q_posterior(
            pred_images, noisy_images, timesteps)
        # 4. x_{t−1} = μ̃ + σ_t·z, with σ_t² = β̃_t and no noise at t = 0 (Algorithm 2, line 4)
        nonzero_mask = ops.reshape(ops.cast(ops.not_equal(timesteps, 0), noisy_images.dtype),
                                   (-1, 1, 1, 1))
        next_noisy_images = (posterior_mean
                             + nonzero_mask * ops.exp(0.5 * posterior_log_variance) * noises)
        return next_noisy_images, pred_images


def ddim_timesteps(timesteps, num_steps):
    """`num_steps` evenly spaced timesteps from T−1 down, the "trailing" spacing.

    It starts at T−1 for any number of steps, so even one step starts from pure noise
    (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed", table 2).
    With num_steps = T it is every timestep, T−1 down to 0.
    """
    if (isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer))
            or not 1 <= num_steps <= timesteps):
        raise ValueError(f"num_steps={num_steps!r} is invalid: it must be an integer from 1 to "
                         f"the model's number of timesteps ({timesteps}); DDIM skips timesteps "
                         "but cannot add any.")
    return (np.round(timesteps - np.arange(num_steps) * timesteps / num_steps) - 1).astype(int)


class DDIMSampler(DiscreteSampler):
    """DDIM (Song et al. 2021) on the discrete DDPM model, over a strided timestep subsequence.

    `eta` scales the noise added per step (DDIM eq. 16): 0 is deterministic DDIM, and 1 over all
    timesteps is ancestral DDPM sampling. The trained model is the same; only sampling changes.
    """

    def __init__(self, diffusion, num_steps=50, eta=0.0, clip_denoised=True, jit_compile="auto"):
        super().__init__(diffusion, clip_denoised, jit_compile)
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta={eta!r} is invalid: it must be in [0, 1] (0 is deterministic "
                             "DDIM, 1 is DDPM-like; above 1 the noise exceeds the step's "
                             "variance budget).")
        self.eta = float(eta)
        self.adds_noise = self.eta > 0.0
        self.timesteps = ddim_timesteps(diffusion.timesteps, num_steps)

        # ᾱ_t at each step and ᾱ_{t'} at the next, in float64; ᾱ = 1 after the last step,
        # where the image is clean
        self.alphas_cumprod = diffusion.alphas_cumprod_float64[self.timesteps]
        self.next_alphas_cumprod = np.append(self.alphas_cumprod[1:], 1.0)
        # σ = η·√((1 − ᾱ_{t'})/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_{t'}) (DDIM eq. 16)
        self.sigmas = (self.eta
                       * np.sqrt((1.0 - self.next_alphas_cumprod) / (1.0 - self.alphas_cumprod))
                       * np.sqrt(1.0 - self.alphas_cumprod / self.next_alphas_cumprod))

    def step_tables(self):
        return {
            "timesteps": self.timesteps,
            "sqrt_alphas_cumprod": np.sqrt(self.alphas_cumprod),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - self.alphas_cumprod),
            "sqrt_next_alphas_cumprod": np.sqrt(self.next_alphas_cumprod),
            # the weight of ε̂ in "the direction pointing to x_t" (DDIM eq. 12)
            "direction_coefs": np.sqrt(np.maximum(
                1.0 - self.next_alphas_cumprod - self.sigmas**2, 0.0)),
            "sigmas": self.sigmas,
        }

    def step(self, pred_noises, noisy_images, coefficients, noises):
        # 1. this step's timestep t; the rates at t and at the next timestep t' are coefficients
        timesteps = coefficients["timesteps"]
        # 2. "predicted x_0" (DDIM eq. 12), clipped to the data range
        pred_images = self.predict_images(pred_noises, noisy_images, timesteps)
        # 3. the noise that, with the clipped x̂_0, gives back x_t (unchanged if nothing was
        #    clipped); with it, eta = 1 over all timesteps is exactly the DDPM step
        pred_noises = ((noisy_images - coefficients["sqrt_alphas_cumprod"] * pred_images)
                       / coefficients["sqrt_one_minus_alphas_cumprod"])
        # 4. "direction pointing to x_t": √(1 − ᾱ_{t'} − σ²)·ε̂ (DDIM eq. 12)
        direction = coefficients["direction_coefs"] * pred_noises
        # 5. x_{t'} = √ᾱ_{t'}·x̂_0 + direction + σ·z (DDIM eq. 12)
        next_noisy_images = coefficients["sqrt_next_alphas_cumprod"] * pred_images + direction
        if noises is not None:
            next_noisy_images = next_noisy_images + coefficients["sigmas"] * noises
        return next_noisy_images, pred_images


def sample_step_by_step(network, diffusion, initial_noise, seed, clip_denoised=True):
    """The tf.keras 2 lab's DDPM sampler, kept as the reference: one `predict` per timestep.

    It calls the library's `p_sample` with a `SeedGenerator(seed)`, so it adds the same noise as
    `DDPMSampler(diffusion).sample(network, initial_noise, seed)`. Slow on purpose: the benchmark
    and the tests compare the compiled loop against it.
    """
    seed_generator = keras.random.SeedGenerator(_check_seed(seed))
    noisy_images = ops.convert_to_tensor(initial_noise, "float32")
    batch_size = ops.shape(noisy_images)[0]
    for timestep in reversed(range(diffusion.timesteps)):
        timesteps = np.full((batch_size,), timestep, dtype="int32")
        pred_noises = network.predict([noisy_images, timesteps], batch_size=batch_size, verbose=0)
        noisy_images = diffusion.p_sample(pred_noises, noisy_images, timesteps,
                                          clip_denoised=clip_denoised, seed=seed_generator)
    return ops.convert_to_numpy(noisy_images)
