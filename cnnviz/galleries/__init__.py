"""Recipes that run a probe, draw its results into outputs/NAME/ and record them in the manifest."""

from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before any module of this package imports TensorFlow
