"""Recipes that run a probe, draw its results into outputs/NAME/ and record them in the manifest."""
