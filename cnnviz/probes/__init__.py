"""Pure computations on a model → numpy arrays + metadata. No plotting here."""
