"""The package as it ships: a wheel built offline from a copy of the sources, and what it must hold."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from app import __version__

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for package in ("app", "jobs"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    # No build isolation: the build uses this environment's setuptools and never reaches the network.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_holds_the_code_the_page_the_defaults_and_the_license(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for required in (
        "app/__main__.py",
        "app/cli/main.py",
        "app/default.toml",
        "app/web/static/index.html",
        "app/web/static/page.js",
        "app/web/static/page.css",
        "jobs/runner.py",
    ):
        assert required in names, required
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)[-10:]
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
    # app/default.toml is a link to config/default.toml: the wheel must carry the settings, not the link.
    assert wheel.read("app/default.toml") == (REPO / "config" / "default.toml").read_bytes()


def test_the_metadata_names_version_license_classifiers_and_the_console_script(wheel: zipfile.ZipFile) -> None:
    metadata = next(wheel.read(n).decode() for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    assert re.search(rf"^Version: {re.escape(__version__)}$", metadata, re.M)
    assert re.search(r"^License-Expression: MIT$", metadata, re.M)
    assert re.search(r"^Classifier: Programming Language :: Python :: 3.11$", metadata, re.M)
    assert re.search(r"^Classifier: Topic :: System :: Archiving :: Backup$", metadata, re.M)
    assert re.search(r"^Requires-Dist: click", metadata, re.M) and re.search(r"^Requires-Dist: rich", metadata, re.M)
    entry_points = next(wheel.read(n).decode() for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    assert re.search(r"^cloudcoin-wallet = app\.cli\.main:main$", entry_points, re.M)


def test_the_version_is_written_in_one_place() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert re.search(rf"^## {re.escape(__version__)} ", (REPO / "CHANGELOG.md").read_text(), re.M), (
        "the CHANGELOG starts with this release"
    )


def test_build_output_is_ignored() -> None:
    ignored = (REPO / ".gitignore").read_text().split()
    assert "build/" in ignored and "dist/" in ignored
