"""asv benchmarks of tf-keras' BatchNormalization (asv-tf-keras.conf.json):
those of benchmarks/keras3 for its two kernels, `fused=True`
(FusedBatchNormV3, 4D inputs) and `fused=False`; skipped without tf_keras.
"""
