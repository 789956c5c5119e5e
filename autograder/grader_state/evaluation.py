"""The training-run evaluation: a trained model's noise MAE and KID, measured in this process.

The weights come from a student runner as arrays. They are loaded into a model with the
solution functions, so the measurement uses the solution's sampler whatever the student wrote:

- noise MAE: the EMA network's noise predictions on fixed held-out images, noises and times;
- KID: images generated from fixed initial noise in config.kid_diffusion_steps steps, against
  held-out images (Inception features when their weights are in the Keras cache, else the
  offline features).
"""

import dataclasses
import threading

import numpy as np

from autograder.assignment.solution_cells import SOLUTION_SOURCE_FILES
from autograder.grader_state.cache import MetricsCache, code_hash, keras_identity
from diffusion_course.inception_weights import inception_weights_cached
from diffusion_course.synthetic import synthetic_flowers

TRAIN_IMAGES_SEED = 0
HELD_OUT_IMAGES_SEED = 1
EVALUATION_SEED = 7


def kid_feature_kind():
    """Inception when its ImageNet weights are in the Keras cache, else the offline features."""
    return "inception" if inception_weights_cached() else "offline"


class UnusableWeights(ValueError):
    """The weights a runner sent do not fit the model (wrong parts, count, shape or dtype)."""


def _load_weights(network, arrays):
    """`network.set_weights(arrays)`, and what Keras's own loading does besides: a Normalization
    layer computes the mean and variance it applies from its weights in `finalize_state`, which
    `set_weights` does not call (without it, the loaded normaliser kept applying mean 0 and
    variance 1: every trained model was measured on wrongly scaled images)."""
    network.set_weights(arrays)
    for layer in network.layers:
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()


class Evaluator:
    """Measures models for one configuration, budget and seed; caches what it can."""

    def __init__(self, config, budget, seed, cache_dir):
        self.config = config
        self.budget = budget
        self.seed = seed
        self.cache = MetricsCache(cache_dir)
        self.held_out_images = synthetic_flowers(budget.num_kid_images, config.image_size,
                                                 HELD_OUT_IMAGES_SEED)
        rng = np.random.default_rng(EVALUATION_SEED)
        image_shape = self.held_out_images.shape
        self.initial_noise = rng.standard_normal(image_shape).astype("float32")
        self.noises = rng.standard_normal(image_shape).astype("float32")
        self.diffusion_times = rng.uniform(size=(image_shape[0], 1, 1, 1)).astype("float32")
        self.features = kid_feature_kind()
        self.code_hash = code_hash(SOLUTION_SOURCE_FILES)
        self._tools = None
        self._tools_lock = threading.Lock()
        self._preparing = None

    def _measuring_tools(self):
        """(KID encoder, the held-out images' features, a solution model to load weights into).

        Built on first use: a submission whose metrics are all cached never needs them (nor
        TensorFlow)."""
        with self._tools_lock:
            if self._tools is None:
                from autograder.assignment.solution import SolutionDiffusionModel
                from diffusion_course.kid import make_encoder

                encoder = make_encoder(self.features, self.config.image_size)
                real_features = encoder.predict(self.held_out_images, verbose=0)
                self._tools = (encoder, real_features,
                               SolutionDiffusionModel(self.config, seed=self.seed))
            return self._tools

    def prepare_in_background(self):
        """Builds the measuring tools (TensorFlow's import included, about 4 CPU seconds) in a
        thread, while a runner trains: the measurement after the run then starts at once.
        Call it only once nothing else in this process builds a model from seeded weights
        (`untrained_metrics`): the two would race for the seed. `finish_preparing` waits."""
        if self._preparing is None:
            self._preparing = threading.Thread(target=self._prepare, name="evaluator",
                                               daemon=True)
            self._preparing.start()

    def _prepare(self):
        try:
            self._measuring_tools()
        except Exception:  # noqa: BLE001 - the measurement builds them again and raises
            pass

    def finish_preparing(self):
        """Waits for the thread of `prepare_in_background`: a process must not exit while
        TensorFlow runs in a thread (it aborts)."""
        if self._preparing is not None:
            self._preparing.join()

    def description(self, run):
        """What a cache entry is the measurement of: the run and everything it depends on."""
        return {**run, "config": self.config.to_dict(), "seed": self.seed,
                "budget": dataclasses.asdict(self.budget), "features": self.features,
                **keras_identity(),
                "code": self.code_hash}

    def cached(self, run):
        return self.cache.get(self.description(run))

    def store(self, run, metrics):
        return self.cache.put(self.description(run), metrics)

    def metrics(self, model):
        """{"noise_mae", "kid", "features"} of a model, measured with the solution's functions."""
        from keras import ops

        from autograder.runner.stand_ins import to_numpy
        from diffusion_course.kid import kernel_inception_distance

        encoder, real_features, _ = self._measuring_tools()
        images = model.normalize(self.held_out_images)
        noise_rates, signal_rates = model.diffusion_schedule(self.diffusion_times)
        # x = s·x0 + n·ε, the forward process in closed form (DDIM eq. 4)
        noisy_images = signal_rates * images + noise_rates * self.noises
        pred_noises, _ = model.denoise(noisy_images, noise_rates, signal_rates, training=False)
        noise_mae = float(np.mean(np.abs(to_numpy(pred_noises) - self.noises)))
        generated_images = model.generate(
            len(self.initial_noise), self.config.kid_diffusion_steps,
            initial_noise=ops.convert_to_tensor(self.initial_noise))
        generated_features = encoder.predict(to_numpy(generated_images), verbose=0)
        kid = float(to_numpy(kernel_inception_distance(real_features, generated_features)))
        return {"noise_mae": noise_mae, "kid": kid, "features": encoder.feature_name}

    def weights_metrics(self, weights):
        """The metrics of a runner's weights {part: [arrays]} (UnusableWeights if they misfit).

        They are loaded into one solution model, whose every weight they replace."""
        model = self._measuring_tools()[2]
        parts = model.checkpoint_parts()
        if not isinstance(weights, dict) or set(weights) != set(parts):
            raise UnusableWeights(f"expected the parts {sorted(parts)}")
        for name, network in parts.items():
            expected = network.get_weights()
            arrays = weights[name]
            if not isinstance(arrays, list) or len(arrays) != len(expected):
                raise UnusableWeights(f"{name}: expected {len(expected)} arrays")
            for array, solution in zip(arrays, expected):
                if (not isinstance(array, np.ndarray) or array.shape != solution.shape
                        or array.dtype != solution.dtype):
                    raise UnusableWeights(f"{name}: an array does not fit the network")
            _load_weights(network, arrays)
        return self.metrics(model)

    def untrained_metrics(self):
        """The model before its first step: the normaliser adapted, the networks initialised."""
        run = {"kind": "untrained"}
        cached = self.cached(run)
        if cached is not None:
            return cached
        import keras

        from autograder.assignment.solution import SolutionDiffusionModel

        # seeded like the training runs, so these are the weights that they start from
        keras.utils.set_random_seed(self.seed)
        model = SolutionDiffusionModel(self.config, seed=self.seed)
        model.adapt_normalizer(synthetic_flowers(self.budget.num_train_images,
                                                 self.config.image_size, TRAIN_IMAGES_SEED))
        return self.store(run, self.metrics(model))
