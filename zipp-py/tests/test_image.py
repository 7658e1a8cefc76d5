"""Image generation from Python on the tiny random Stable Diffusion fixture
(zipp-diffusion/tests/fixtures, made with diffusers by benches/reference/diffusion_reference.py):
numpy H×W×3 uint8 images, seeds, step callbacks and cancellation (False, Ctrl-C),
image-to-image, embeddings out as diffusers' keyword arrays and back in, personalizations,
typed errors."""

import _thread

import numpy as np
import pytest

import zipp_persona as zipp


@pytest.fixture(scope="module")
def sd(repo):
    return zipp.ImageModel(repo / "zipp-diffusion" / "tests" / "fixtures" / "tiny-sd")


@pytest.fixture(scope="module")
def sdxl(repo):
    return zipp.ImageModel({"path": str(repo / "zipp-diffusion" / "tests" / "fixtures" / "tiny-sdxl")})


def test_images_are_uint8_arrays_and_a_seed_repeats(sd):
    out = sd.generate("a photo of a red cat", steps=3, seed=5)
    assert len(out) == 1
    img = out[0]
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    again = sd.generate("a photo of a red cat", steps=3, seed=5)
    assert np.array_equal(img, again.images[0])
    other = sd.generate("a photo of a red cat", steps=3, seed=6)
    assert not np.array_equal(img, other[0])
    info = out.info
    assert info["steps"] == 3 and info["scheduler"] == "ddim" and info["report"]["chunks"] == 1
    assert sd.id.startswith("sd:")


def test_images_convert_to_pil_as_they_are(sd):
    pil = pytest.importorskip("PIL.Image")
    assert pil.fromarray(sd.generate("a cat", steps=1)[0]).size == (64, 64)


def test_batches_and_indices(sd):
    batch = sd.generate("a red cat", steps=2, seed=1, batch=2)
    second = sd.generate("a red cat", steps=2, seed=1, first_index=1)
    assert len(batch) == 2
    assert np.abs(batch[1].astype(int) - second[0].astype(int)).max() <= 1


