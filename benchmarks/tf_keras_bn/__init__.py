"""asv benchmarks of tf-keras' BatchNormalization (asv-tf-keras.conf.json).

The same measurements as benchmarks/keras3, for the Keras 2 layer of tf-keras
on TensorFlow, with its two kernels: `fused=True` (FusedBatchNormV3, for 4D
inputs) and `fused=False` (the moments and updates as separate ops). Every
benchmark skips (NotImplementedError, n/a in asv) when tf_keras cannot be
imported.
"""
