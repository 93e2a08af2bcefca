"""Models written the way other people write them (each builds in seconds, random weights)."""

from __future__ import annotations

import keras

L = keras.layers


def keras_example() -> keras.Model:
    """The Keras example's MNIST convnet: Sequential with Dropout."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
        L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
        L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax"),
    ], name="keras_example")


def bn_relu_gap() -> keras.Model:
    """Conv2D(use_bias=False) → BatchNormalization → ReLU blocks, a GlobalAveragePooling head."""
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for i, filters in enumerate((8, 16), 1):
        x = L.Conv2D(filters, 3, use_bias=False, name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        x = L.MaxPooling2D(2, name=f"pool{i}")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="output")(x), name="bn_gap")


def residual_concat() -> keras.Model:
    """A residual Add and a Concatenate of two branches with different kernels."""
    inputs = keras.Input((28, 28, 1))
    a = L.Conv2D(8, 3, padding="same", activation="relu", name="a")(inputs)
    b = L.Conv2D(8, 3, padding="same", activation="relu", name="b")(a)
    added = L.Add(name="add")([a, b])
    pooled = L.MaxPooling2D(2, name="pool")(added)
    left = L.Conv2D(4, 3, padding="same", name="left")(pooled)
    right = L.Conv2D(4, 5, padding="same", name="right")(pooled)
    joined = L.Concatenate(name="concat")([left, right])
    x = L.GlobalAveragePooling2D(name="gap")(L.Activation("relu", name="relu")(joined))
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="output")(x),
                       name="residual")


def rescaling_nested() -> keras.Model:
    """Rescaling(1/255) first, then a nested Sequential feature extractor."""
    features = keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(8, 3, activation="relu", name="conv1"), L.MaxPooling2D(2, name="pool1"),
        L.Conv2D(16, 3, activation="relu", name="conv2"),
    ], name="features")
    inputs = keras.Input((28, 28, 1))
    x = L.Rescaling(1 / 255, name="rescale")(inputs)
    x = L.Flatten(name="flatten")(features(x))
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="output")(x), name="nested")


def rgb32() -> keras.Model:
    """A 32×32×3 colour model."""
    inputs = keras.Input((32, 32, 3))
    x = L.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="output")(x), name="rgb32")


def non_square() -> keras.Model:
    """A non-square 20×36×1 input with a non-square kernel."""
    inputs = keras.Input((20, 36, 1))
    x = L.Conv2D(6, (3, 5), activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Flatten(name="flatten")(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="output")(x), name="wide")


def mobilenet() -> keras.Model:
    """keras.applications.MobileNetV2 with random weights on 32×32×3."""
    return keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10,
                                          alpha=0.35)


ZOO = {"keras_example": keras_example, "bn_gap": bn_relu_gap, "residual": residual_concat,
       "nested": rescaling_nested, "rgb32": rgb32, "wide": non_square, "mobilenet": mobilenet}
