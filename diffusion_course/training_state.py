"""What resuming a training run needs besides the networks, stored as one more checkpoint part."""

import h5py
import keras

TRAINING_STATE_PART = "training_state"  # the name under which a run's checkpoint stores it


class TrainingState:
    """The optimizer's variables and the model's random-number state, stored as a checkpoint part.

    The networks alone are enough to sample. To go on training exactly where a run stopped, a
    checkpoint also needs the optimizer's moments and step count, and the state of the model's
    `seed_generator`, which draws each step's noise and diffusion times. (A compiled model's own
    `save_weights` holds the optimizer, but also every network a second time, and never the
    seed generator.) `model` is a compiled course model: `DiffusionModel` or `DDPMModel`.

        parts = {**model.checkpoint_parts(), TRAINING_STATE_PART: TrainingState(model)}
        save_checkpoint(directory, parts, config, step, seed)
    """

    def __init__(self, model):
        self.model = model

    def variables(self):
        """The optimizer's variables (building them if no step has run yet), then the RNG state."""
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        return [*optimizer.variables, self.model.seed_generator.state]

    @property
    def weights(self):
        """Like a Keras model's: what `save_weights` writes (a save sizes the file from it)."""
        return self.variables()

    def save_weights(self, filepath):
        with h5py.File(filepath, "w") as file:
            for index, variable in enumerate(self.variables()):
                dataset = file.create_dataset(f"{index:04d}",
                                              data=keras.ops.convert_to_numpy(variable))
                dataset.attrs["path"] = variable.path  # for people reading the file

    def load_weights(self, filepath):
        variables = self.variables()
        with h5py.File(filepath, "r") as file:
            if len(file) != len(variables):
                raise ValueError(
                    f"The file holds {len(file)} variables, but this model's optimizer and "
                    f"random state have {len(variables)}: it was saved with another optimizer."
                )
            for index, variable in enumerate(variables):
                values = file[f"{index:04d}"][()]
                if values.shape != tuple(variable.shape):
                    raise ValueError(f"{variable.path} has shape {tuple(variable.shape)}, but "
                                     f"the file holds {values.shape} for it.")
                variable.assign(values)
