"""Every setting of the study, in one place.

The two builds are branches of the upstream checkout that `kbb wheel`
builds; the runs are every (backend, model, batch size, seed); `QUICK`
is the smoke run's smaller grid.
"""

from dataclasses import dataclass
from dataclasses import replace

from kbb import BACKENDS

# Label -> branch of .upstream/keras, built as `kbb wheel keras --ref` builds
# it: the release as shipped, and the fix alone (what the wheel ships).
BUILDS = {"pristine": "pristine", "fix": "group/bessel"}


@dataclass(frozen=True)
class Model:
    """One data set and architecture, with its training recipe."""

    name: str
    dataset: str  # wine, breast_cancer or digits (scikit-learn, bundled)
    kind: str  # "dense": Dense-BN-ReLU x2; "conv": Conv2D-BN-ReLU x2
    epochs_at_2: int  # epochs at batch size 2; batch size b: epochs_at_2 * b / 2
    train_size: int  # a multiple of 32: no partial batch in any run

    def epochs(self, batch_size):
        """Epochs at `batch_size`: the same optimizer steps at every size.

        >>> [WINE.epochs(b) * WINE.train_size // b for b in (2, 4, 32)]
        [64, 64, 64]
        """
        return self.epochs_at_2 * batch_size // 2


# Every run makes the same number of optimizer steps (about 650; epochs grow
# with the batch size): with momentum 0.99 the moving statistics keep
# 0.99**650 = 0.15 % of their initial values at every batch size. (A fixed
# number of epochs would leave 18 % at batch size 32 after 4 epochs of
# digits, mixing their warm-up with the rule under study.) The cost, about
# 3300 steps per model, build, backend and seed, is why the runs are short.
# Wine (178 samples, a test set of 50) is left out of the full run; the
# smoke run uses it.
MODELS = (
    Model("cancer-dense", "breast_cancer", "dense", epochs_at_2=3, train_size=416),
    Model("digits-dense", "digits", "dense", epochs_at_2=1, train_size=1344),
    Model("digits-conv", "digits", "conv", epochs_at_2=1, train_size=1344),
)
WINE = Model("wine-dense", "wine", "dense", epochs_at_2=1, train_size=128)

# `compile(steps_per_execution=...)`: TensorFlow runs that many train steps
# in one graph call (the same updates, less Python per step); the PyTorch
# backend allows only 1, and JAX gains nothing on these models.
STEPS_PER_EXECUTION = {"tensorflow": 16, "jax": 1, "torch": 1}


@dataclass(frozen=True)
class Settings:
    batch_sizes: tuple = (2, 4, 8, 16, 32)
    seeds: tuple = (0, 1, 2, 3, 4)
    backends: tuple = BACKENDS
    models: tuple = MODELS
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.99  # BatchNormalization's default
    epsilon: float = 1e-3  # BatchNormalization's default
    hidden: int = 64  # units of each Dense layer (dense models)
    filters: tuple = (16, 32)  # conv model
    ece_bins: int = 15  # equal-width confidence bins
    # Training-mode passes use batches of the run's batch size over
    # `probe_size` samples (a multiple of 32): a seeded subset of the test set
    # (agreement with inference mode), and of the training set (the second
    # moments that training sees).
    probe_size: int = 128
    interval: float = 0.95  # two-sided t-interval over seeds


FULL = Settings()
QUICK = replace(FULL, batch_sizes=(2, 32), seeds=(0, 1), models=(WINE,), probe_size=32)
