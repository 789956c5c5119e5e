"""Exponential moving average (EMA) copies of a network.

The EMA network starts as an exact copy (`keras.models.clone_model` alone re-initialises the
weights). Trainable weights are averaged; non-trainable ones (BatchNorm's moving mean and
variance) are copied, because they already are running averages and averaging them again only
makes them lag.
"""

import keras


def copy_network(network, name=None):
    """A new network with the same architecture and exactly the same weights."""
    copy = keras.models.clone_model(network)
    if name:
        copy.name = name
    copy.set_weights(network.get_weights())
    return copy


def update_ema_weights(ema_network, network, decay):
    """ema <- decay * ema + (1 - decay) * weights, for every trainable weight (Polyak averaging)."""
    # pair weights by position: the EMA network may be frozen, which changes its trainable list
    for weight, ema_weight in zip(network.weights, ema_network.weights):
        if weight.trainable:
            ema_weight.assign(decay * ema_weight + (1.0 - decay) * weight)
        else:
            ema_weight.assign(weight)
