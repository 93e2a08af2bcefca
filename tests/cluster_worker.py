"""One worker of the test cluster (tests/test_distribute.py): under the multi-worker strategy
of TF_CONFIG, the class means, the similarities and the patterns of bundle `a2`, saved to
the .npz named on the command line (this is the test's own record, not cnnviz's output).
The test computes `probe_results` on one device to compare."""

import sys

import numpy as np

from cnnviz import distributed


def probe_results(trained: str, strategy) -> dict[str, np.ndarray]:
    """The class means, the similarities and the patterns of bundle `a2` under `strategy`."""
    import cnnviz
    from cnnviz.probes.activations import class_means
    from cnnviz.probes.similarity import functional_similarity, untrained_copy

    m = cnnviz.load("a2", trained_dir=trained)
    x, y = m.data().split("test")
    x, y = x[:157], y[:157]
    prep = m.loaded.preprocessing
    other = untrained_copy(m.model)
    means = class_means(m.model, ["conv2", "dense1"], x, y, prep, batch_size=16,
                        strategy=strategy)
    similar = functional_similarity((m.model, prep), (other, prep), (other, prep), ["conv2"], x,
                                    batch_size=16, strategy=strategy)
    patterns = m.patterns("conv1", maps=range(5), steps=8, data_starts=0, strategy=strategy)
    return dict(means=means.layers["conv2"], dense=means.layers["dense1"],
                pair=similar.pair["conv2"], image_means=similar.means[0]["conv2"],
                maps=patterns.maps, objectives=patterns.all_objectives, pixels=patterns.pixels)


def main(trained: str, out: str) -> None:
    strategy = distributed.make_strategy("multi-worker")  # before TensorFlow runs anything
    np.savez(out, **probe_results(trained, strategy))


if __name__ == "__main__":
    main(*sys.argv[1:])
