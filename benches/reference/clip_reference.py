"""A tiny random CLIPModel and what transformers computes with it, for zipp-diffusion's CLIP
tests (zipp-diffusion/tests/clip.rs): CLIP's official image preprocessing on real photos,
and the projected image and text embeddings.

Run it in the throwaway venv of diffusion_reference.py (never in CI; nothing is downloaded
at run time; the photos come from scikit-image's bundled data folder):

    /tmp/diffref/v/bin/pip install scikit-image==0.26.0
    /tmp/diffref/v/bin/python benches/reference/clip_reference.py \
        --out zipp-diffusion/tests/fixtures

Optional: `--torchvision` also measures how far transformers 5's torchvision-backed
`CLIPImageProcessor` lands from the PIL one (recorded in `clip_reference.json` ->
`torchvision_backend`; no array depends on it, and every other file comes out the same).
torchvision must be importable when transformers is imported; it was kept out of the venv:

    /tmp/diffref/v/bin/pip install --no-deps --target /tmp/diffref/tv torchvision==0.29.2
    PYTHONPATH=/tmp/diffref/tv /tmp/diffref/v/bin/python benches/reference/clip_reference.py \
        --out zipp-diffusion/tests/fixtures --torchvision

Versions used for the committed fixtures: Python 3.11.7, torch 2.15.0 (CPU, 2 threads),
transformers 5.24.0, Pillow 13.0.0, numpy 2.4.6, safetensors 0.8.0, scikit-image 0.26.0.
Re-running regenerates every file byte for byte.

What it writes (into --out):

- `tiny-clip/`: a transformers CLIPModel folder (`config.json`, `model.safetensors` in
  float16, the tiny tokenizer of `tiny-sd/tokenizer/` copied to the root as a hub CLIP
  folder has it, and `preprocessor_config.json` of the processor at the tiny size).
  Text: hidden 32, intermediate 64, 2 layers, 4 heads, vocab 562, quick_gelu. Vision:
  image 32, patch 8, hidden 32, intermediate 64, 2 layers, 4 heads, gelu (the LAION
  models' activation; OpenAI's use quick_gelu, which the text side covers). projection 16.
  Layer-norm weights/biases are perturbed off 1/0 and every bias is non-zero.
- `clip_images.safetensors`: the input images as uint8 `[H, W, 3]` (`[H, W]` for the
  grayscale one): downscaled copies of scikit-image photos and two synthetic ones. Rust
  reads these bytes (the repo has no PNG decoder); Python feeds the same bytes to
  transformers as PIL images.
- `clip_reference.safetensors`: float32 pixel values and embeddings, the uint8 images
  after resize + crop, and the processor's rescale/normalise lookup table.
- `clip_reference.json`: settings, geometry, token ids, versions, measured agreements.

Preprocessing reference: `CLIPImageProcessorPil`. In transformers 5 `CLIPImageProcessor`
is the torchvision backend and falls back to `CLIPImageProcessorPil` when torchvision is
missing (as in this venv); the PIL one is the classic algorithm (transformers 4's
CLIPImageProcessor, and what OpenAI's `clip.load` preprocess resizes with).
"""

import argparse
import copy
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file

import skimage
import transformers
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

TINY = 32
REAL = 224

PROMPTS = {
    "cat": "a photo of a red cat",
    "empty": "",
    "liked": "watercolor, soft pastel light, wide shot",
    "mixed": "A Photo of an Astronaut!",
    # 75 tokens between the markers: the full 77-position context.
    "full": " ".join(["a"] * 75),
}


