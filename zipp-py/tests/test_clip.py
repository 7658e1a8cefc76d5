"""CLIP from Python on the tiny random CLIP fixture (zipp-diffusion/tests/fixtures/tiny-clip,
made with transformers by benches/reference/clip_reference.py): embeddings against
transformers' get_image_features / get_text_features (the committed reference arrays), numpy
images of any strides, the image scores against their numpy formulas, the image columns of an
evaluation beside a VPTT report, and typed errors."""

import json

import numpy as np
import pytest

import zipp_persona as zipp

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "U8": np.uint8, "I64": np.int64}


def read_safetensors(path):
    """The arrays of a .safetensors file (the format is an 8-byte length, a JSON header and
    the raw little-endian data): numpy alone, no safetensors package needed."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, end = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + start : 8 + n + end], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


@pytest.fixture(scope="module")
def fixtures(repo):
    return repo / "zipp-diffusion" / "tests" / "fixtures"


@pytest.fixture(scope="module")
def clip(fixtures):
    return zipp.ClipModel(fixtures / "tiny-clip")


@pytest.fixture(scope="module")
def reference(fixtures):
    meta = json.loads((fixtures / "clip_reference.json").read_text(encoding="utf-8"))
    arrays = read_safetensors(fixtures / "clip_reference.safetensors")
    inputs = read_safetensors(fixtures / "clip_images.safetensors")
    images = []
    for name in meta["image_order"]:
        a = inputs[name]
        # A mode-L image reached transformers replicated to RGB (do_convert_rgb).
        images.append(np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a)
    prompts = [meta["prompts"][k] for k in meta["prompt_order"]]
    return {"images": images, "prompts": prompts, **arrays}


def picture(k, w=32, h=32):
    """A deterministic RGB gradient; a different k is a different picture."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 7 + k * 40) % 256, (y * 5 + k * 90) % 256, ((x + y) * 3 + k * 17) % 256], axis=2).astype(
        np.uint8
    )


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_embeddings_match_transformers(clip, reference):
    assert clip.dim == 16 and clip.path.name == "tiny-clip"
    e = clip.image_embeddings(reference["images"])
    assert e.dtype == np.float32 and e.shape == (6, 16)
    assert np.abs(e - reference["image_embeds"]).max() <= 1e-4
    t = clip.text_embeddings(reference["prompts"])
    assert t.dtype == np.float32 and t.shape == (5, 16)
    assert np.abs(t - reference["text_embeds"]).max() <= 1e-4
    assert "ClipModel(path=" in repr(clip) and "dim=16" in repr(clip)


def test_images_of_any_strides_and_a_batch_array(clip):
    base = np.ascontiguousarray(picture(1, 48, 40))
    flipped = base[:, ::-1]  # negative strides
    padded = np.zeros((40, 60, 4), np.uint8)
    padded[:, :48, :3] = base
    view = padded[:, :48, :3]  # row padding and a pixel stride of 4
    e = clip.image_embeddings([base, np.ascontiguousarray(flipped), flipped, view])
    assert np.array_equal(e[0], e[3]) and np.array_equal(e[1], e[2])
    batch = np.stack([base, base])
    assert np.array_equal(clip.image_embeddings(batch), np.stack([e[0], e[0]]))


def test_scores_are_the_metrics_of_the_embeddings(clip, reference):
    images = reference["images"][:4]
    e = clip.image_embeddings(images)
    prompt = reference["prompts"][0]
    t = clip.text_embeddings([prompt])[0]
    s = clip.clip_scores(images, prompt)
    s100 = clip.clip_scores(images, prompt, scale100=True)
    for i in range(4):
        c = max(cos(e[i], t), 0.0)
        assert s[i] == pytest.approx(2.5 * c, abs=1e-6)
        assert s100[i] == pytest.approx(100 * c, abs=1e-5)
        assert s[i] == zipp.clip_score(e[i].tolist(), t.tolist())
    refs = reference["images"][4:]
    r = clip.image_embeddings(refs)
    p = clip.personalization_clip_scores(images, refs)
    for i in range(4):
        assert p[i] == pytest.approx(np.mean([cos(e[i], rr) for rr in r]), abs=1e-6)
    assert clip.cmmd(images, refs) == pytest.approx(zipp.cmmd(e.tolist(), r.tolist()), rel=1e-9)
    # CMMD by its formula: σ = 10, ×1000, biased, on L2-normalised embeddings.
    x = e / np.linalg.norm(e, axis=1, keepdims=True)
    y = r / np.linalg.norm(r, axis=1, keepdims=True)

    def k(a, b):
        d2 = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / 200.0).mean()

    assert clip.cmmd(images, refs) == pytest.approx(1000 * (k(x, x) + k(y, y) - 2 * k(x, y)), rel=1e-4, abs=1e-6)
    assert clip.cmmd(images, images) == pytest.approx(0.0, abs=1e-9)


def test_bad_input_is_typed(clip, fixtures):
    img = picture(0)
    for bad in ([], [img.astype(np.float32)], [img[:, :, :2]], [np.zeros((0, 4, 3), np.uint8)], img, [[1, 2, 3]]):
        with pytest.raises(zipp.InvalidInputError):
            clip.image_embeddings(bad)
    with pytest.raises(TypeError):
        clip.image_embeddings("not images")
    with pytest.raises(zipp.InvalidInputError, match="77"):
        clip.text_embeddings(["a " * 100])
    with pytest.raises(zipp.InvalidInputError):
        clip.text_embeddings([])
    with pytest.raises(zipp.InvalidInputError):
        clip.personalization_clip_scores([img], [])
    with pytest.raises(zipp.ModelNotFoundError):
        zipp.ClipModel("/nonexistent/clip")
    with pytest.raises(zipp.SchemaError):
        zipp.ClipModel({"path": str(fixtures / "tiny-clip"), "dtype": "f16"})
    with pytest.raises(zipp.ModelInvalidError):
        zipp.ClipModel(fixtures / "tiny-sd")  # a folder, but not a CLIPModel


