"""Shared fixtures: the real default models and the example personas.

The suite runs against the *installed* wheel (scripts/test-python.sh installs it into a
fresh venv and runs pytest with --import-mode=importlib from outside the source tree);
test_install.py checks that this is so.
"""

import json
import multiprocessing
import pathlib

import pytest

import zipp_persona as zipp

REPO = pathlib.Path(__file__).resolve().parents[2]
PERSONAS = REPO / "examples" / "data" / "personas.jsonl"
PROMPTS = REPO / "examples" / "data" / "prompts.txt"
METHODS = ["identity", "persona_only", "brag", "vprag", "combined"]


@pytest.fixture(scope="session")
def repo() -> pathlib.Path:
    return REPO


@pytest.fixture(scope="session")
def models() -> zipp.Models:
    m = zipp.Models()
    m.load_all()
    return m


@pytest.fixture(scope="session")
def personas() -> list:
    return zipp.read_jsonl(PERSONAS)


@pytest.fixture(scope="session")
def persona_dicts() -> list:
    return [json.loads(line) for line in PERSONAS.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def prompts() -> list:
    """The example prompts as request dicts (`edit: …` lines are edit requests)."""
    out = []
    for line in PROMPTS.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("edit:"):
            out.append({"prompt": line[len("edit:"):].strip(), "task": "edit"})
        else:
            out.append({"prompt": line, "task": "generate"})
    return out


@pytest.fixture(scope="session")
def personalizers(models) -> dict:
    return {name: zipp.Personalizer.from_spec(models, name) for name in METHODS}


@pytest.fixture(scope="session")
def model_files() -> pathlib.Path:
    """The provisioned default models folder (scripts/provision-models.sh fills it)."""
    root = zipp.default_models_dir()
    assert (root / "all-MiniLM-L6-v2" / "model.safetensors").is_file(), zipp.PROVISION_HINT
    return root


FORK_TIMEOUT = 120


def _run_in_fork(target, *args):
    """Runs `target(conn, *args)` in a forked child and returns what it sent. The wait has a
    timeout, so a child that deadlocks (on a lock or a thread pool of its parent) fails the
    test instead of hanging it."""
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(send, *args), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(FORK_TIMEOUT):
            pytest.fail(f"the forked child answered nothing within {FORK_TIMEOUT}s: deadlocked")
        status, payload = recv.recv()
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    assert status == "ok", payload
    assert proc.exitcode == 0
    return payload


@pytest.fixture(scope="session")
def run_in_fork():
    """[`_run_in_fork`]: `run_in_fork(target, *args)` in a test."""
    return _run_in_fork
