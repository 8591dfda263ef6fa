"""kbb.pr.live: a patch to a module that nothing imports is found out."""

from kbb.pr import live


def write(tree, files):
    for path, text in files.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(text)


# keras' tree after a move was rewound: the backend imports its flat module,
# and the ops/ copies stay behind, unused.
REWOUND = {
    "keras/__init__.py": "from keras.src import backend\n",
    "keras/src/__init__.py": "",
    "keras/src/backend/__init__.py": (
        "if True:\n    from keras.src.backend.tensorflow import *\n"
    ),
    "keras/src/backend/tensorflow/__init__.py": "from . import nn\n",
    "keras/src/backend/tensorflow/nn.py": "def moments(): pass\n",
    "keras/src/backend/tensorflow/ops/__init__.py": "",
    "keras/src/backend/tensorflow/ops/nn.py": "def moments(): pass\n",
    "keras/src/layers/layer_test.py": "import keras\n",
}


def test_a_dead_copy_is_named(tmp_path):
    write(tmp_path, REWOUND)
    changed = [
        "keras/src/backend/tensorflow/ops/nn.py",
        "keras/src/backend/tensorflow/nn.py",
        "keras/src/layers/layer_test.py",
    ]
    assert live.dead(tmp_path, changed) == ["keras/src/backend/tensorflow/ops/nn.py"]
    assert live.backend_layout(tmp_path) == "keras-flat"


def test_the_ops_layout_is_found_when_it_is_imported(tmp_path):
    write(tmp_path, REWOUND)
    write(
        tmp_path,
        {
            "keras/src/backend/tensorflow/__init__.py": (
                "from keras.src.backend.tensorflow.ops import nn\n"
            )
        },
    )
    assert live.dead(tmp_path, ["keras/src/backend/tensorflow/ops/nn.py"]) == []
    assert live.backend_layout(tmp_path) == "keras-ops"


def test_imports_inside_functions_count(tmp_path):
    write(tmp_path, REWOUND)
    write(
        tmp_path,
        {
            "keras/src/__init__.py": "def f():\n    from keras.src import lazy\n",
            "keras/src/lazy.py": "",
        },
    )
    assert live.dead(tmp_path, ["keras/src/lazy.py"]) == []