QUERIES = [
    {"name": "cat", "task": "generate", "prompt": "a photo of a red cat"},
    {"name": "beach", "task": "generate", "prompt": "a dog on a beach"},
]
CONFIG = {"methods": ["identity", "persona_only"], "queries": QUERIES}


def test_image_columns_of_an_evaluation(clip):
    ev = zipp.ImageEvaluation(clip, CONFIG, options={"cmmd_sample": 50})
    assert ev.methods == ["identity", "persona_only"] and [q["name"] for q in ev.queries] == ["cat", "beach"]
    assert ev.options == {"cmmd_sample": 50, "seed": 0} and ev.config["queries"] == QUERIES
    refs = [picture(5), picture(6, 40, 32)]
    # persona_only renders the persona's own pictures; identity something else, twice.
    images = {q["name"]: {"identity": [picture(7), picture(8)], "persona_only": refs} for q in QUERIES}
    samples = ev.add_persona("ana", images, refs)
    assert [(s["query"], s["method"]) for s in samples] == [
        ("cat", "identity"),
        ("cat", "persona_only"),
        ("beach", "identity"),
        ("beach", "persona_only"),
    ]
    for s in samples:
        imgs = images[s["query"]][s["method"]]
        prompt = next(q["prompt"] for q in QUERIES if q["name"] == s["query"])
        assert s["images"] == 2
        assert s["clip_score"] == pytest.approx(np.mean(clip.clip_scores(imgs, prompt)), abs=1e-9)
        assert s["clip_score_100"] == pytest.approx(40 * s["clip_score"], abs=1e-9)
        p = np.mean(clip.personalization_clip_scores(imgs, refs))
        assert s["personalization_clip_score"] == pytest.approx(p, abs=1e-9)
    # A persona without references (a Persona object works as well as an id).
    other = {q["name"]: {"identity": [picture(9)], "persona_only": [picture(10)]} for q in QUERIES}
    more = ev.add_persona(zipp.Persona("bo"), other)
    assert all(s["persona"] == "bo" and s["personalization_clip_score"] is None for s in more)
    assert ev.personas == 2
    report = ev.report()
    assert report.personas == 2 and report.personas_with_references == 1
    assert report.methods == ["identity", "persona_only"]
    assert [t["name"] for t in report.tables] == ["cat", "beach", "all generation queries"]
    for t in report.tables:
        ident, own = t["rows"]
        assert own["cmmd"] == pytest.approx(0.0, abs=1e-9) and ident["cmmd"] > 0.0
        assert ident["n"] == (2 if t["query"] else 4)
    assert zipp.ImageReport.from_json(report.to_json()) == report
    assert report.to_dict() == json.loads(report.to_json(pretty=True))
    md = report.table()
    assert '### cat (generation): "a photo of a red cat"' in md
    assert "| method | n | images | CLIPScore | CLIPScore×100 | P-CLIP | CMMD |" in md
    assert "ImageReport(personas=2, methods=['identity', 'persona_only'], tables=3)" == repr(report)


def test_image_columns_beside_the_vptt_report(clip, models, personas):
    text = zipp.Evaluation(models, CONFIG)
    text.add_persona(personas[0])
    vptt = text.report()
    ev = zipp.ImageEvaluation(clip, text.config)
    pid = personas[0].id
    ev.add_persona(pid, {q["name"]: {m: [picture(i)] for i, m in enumerate(CONFIG["methods"])} for q in QUERIES})
    both = ev.report().table_beside(vptt)
    assert "| method | VPTT | VPTT_c | CLIPScore | CLIPScore×100 | P-CLIP | CMMD |" in both
    row = vptt.tables[0]["rows"][0]
    assert f"| identity | {row['vptt']['mean']:.3f} | {row['vptt_c']['mean']:.3f} |" in both


def test_bad_image_evaluations_are_typed(clip):
    with pytest.raises(zipp.SchemaError, match=r"methods\[0\]"):
        zipp.ImageEvaluation(clip, {"methods": ["nope"]})
    with pytest.raises(zipp.SchemaError):
        zipp.ImageEvaluation(clip, CONFIG, options={"sample": 3})
    with pytest.raises(TypeError):
        zipp.ImageEvaluation(clip, 3)
    ev = zipp.ImageEvaluation(clip, CONFIG)
    assert len(zipp.ImageEvaluation(clip).methods) == 5
    partial = {"cat": {"identity": [picture(0)], "persona_only": [picture(1)]}}
    with pytest.raises(zipp.InvalidInputError, match="no images for query `beach`"):
        ev.add_persona("p", partial)
    full = {q["name"]: {"identity": [picture(0)], "persona_only": [picture(1)]} for q in QUERIES}
    full["cat"]["identity"] = []
    with pytest.raises(zipp.InvalidInputError, match="has no image"):
        ev.add_persona("p", full)
    full["cat"]["identity"] = picture(0)  # one image, not a list
    with pytest.raises(zipp.InvalidInputError, match="list of"):
        ev.add_persona("p", full)
    with pytest.raises(TypeError):
        ev.add_persona(3, full)
    assert ev.personas == 0
