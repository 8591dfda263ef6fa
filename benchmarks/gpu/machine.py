"""Records this machine for asv, with its GPU: `python machine.py JSON`.

asv's machine fields (os, cpu, ram, ...) plus the device, its driver, the
CUDA and cuDNN versions and the library versions, saved in asv's machine
file (~/.asv-machine.json), so that they travel with the results, and in
JSON. Prints the machine name: "cuda-" and the GPU's name.
"""

import importlib.metadata
import json
import platform
import re
import subprocess
import sys

from asv.machine import Machine
from asv.machine import MachineCollection


def nvidia_smi():
    try:
        result = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None, None, None
    name, driver, memory = (s.strip() for s in result.stdout.splitlines()[0].split(","))
    return name, driver, memory


def version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(path):
    info = Machine.get_defaults()
    gpu, driver, memory = nvidia_smi()
    try:
        import torch

        cuda = torch.version.cuda
        cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
        gpu = gpu or (
            torch.cuda.get_device_name() if torch.cuda.is_available() else None
        )
    except ImportError:
        cuda = cudnn = None
    try:
        import jax

        jax_devices = ", ".join(str(d) for d in jax.devices())
    except Exception as e:  # a JAX without a usable GPU still records why
        jax_devices = f"unavailable: {e}"
    name = "cuda-" + re.sub(r"[^A-Za-z0-9]+", "-", gpu or "none").strip("-").lower()
    info.update(
        machine=name,
        gpu=gpu,
        gpu_memory=memory,
        driver=driver,
        cuda=cuda,
        cudnn=cudnn,
        jax_devices=jax_devices,
        python=platform.python_version(),
        libraries=", ".join(
            f"{n} {version(n)}"
            for n in ("jax", "jaxlib", "jax-cuda13-plugin", "torch", "numpy", "keras")
            if version(n)
        ),
    )
    MachineCollection.save(name, info)
    with open(path, "w") as f:
        json.dump(info, f, indent=1)
    print(name)


if __name__ == "__main__":
    main(sys.argv[1])
