"""The data sets (scikit-learn's bundled copies: no download) and the models.

Wine's and breast cancer's features are standardized with the training
split's statistics; digits' 16 grey levels are scaled to [0, 1] (flat
for the dense model, 8x8 images for the conv net).
"""

SPLIT_SEED = 2018  # one split for every run: the seeds vary the training


def load(model):
    """Returns (x_train, y_train, x_test, y_test, classes) for a config.Model."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = getattr(datasets, f"load_{model.dataset}")()
    x = bunch.data.astype("float32")
    y = bunch.target.astype("int32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, train_size=model.train_size, stratify=y, random_state=SPLIT_SEED
    )
    if model.dataset == "digits":  # 16 grey levels; constant border pixels
        x_train, x_test = x_train / 16.0, x_test / 16.0
        if model.kind == "conv":
            x_train = x_train.reshape(-1, 8, 8, 1)
            x_test = x_test.reshape(-1, 8, 8, 1)
    else:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0) + 1e-6
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    classes = int(y.max()) + 1
    return x_train, y_train, x_test, y_test, classes


def build(model, input_shape, classes, settings):
    """The Keras model: every BatchNormalization sits between a linear layer
    (without bias) and its ReLU, with the layer's default momentum unless
    the settings change it."""
    import keras
    from keras import layers

    def bn(name):
        return layers.BatchNormalization(
            momentum=settings.momentum, epsilon=settings.epsilon, name=name
        )

    inputs = keras.Input(input_shape)
    x = inputs
    if model.kind == "dense":
        for i in range(2):
            x = layers.Dense(settings.hidden, use_bias=False)(x)
            x = layers.ReLU()(bn(f"bn{i}")(x))
    else:
        for i, filters in enumerate(settings.filters):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.ReLU()(bn(f"bn{i}")(x))
            if i == 0:
                x = layers.MaxPooling2D(2)(x)
        x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)