def dump(path, obj):
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def perturb_and_round(model, seed):
    """Norm weights/biases off 1/0, every all-zero bias non-zero, then every float tensor
    rounded to float16 (what the file stores), so the float32 model holds what the file
    holds (diffusion_reference.py does the same)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in sorted(model.named_modules()):
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        for name, p in sorted(model.named_parameters()):
            if name.endswith("bias") and bool((p == 0).all()):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model.eval()


def images():
    """name -> (PIL image, where it came from). Downscaled copies keep the fixtures small;
    every size was picked for what it exercises (see `why`)."""
    data = Path(skimage.__file__).parent / "data"
    astro = Image.open(data / "astronaut.png").convert("RGB")
    coffee = Image.open(data / "coffee.png").convert("RGB")
    chelsea = Image.open(data / "chelsea.png").convert("RGB")
    camera = Image.open(data / "camera.png")
    assert camera.mode == "L"
    rng = np.random.default_rng(7)
    # Saturated blocks and mid greys: upscaling overshoots, so both of PIL's passes clip.
    synth = rng.choice(np.array([0, 255, 128, 30, 220], dtype=np.uint8), size=(13, 20, 3))
    lanczos = Image.Resampling.LANCZOS
    out = {
        "astronaut": (astro.resize((256, 256), lanczos),
                      "skimage astronaut.png 512x512 RGB, PIL LANCZOS to 256x256", "square, downscaled"),
        "coffee": (coffee.resize((360, 240), lanczos),
                   "skimage coffee.png 600x400 RGB, PIL LANCZOS to 360x240", "landscape 3:2, downscaled"),
        "chelsea": (chelsea.resize((251, 167), lanczos),
                    "skimage chelsea.png 451x300 RGB, PIL LANCZOS to 251x167",
                    "odd sizes; downscaled at 32, UPscaled at 224"),
        "strip": (astro.crop((100, 180, 404, 220)),
                  "skimage astronaut.png 512x512, crop box (100, 180, 404, 220): 304x40",
                  "7.6:1 strip: resized 243x32, crop offset 105 where torchvision's round() says 106"),
        "synthetic": (Image.fromarray(synth, "RGB"), "numpy default_rng(7) choice of 0/255/128/30/220, 20x13",
                      "tiny, UPscaled 13 -> 32 with overshoot to clip"),
        "gray": (camera.resize((75, 100), lanczos), "skimage camera.png 512x512 L, PIL LANCZOS to 75x100 (mode L)",
                 "grayscale: do_convert_rgb replicates it to RGB"),
    }
    return out


def geometry(w, h, size, crop):
    """What CLIPImageProcessorPil does to a w x h image: shortest edge to `size`
    (transformers' get_resize_output_image_size), centre crop (transformers' center_crop
    offsets, floor division), and torchvision's CenterCrop offsets (OpenAI clip.load:
    int(round(d / 2)), round half to even) for comparison."""
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    rw, rh = (size, new_long) if w <= h else (new_long, size)
    top, left = (rh - crop) // 2, (rw - crop) // 2
    tv_top, tv_left = int(round((rh - crop) / 2.0)), int(round((rw - crop) / 2.0))
    return {"input": [w, h], "resized": [rw, rh], "crop_top_left": [top, left],
            "torchvision_crop_top_left": [tv_top, tv_left]}


def lookup_table(proc):
    """pixel_values of value v in channel c, as the processor's rescale + normalise compute
    it (no resize, no crop): [3, 256]."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
    pv = proc(images=Image.fromarray(ramp, "RGB"), do_resize=False, do_center_crop=False,
              return_tensors="np")["pixel_values"][0]
    assert pv.dtype == np.float32 and pv.shape == (3, 16, 16)
    return pv.reshape(3, 256)


def process(proc, im):
    """(pixel_values [3,S,S] float32, the uint8 image after resize + crop [3,S,S])."""
    pv = proc(images=im, return_tensors="np")["pixel_values"][0]
    u8 = proc(images=im, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0]
    assert u8.min() >= 0 and u8.max() <= 255 and np.array_equal(u8, np.round(u8)), "resize output not uint8"
    return pv.astype(np.float32), u8.astype(np.uint8)


