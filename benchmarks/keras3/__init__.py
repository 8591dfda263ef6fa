"""asv benchmarks of Keras 3's BatchNormalization, pristine against patched.

Each module is one class or two in the numpy/pandas style: `params`,
`param_names`, `setup`, and `time_` / `peakmem_` / `track_` methods. The
backend is the environment's KERAS_BACKEND (asv.conf.json, `env_nobuild`).
Benchmarks that a backend cannot run raise NotImplementedError in `setup`,
which asv records as skipped (n/a).
"""
