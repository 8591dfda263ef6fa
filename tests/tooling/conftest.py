"""A synthetic upstream for the tooling tests: `toypkg` 1.0, published as a
local sdist (found by pip through PIP_FIND_LINKS, no index) and as a local
`file://` git repository with tag v1.0. No network, no ML framework.

The sdist builds with an in-tree PEP 517 backend that needs no package, so
`pip download` and `pip wheel` work offline.
"""

import dataclasses
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import textwrap
from pathlib import Path

import pytest

from kbb import build
from kbb import results
from kbb.cli import main
from kbb.workspace import Workspace

ROOT = Path(__file__).resolve().parents[2]

CORE = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(12))

BACKEND = textwrap.dedent(
    '''\
    """A PEP 517 backend that needs nothing: a pure-Python wheel of toypkg/."""
    import base64, hashlib, os, re, zipfile

    def _version():
        text = open(os.path.join("toypkg", "version.py")).read()
        return re.search(r'"(.+)"', text).group(1)

    def _metadata(version):
        return f"Metadata-Version: 2.1\\nName: toypkg\\nVersion: {version}\\n"

    def prepare_metadata_for_build_wheel(directory, config_settings=None):
        info = f"toypkg-{_version()}.dist-info"
        os.makedirs(os.path.join(directory, info))
        with open(os.path.join(directory, info, "METADATA"), "w") as f:
            f.write(_metadata(_version()))
        return info

    def build_wheel(directory, config_settings=None, metadata_directory=None):
        version = _version()
        name = f"toypkg-{version}-py3-none-any.whl"
        info = f"toypkg-{version}.dist-info"
        files = {f"toypkg/{n}": open(f"toypkg/{n}", "rb").read()
                 for n in sorted(os.listdir("toypkg")) if n.endswith(".py")}
        files[f"{info}/METADATA"] = _metadata(version).encode()
        files[f"{info}/WHEEL"] = (
            b"Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        )
        record = []
        for path, data in files.items():
            digest = hashlib.sha256(data).digest()
            digest = base64.urlsafe_b64encode(digest).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        record.append(f"{info}/RECORD,,")
        files[f"{info}/RECORD"] = ("\\n".join(record) + "\\n").encode()
        with zipfile.ZipFile(os.path.join(directory, name), "w") as z:
            for path, data in files.items():
                z.writestr(path, data)
        return name

    def build_sdist(directory, config_settings=None):
        raise NotImplementedError
    '''
)

FILES = {
    "PKG-INFO": "Metadata-Version: 2.1\nName: toypkg\nVersion: 1.0\n",
    "pyproject.toml": (
        '[build-system]\nrequires = []\nbuild-backend = "toy_backend"\n'
        'backend-path = ["."]\n'
    ),
    "toy_backend.py": BACKEND,
    "toypkg/__init__.py": "from toypkg.core import *  # noqa\n",
    "toypkg/version.py": '__version__ = "1.0"\n',
    "toypkg/core.py": CORE,
}


