"""tox's inline plugin for this workspace: KBB_TOX_PRUNE=1.

Every test environment holds its own ML framework (TensorFlow, JAX, PyTorch:
0.7 to 3 GB each, about 20 GB for the default list). With KBB_TOX_PRUNE=1
in tox's own environment, tox removes each test environment once it has
run (passed or failed), so that the disk holds one at a time; the next
`tox` creates it again. CI sets it (.ci/run); a user short of disk can too.
"""

import os
import shutil

from tox.plugin import impl
from tox.tox_env.package import PackageToxEnv


@impl
def tox_env_teardown(tox_env):
    if os.environ.get("KBB_TOX_PRUNE") != "1":
        return
    if isinstance(tox_env, PackageToxEnv):
        return  # the package environment is small and shared by all
    env_dir = tox_env.env_dir
    if env_dir.is_dir():
        print(f"{tox_env.name}: KBB_TOX_PRUNE=1, removing {env_dir}")
        shutil.rmtree(env_dir, ignore_errors=True)