def torchvision_backend(imgs, real):
    """How far transformers 5's default (torchvision) CLIPImageProcessor is from the PIL one."""
    import torchvision  # noqa: F401
    from transformers import CLIPImageProcessor

    res = {"torchvision": torchvision.__version__}
    for label, size, names in (("tiny", TINY, list(imgs)), ("real", REAL, real)):
        fast = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        assert fast.backend == "torchvision", fast.backend
        slow = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        for n in names:
            a = fast(images=imgs[n][0], return_tensors="pt")["pixel_values"][0].numpy()
            b = slow(images=imgs[n][0], return_tensors="np")["pixel_values"][0]
            au = fast(images=imgs[n][0], do_rescale=False, do_normalize=False, return_tensors="pt")["pixel_values"][0]
            bu = slow(images=imgs[n][0], do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0]
            du = np.abs(au.numpy().astype(np.int32) - bu.astype(np.int32))
            res[f"{label}.{n}"] = {"max_abs_pixel_values": float(np.abs(a - b).max()),
                                   "max_uint8_levels": int(du.max()), "fraction_uint8_differing": float((du > 0).mean())}
    return res


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--torchvision", action="store_true", help="also compare the torchvision backend")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    clip_dir = out / "tiny-clip"
    shutil.rmtree(clip_dir, ignore_errors=True)
    clip_dir.mkdir(parents=True)

    meta = {"versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                         "transformers": transformers.__version__, "pillow": PIL.__version__,
                         "numpy": np.__version__, "scikit-image": skimage.__version__, "threads": args.threads}}

    # --- tokenizer: the tiny one of tiny-sd, at the folder's root (hub CLIP layout) -------
    for f in ("merges.txt", "vocab.json", "special_tokens_map.json", "tokenizer_config.json"):
        shutil.copy(out / "tiny-sd" / "tokenizer" / f, clip_dir / f)
    tok = CLIPTokenizer.from_pretrained(clip_dir)
    vocab = tok.get_vocab()
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    assert (len(vocab), bos, eos) == (562, 560, 561)

    # --- model ---------------------------------------------------------------------------
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(image_size=TINY, patch_size=8, num_channels=3, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, hidden_act="gelu", layer_norm_eps=1e-5),
        projection_dim=16)
    torch.manual_seed(3000)
    model = perturb_and_round(CLIPModel(cfg), 3001)
    half = copy.deepcopy(model).half()
    half.save_pretrained(clip_dir, safe_serialization=True)
    loaded = CLIPModel.from_pretrained(clip_dir, dtype=torch.float32, local_files_only=True).eval()
    sa, sb = model.state_dict(), loaded.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    model = loaded
    meta["model"] = {"config": json.loads((clip_dir / "config.json").read_text()),
                     "attn_implementation": model.config._attn_implementation}

    # --- preprocessing -------------------------------------------------------------------
    imgs = images()
    tiny = CLIPImageProcessorPil(size={"shortest_edge": TINY}, crop_size={"height": TINY, "width": TINY},
                                 resample=PILImageResampling.BICUBIC, image_mean=OPENAI_CLIP_MEAN,
                                 image_std=OPENAI_CLIP_STD)
    real = CLIPImageProcessorPil()  # the real settings: shortest edge 224, crop 224
    assert real.size["shortest_edge"] == REAL and real.resample == PILImageResampling.BICUBIC
    assert list(real.image_mean) == list(OPENAI_CLIP_MEAN) and list(real.image_std) == list(OPENAI_CLIP_STD)
    tiny.save_pretrained(clip_dir)
    meta["processor"] = {"tiny": tiny.to_dict(), "real": real.to_dict(), "class": "CLIPImageProcessorPil"}

    arrays, inputs = {}, {}
    lut = lookup_table(tiny)
    assert np.array_equal(lut, lookup_table(real))
    arrays["normalize.lut"] = lut
    # The same table as the formula transformers runs (rescale: float64 multiply by 1/255,
    # cast to float32; normalize: float32 (x - mean) / std).
    x = (np.arange(256, dtype=np.float64) * (1 / 255)).astype(np.float32)
    formula = (x[None, :] - np.array(OPENAI_CLIP_MEAN, np.float32)[:, None]) / np.array(OPENAI_CLIP_STD, np.float32)[:, None]
    meta["normalize"] = {"lut_vs_formula_max_abs": float(np.abs(formula - lut).max())}

    meta["images"] = {}
    real_names = ["astronaut", "coffee", "chelsea"]
    tiny_pv = []
    for name, (im, source, why) in imgs.items():
        arr = np.asarray(im)
        inputs[name] = np.ascontiguousarray(arr)
        entry = {"source": source, "why": why, "mode": im.mode, "width": im.width, "height": im.height,
                 "tiny": geometry(im.width, im.height, TINY, TINY)}
        pv, u8 = process(tiny, im)
        arrays[f"tiny.{name}.pixel_values"] = pv
        arrays[f"tiny.{name}.uint8"] = u8
        entry["tiny"]["pixel_values_vs_lut_max_abs"] = float(np.abs(lut[np.arange(3)[:, None, None], u8] - pv).max())
        tiny_pv.append(pv)
        if name in real_names:
            pv, u8 = process(real, im)
            arrays[f"real.{name}.uint8"] = u8
            entry["real"] = geometry(im.width, im.height, REAL, REAL)
            entry["real"]["pixel_values_vs_lut_max_abs"] = float(np.abs(lut[np.arange(3)[:, None, None], u8] - pv).max())
            # A slice of the real float32 values, to check directly (the rest via the table).
            arrays[f"real.{name}.pixel_values_row100"] = np.ascontiguousarray(pv[:, 100, :])
        meta["images"][name] = entry
    meta["image_order"] = list(imgs)
    # A crop larger than the image: transformers pads with zeros (height 13 -> 24) while it
    # crops the width (20 -> 16).
    pad = CLIPImageProcessorPil(do_resize=False, crop_size={"height": 24, "width": 16})
    arrays["pad.synthetic.uint8"] = process(pad, imgs["synthetic"][0])[1]
    batch = np.stack(tiny_pv)
    # The batched call gives the same values as one image at a time.
    batched = tiny(images=[v[0] for v in imgs.values()], return_tensors="np")["pixel_values"]
    meta["tiny_batched_vs_single_max_abs"] = float(np.abs(batched - batch).max())

    # --- embeddings ----------------------------------------------------------------------
    img = model.get_image_features(pixel_values=torch.from_numpy(batch)).pooler_output
    arrays["image_embeds"] = img.numpy()
    one = model.get_image_features(pixel_values=torch.from_numpy(batch[:1])).pooler_output
    meta["image_embeds_batch_vs_single_max_abs"] = float((one - img[:1]).abs().max())
    names = list(PROMPTS)
    enc = tok([PROMPTS[k] for k in names], padding=True, return_tensors="pt")
    txt = model.get_text_features(input_ids=enc.input_ids, attention_mask=enc.attention_mask).pooler_output
    arrays["text_embeds"] = txt.numpy()
    meta["prompts"] = PROMPTS
    meta["prompt_order"] = names
    meta["ids"] = {k: tok(PROMPTS[k]).input_ids for k in names}
    assert meta["ids"]["full"] == [bos] + [vocab["a</w>"]] * 75 + [eos]
    # Padding does not change the pooled output (causal mask, pooled at the first EOS).
    for i, k in enumerate(names):
        single = tok(PROMPTS[k], return_tensors="pt")
        t1 = model.get_text_features(input_ids=single.input_ids).pooler_output
        assert float((t1 - txt[i:i + 1]).abs().max()) < 1e-6, k
    meta["arrays"] = {
        "normalize.lut": "[3,256]: pixel_values of uint8 value v in channel c (rescale 1/255 + OpenAI normalise)",
        "tiny.NAME.pixel_values": "[3,32,32]: CLIPImageProcessorPil(shortest_edge 32, crop 32) of image NAME",
        "tiny.NAME.uint8": "[3,32,32] uint8: the same with do_rescale=False, do_normalize=False (after resize + crop)",
        "pad.synthetic.uint8": "[3,24,16] uint8: CLIPImageProcessorPil(do_resize=False, crop 24x16) of synthetic (zero rows)",
        "real.NAME.uint8": "[3,224,224] uint8: CLIPImageProcessorPil() (224/224), no rescale/normalise",
        "real.NAME.pixel_values_row100": "[3,224]: row 100 of that image's float32 pixel_values",
        "image_embeds": "[n,16]: CLIPModel.get_image_features(stack of tiny.NAME.pixel_values in image_order).pooler_output",
        "text_embeds": "[n,16]: get_text_features(tokenizer(prompts in prompt_order, padding=True)).pooler_output",
    }
    meta["inputs"] = "clip_images.safetensors: NAME -> uint8 [H,W,3] ([H,W] for mode L), what PIL hands the processor"

    if args.torchvision:
        meta["torchvision_backend"] = torchvision_backend(imgs, real_names)

    save_numpy(inputs, str(out / "clip_images.safetensors"), metadata={"format": "np"})
    save_numpy({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(out / "clip_reference.safetensors"),
               metadata={"format": "np"})
    files = sorted(p for p in [*clip_dir.rglob("*"), out / "clip_images.safetensors", out / "clip_reference.safetensors"]
                   if p.is_file())
    meta["files_sha256"] = {str(p.relative_to(out)): sha256(p) for p in files}
    dump(out / "clip_reference.json", meta)
    total = sum(p.stat().st_size for p in files) + (out / "clip_reference.json").stat().st_size
    print(f"wrote {len(files) + 1} files, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
