"""``python -m rlkit.new plugin NAME`` writes a package that installs (not editable) and passes its own tests."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rlkit.new import names


def test_names_follow_the_distribution_name():
    assert names("rlkit-acme") == {"dist": "rlkit-acme", "package": "rlkit_acme", "name": "acme", "Class": "Acme"}
    assert names("my_keyword_reward")["Class"] == "MyKeywordReward"
    with pytest.raises(ValueError, match="letters, digits"):
        names("1bad name")


def test_new_plugin_installs_and_passes_its_own_tests(tmp_path):
    made = subprocess.run([sys.executable, "-m", "rlkit.new", "plugin", "rlkit-acme", "--dir", str(tmp_path)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    root = tmp_path / "rlkit-acme"
    assert (root / "rlkit_acme" / "conf" / "reward" / "acme_strict.yaml").is_file()
    again = subprocess.run([sys.executable, "-m", "rlkit.new", "plugin", "rlkit-acme", "--dir", str(tmp_path)],
                           capture_output=True, text=True)
    assert again.returncode == 1 and "already exists" in again.stderr

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(root)],
                   check=True, cwd=tmp_path)
    try:
        elsewhere = tmp_path / "elsewhere"  # not the source tree: the tests import the installed wheel
        elsewhere.mkdir()
        result = subprocess.run([sys.executable, "-m", "pytest", str(root / "tests"), "-q", "-p", "no:cacheprovider"],
                                capture_output=True, text=True, cwd=elsewhere)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert "3 passed" in result.stdout
        where = subprocess.run([sys.executable, "-c", "import rlkit_acme; print(rlkit_acme.__file__)"],
                               capture_output=True, text=True, cwd=elsewhere, check=True).stdout
        assert "site-packages" in where
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", "rlkit-acme"], check=True)