def make_sdist(path, files=FILES, mtime=1700000000, top="toypkg-1.0"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime = len(data), mtime
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def nightly_files(files=FILES, version="1.1.dev1"):
    """`files` as the sdist of project toypkg-nightly `version` (the name
    and version that its metadata and wheel say, as pip checks them)."""
    nightly = {
        name: text.replace("Name: toypkg\\n", "Name: toypkg-nightly\\n").replace(
            'f"toypkg-{', 'f"toypkg_nightly-{'
        )
        for name, text in files.items()
    }
    nightly["PKG-INFO"] = (
        f"Metadata-Version: 2.1\nName: toypkg-nightly\nVersion: {version}\n"
    )
    nightly["toypkg/version.py"] = f'__version__ = "{version}"\n'
    return nightly


def pin_table(target, project, version, sha256, **extra):
    """A pins.toml table of an sdist-only pin (a nightly)."""
    lines = [
        f"[{target}]",
        f'project = "{project}"',
        f'version = "{version}"',
        f'sdist-sha256 = "{sha256}"',
        'version-files = ["toypkg/version.py"]',
        'local-version = "bessel1"',
    ] + [f'{key.replace("_", "-")} = "{value}"' for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def run_git(*args, cwd):
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    env.update(
        GIT_AUTHOR_NAME="Toy",
        GIT_AUTHOR_EMAIL="toy@example.org",
        GIT_COMMITTER_NAME="Toy",
        GIT_COMMITTER_EMAIL="toy@example.org",
    )
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_git_repo(path, files=FILES):
    path.mkdir()
    run_git("init", "-q", "-b", "main", cwd=path)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    run_git("add", "-A", cwd=path)
    run_git("commit", "-q", "-m", "toypkg 1.0", cwd=path)
    run_git("tag", "v1.0", cwd=path)
    return run_git("rev-parse", "HEAD", cwd=path)


def pins_toml(sha256, commit, url, **extra):
    lines = [
        "[toy]",
        'project = "toypkg"',
        'version = "1.0"',
        f'sdist-sha256 = "{sha256}"',
        f'git-url = "{url}"',
        'git-tag = "v1.0"',
        f'git-commit = "{commit}"',
        'version-files = ["toypkg/version.py"]',
        'local-version = "bessel1"',
    ] + [f'{key.replace("_", "-")} = "{value}"' for key, value in extra.items()]
    return "\n".join(lines) + "\n"


class Toy:
    """A workspace root with pins.toml for the toy upstream, and helpers."""

    def __init__(self, tmp_path, monkeypatch, capsys):
        self.tmp = tmp_path
        self.capsys = capsys
        self.index = tmp_path / "index"
        self.index.mkdir()
        self.sha256 = make_sdist(self.index / "toypkg-1.0.tar.gz")
        self.repo = tmp_path / "toypkg.git"
        self.commit = make_git_repo(self.repo)
        self.url = self.repo.as_uri()
        self.root = tmp_path / "ws"
        (self.root / "patches" / "toy").mkdir(parents=True)
        (self.root / "patches" / "toy" / "series").write_text("# toy series\n")
        self.write_pins()
        # pip: only the local folder, none of the machine's configuration.
        monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        monkeypatch.setenv("PIP_FIND_LINKS", str(self.index))
        monkeypatch.delenv("KBB_SOURCE", raising=False)
        monkeypatch.delenv("KBB_RESULTS", raising=False)

    def write_pins(self, **overrides):
        values = dict(sha256=self.sha256, commit=self.commit, url=self.url)
        extra = overrides.pop("extra", {})
        more = overrides.pop("more", "")
        values.update(overrides)
        text = pins_toml(**values, **extra)
        (self.root / "pins.toml").write_text(text + ("\n" + more if more else ""))

    def make_release(self, files):
        """Publishes another toypkg 1.0 sdist of `files`, and pins it."""
        self.sha256 = make_sdist(self.index / "toypkg-1.0.tar.gz", files)
        self.write_pins()

    def publish_nightly(self, files=FILES, version="1.1.dev1"):
        """Publishes toypkg-nightly `version` on the toy index; returns the
        sha256 of its sdist."""
        name = f"toypkg_nightly-{version}"
        return make_sdist(
            self.index / f"{name}.tar.gz", nightly_files(files, version), top=name
        )

    def add_nightly(self, files=FILES, version="1.1.dev1", toy=None, nightly=None):
        """Publishes toypkg-nightly and pins it as target toy-nightly, which
        applies the series of toy and is toy's newest upstream."""
        sha256 = self.publish_nightly(files, version)
        table = pin_table(
            "toy-nightly",
            "toypkg-nightly",
            version,
            sha256,
            series="toy",
            **(nightly or {}),
        )
        self.write_pins(extra={"newest": "toy-nightly", **(toy or {})}, more=table)

    @property
    def checkout(self):
        return self.root / ".upstream" / "toy"

    @property
    def patches(self):
        return self.root / "patches" / "toy"

    def break_context(self):
        """Breaks the context of fix/0002 (f9's signature), as a new
        upstream release would: it no longer applies."""
        path = self.patches / "fix" / "0002-Change-f9.patch"
        path.write_text(path.read_text().replace(" def f9(x):", " def f9(y):"))

    def kbb(self, *args, expect=0):
        """Runs `kbb --root ROOT ARGS`; returns (stdout, stderr)."""
        self.capsys.readouterr()
        code = main(["--root", str(self.root), *args])
        out, err = self.capsys.readouterr()
        assert code == expect, f"exit {code}, expected {expect}:\n{out}\n{err}"
        return out, err

    def git(self, *args):
        return run_git(*args, cwd=self.checkout)

    def write_results(self, env, records, ref, target="toy"):
        """out/results/ENV.json as a test session writes it after `kbb
        install TARGET --ref REF`: the records, stamped with the build."""
        ws = Workspace.find(self.root)
        stamp = build.stamp(ws, ws.pin(target), ref)
        directory = self.root / "out" / "results"
        results.write(directory, env, records, {target: stamp.__dict__})
        return directory / f"{env}.json"

    def commit_edit(self, path, old, new, message):
        file = self.checkout / path
        text = file.read_text()
        assert old in text
        file.write_text(text.replace(old, new))
        self.git("commit", "-q", "-am", message)

    def snapshot(self):
        return {
            p.relative_to(self.patches).as_posix(): p.read_bytes()
            for p in sorted(self.patches.rglob("*"))
            if p.is_file()
        }

    def leftovers(self):
        """Temporary files or folders left in .upstream/ (must be none)."""
        upstream = self.root / ".upstream"
        if not upstream.exists():
            return []
        names = [p.name for p in upstream.iterdir()]
        names += (
            [p.name for p in (upstream / "downloads").glob("*")]
            if (upstream / "downloads").exists()
            else []
        )
        return [n for n in names if n.startswith(".") and n != ".lock" or "tmp" in n]


PROVENANCE = (
    "\n\nBug: https://example.org/bug/1\nOrigin: vendor, tests\nForwarded: no\n"
)


def record_results(ws, target, env, patched, records):
    """out/results/ENV.json of the fixture `records` (on TensorFlow), as
    measured on `target`'s pinned release or on its group/bessel build
    (current for the workspace `ws`)."""
    pin = ws.pin(target)
    version = f"{pin.version}+bessel1" if patched else pin.version
    build = results.Build(
        target=target,
        ref="group/bessel" if patched else "pristine",
        commit="0" * 40,
        version=version,
        series=results.series_digest(ws, pin) if patched else None,
        unexported=False,
        pin=pin.digest(),
    )
    records = [{"keras": version, "backend": "tensorflow", **r} for r in records]
    builds = {target: dataclasses.asdict(build)}
    results.write(ws.root / "out" / "results", env, records, builds)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A copy of this workspace's declarative files (pins, tox.ini, the
    patch series, pr/) with an empty out/results/: for the documents and
    texts rendered from fixture results."""
    monkeypatch.delenv("KBB_RESULTS", raising=False)
    for name in ("pins.toml", "tox.ini"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("patches", "pr"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    (tmp_path / "out" / "results").mkdir(parents=True)
    return Workspace.find(tmp_path)


@pytest.fixture
def toy(tmp_path, monkeypatch, capsys):
    return Toy(tmp_path, monkeypatch, capsys)


@pytest.fixture
def toy_series(toy):
    """The toy workspace with a two-patch group `fix`, exported."""
    toy.kbb("fetch", "toy")
    toy.git("checkout", "-q", "-b", "series", "pristine")
    toy.commit_edit(
        "toypkg/core.py", "return x + 3\n", "return x + 30\n", "Change f3" + PROVENANCE
    )
    toy.commit_edit(
        "toypkg/core.py", "return x + 9\n", "return x + 90\n", "Change f9" + PROVENANCE
    )
    toy.kbb("export", "toy", "--new-group", "fix")
    return toy
