"""Pure computations on a model → numpy arrays + metadata. No plotting here."""

from cnnviz.runtime import import_tensorflow

import_tensorflow()  # quietly, before any module of this package imports TensorFlow
