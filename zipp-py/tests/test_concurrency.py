"""Shared objects used from many threads, and forked children (Python's multiprocessing
default on Linux) after and during zipp work. Every wait has a timeout, so a deadlock
fails the test instead of hanging it."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import zipp_persona as zipp
from zipp_persona import _zipp

METHODS = ["identity", "persona_only", "brag", "vprag", "combined"]
TIMEOUT = 120


def test_threads_share_models_personalizers_and_personas(models, repo, prompts):
    path = repo / "examples" / "data" / "personas.jsonl"
    personalizers = [zipp.Personalizer.from_spec(models, m) for m in METHODS]
    jobs = [(m, i, r["prompt"]) for m in range(len(METHODS)) for i in range(5) for r in prompts]

    def run(personas, job):
        m, i, prompt = job
        return personalizers[m].personalize(personas[i], prompt)

    # Fresh personas on each side, so the threads also race to build the memory indexes.
    sequential_personas = zipp.read_jsonl(path)
    sequential = [run(sequential_personas, job) for job in jobs]
    shared = zipp.read_jsonl(path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda job: run(shared, job), jobs * 2, timeout=TIMEOUT))
    assert threaded == sequential * 2

    texts = [[f"text {k} of batch {b}" for k in range(1 + b % 5)] for b in range(40)]
    alone = [models.embed(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(models.embed, texts, timeout=TIMEOUT))
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)


def child_embeds_and_personalizes(conn, models, persona, prompt):
    try:
        vectors = models.embed(["a cat on a sofa", prompt])
        out = zipp.Vprag(models).personalize(persona, prompt)
        conn.send(("ok", (_zipp._active_calls(), zipp.num_threads(), vectors, out.to_dict())))
    except BaseException as e:  # report anything, never hang the parent
        conn.send(("error", repr(e)))
    finally:
        conn.close()


def test_forked_child_computes_after_the_parent_used_the_models(models, personas, run_in_fork):
    prompt = "a portrait in the park at dusk"
    persona = personas[1]
    vectors = models.embed(["a cat on a sofa", prompt])  # the parent's pool has run
    out = zipp.Vprag(models).personalize(persona, prompt)
    active, threads, child_vectors, child_out = run_in_fork(child_embeds_and_personalizes, models, persona, prompt)
    assert active == 0 and threads == zipp.num_threads()
    np.testing.assert_array_equal(child_vectors, vectors)
    assert child_out == out.to_dict()


def test_fork_while_another_thread_is_inside_zipp(models, repo, run_in_fork):
    persona = zipp.read_jsonl(repo / "examples" / "data" / "personas.jsonl")[2]  # not indexed yet
    vprag = zipp.Vprag(models)
    prompts = [f"request {i}: a night market street with lanterns" for i in range(400)]
    started, done = threading.Event(), threading.Event()
    results = []

    def long_batch():
        started.set()
        results.extend(vprag.personalize_batch(persona, prompts))
        done.set()

    worker = threading.Thread(target=long_batch, daemon=True)
    worker.start()
    assert started.wait(TIMEOUT)
    # Fork while the batch is inside zipp: spin (no clock) until zipp counts the call.
    while _zipp._active_calls() == 0 and worker.is_alive():
        pass
    assert not done.is_set(), "the batch ended before the fork: make it longer"
    # os.fork's before-handler waits until the batch leaves zipp; the child then starts with
    # no call inside zipp (so no lock held) and uses the persona the thread was indexing.
    active, _, _, child_out = run_in_fork(child_embeds_and_personalizes, models, persona, prompts[0])
    assert active == 0
    assert done.wait(TIMEOUT)
    worker.join(TIMEOUT)
    assert len(results) == len(prompts)
    single = vprag.personalize(persona, prompts[0])
    assert results[0].prompt == single.prompt == child_out["prompt"]