def test_step_callback_and_cancellation(sd):
    seen = []
    sd.generate("a cat", steps=4, on_step=lambda step, total, t, s: seen.append((step, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    calls = []

    def stop(step, total, t, s):
        calls.append(step)
        return False

    with pytest.raises(zipp.CancelledError) as e:
        sd.generate("a cat", steps=10, on_step=stop)
    assert e.value.kind == "cancelled" and e.value.code == 13
    assert calls == [1]

    def boom(*_):
        raise ValueError("from the callback")

    with pytest.raises(ValueError, match="from the callback"):
        sd.generate("a cat", steps=3, on_step=boom)


def test_ctrl_c_cancels_and_raises_keyboard_interrupt(sd):
    steps = []

    def interrupt_at_two(step, total, t, s):
        steps.append(step)
        if step == 2:
            _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        sd.generate("a cat", steps=50, on_step=interrupt_at_two)
    assert len(steps) < 50


def test_image_to_image(sd):
    src = sd.generate("a photo of a red cat", steps=3, seed=2)[0]
    light = sd.generate("a cat", steps=4, init_image=src, strength=0.25)[0]
    heavy = sd.generate("a cat", steps=4, init_image=src, strength=1.0)[0]
    diff = lambda a, b: np.abs(a.astype(int) - b.astype(int)).mean()  # noqa: E731
    assert diff(light, src) < diff(heavy, src)
    # Any strides: a view of every other column of a wider array is a valid image.
    wide = np.repeat(src, 2, axis=1)[:, ::2, :]
    assert not wide.flags["C_CONTIGUOUS"]
    assert np.array_equal(sd.generate("a cat", steps=4, init_image=wide, strength=0.5)[0],
                          sd.generate("a cat", steps=4, init_image=src, strength=0.5)[0])
    with pytest.raises(zipp.InvalidInputError):
        sd.generate("a cat", init_image=src.astype(np.float32))
    with pytest.raises(zipp.InvalidInputError):
        sd.generate("a cat", init_image=src[:, :, :2].copy())
    with pytest.raises(zipp.InvalidInputError):
        sd.generate("a cat", strength=0.5)


def test_embeddings_out_in_diffusers_names_and_back_in(sd, sdxl):
    cond = sd.encode("a photo of a red cat", negative_prompt="blurry")
    assert cond["prompt_embeds"].shape == (1, 77, 32) and cond["prompt_embeds"].dtype == np.float32
    assert cond["negative_prompt_embeds"].shape == (1, 77, 32)
    assert "pooled_prompt_embeds" not in cond and cond["report"]["chunks"] == 1
    a = sd.generate("a photo of a red cat", negative_prompt="blurry", steps=3, seed=4)[0]
    b = sd.generate(conditioning=cond, steps=3, seed=4)[0]
    assert np.array_equal(a, b)
    xl = sdxl.encode("a photo of a red cat", steering={"liked": ["watercolor"], "disliked": ["neon"],
                                                        "liked_strength": 0.5, "disliked_strength": 0.5})
    # The tiny SDXL's encoders are 32 and 48 wide (SDXL's: 768 and 1280).
    assert xl["prompt_embeds"].shape == (1, 77, 80) and xl["pooled_prompt_embeds"].shape == (1, 48)
    assert np.all(xl["negative_prompt_embeds"] == 0), "SDXL: no negative prompt is zeros"
    assert xl["liked_embeds"].shape == (1, 77, 80) and xl["disliked_embeds"].shape == (1, 77, 80)
    with pytest.raises(zipp.InvalidInputError):
        sdxl.generate(conditioning=cond, steps=1)


def test_single_file_sdxl_makes_the_folders_images(repo, sdxl):
    fx = repo / "zipp-diffusion" / "tests" / "fixtures"
    single = zipp.ImageModel({"path": str(fx / "tiny-sdxl.safetensors"), "config_dir": str(fx / "tiny-sdxl")})
    a = single.generate("a photo of a red cat", negative_prompt="blurry", steps=2, seed=3)[0]
    b = sdxl.generate("a photo of a red cat", negative_prompt="blurry", steps=2, seed=3)[0]
    assert np.array_equal(a, b)
    with pytest.raises(zipp.ModelInvalidError, match="token_embedding"):
        zipp.ImageModel({"path": str(fx / "tiny-sdxl.safetensors")})  # SDXL-base configs, tiny weights


def test_steering_and_personalizations(sd, personas):
    plain = sd.generate("a photo of a red cat", steps=3, guidance=5.0)[0]
    zero = sd.generate("a photo of a red cat", steps=3, guidance=5.0,
                       steering={"liked": ["watercolor"], "disliked": ["neon"],
                                 "liked_strength": 0.0, "disliked_strength": 0.0})[0]
    assert np.array_equal(plain, zero), "beta = 0 is the plain pipeline"
    steered = sd.generate("a photo of a red cat", steps=3, guidance=5.0,
                          steering={"liked": ["watercolor"], "disliked": ["neon"],
                                    "liked_strength": 0.85, "disliked_strength": 0.85})[0]
    assert not np.array_equal(plain, steered)
    p = zipp.Identity().personalize(personas[0], "a photo of a red cat")
    assert np.array_equal(sd.generate(p, steps=3)[0], sd.generate("a photo of a red cat", steps=3)[0])
    with pytest.raises(TypeError):
        sd.generate(42)  # type: ignore[arg-type]


def test_bad_requests_and_models_are_typed_errors(sd, repo, tmp_path):
    with pytest.raises(zipp.InvalidInputError):
        sd.generate("a cat", width=100)
    with pytest.raises(zipp.InvalidInputError):
        sd.generate("a cat", steps=0)
    with pytest.raises(zipp.InvalidInputError):
        sd.generate("a cat", scheduler="pndm")  # type: ignore[arg-type]
    with pytest.raises(zipp.InvalidInputError):
        sd.generate("")
    with pytest.raises(zipp.ModelNotFoundError):
        zipp.ImageModel(tmp_path / "nothing")
    with pytest.raises(zipp.ModelInvalidError):
        zipp.ImageModel(repo / "zipp-diffusion" / "tests" / "fixtures" / "tiny-sd" / "unet")
    with pytest.raises(zipp.SchemaError):
        zipp.ImageModel({"path": "x", "colour": 1})
