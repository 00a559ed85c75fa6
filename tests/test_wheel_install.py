"""The wheel carries everything the verbs need at run time (targets, recipes, runtime sources).

Builds the wheel, installs it with --no-deps into a fresh venv whose dependencies come from this venv
through a .pth path line (no editable finder, no repo on sys.path), and runs the CLI from outside the repo.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(work / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((work / "dist").glob("edgeslm-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "edgeslm_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    return wheel, venv, work


def test_wheel_contents(installed):
    wheel = installed[0]
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("edgeslm/targets/host.toml", "edgeslm/quant/recipes/int4.json", "edgeslm/runtime/include/edgeslm.h",
                   "edgeslm/runtime/CMakeLists.txt", "edgeslm/compilers/executorch/lower.py", "edgeslm/cli/main.py",
                   "edgeslm/text/tokenizer.py", "edgeslm/native/__init__.py"):
        assert needed in names, needed


def test_cli_runs_from_the_installed_wheel(installed):
    _, venv, work = installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["EDGESLM_CACHE"] = str(work / "cache")
    exe = str(venv / "bin" / "edgeslm")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import edgeslm; print(edgeslm.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout
    assert str(venv) in where and str(ROOT) not in where
    targets = subprocess.run([exe, "targets", "--json"], capture_output=True, text=True, cwd=work, env=env)
    assert targets.returncode == 0, targets.stderr
    assert '"android-arm64"' in targets.stdout
    if shutil.which("cmake") is None and os.environ.get("CI") != "true":
        pytest.skip("cmake not installed (make test installs it)")
    build = subprocess.run([exe, "build-runner", "--target", "host"], capture_output=True, text=True, cwd=work,
                           env=env, timeout=1200)
    assert build.returncode == 0, build.stderr[-3000:]
    assert list((work / "cache").rglob("edgeslm-runner"))
