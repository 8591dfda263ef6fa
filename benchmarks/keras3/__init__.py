"""asv benchmarks of Keras 3's BatchNormalization, on the environment's
KERAS_BACKEND; what a backend cannot run raises NotImplementedError in
`setup`, which asv records as skipped (n/a).
"""
