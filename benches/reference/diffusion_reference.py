"""Tiny random-initialised Stable-Diffusion-family fixtures and diffusers' reference outputs
for zipp-diffusion's numerical tests (zipp-diffusion/tests/fixtures, see its README.md).

It writes small models in the layouts real checkpoints use (diffusers folders, plus
CompVis/LDM single-file checkpoints of SD 1.x, 2.x and XL), a tiny CLIP BPE tokenizer, and what diffusers /
transformers compute with them: token ids, text-encoder states, UNet and VAE outputs,
scheduler steps (with the noise Euler-ancestral draws recorded), whole pipelines from given
latents, img2img with every random draw recorded, and ViPer steering (SPEC §7) in plain torch.

Run it in a throwaway venv (never in CI; 2 CPU threads; nothing is downloaded at run time):

    python3 -m venv /tmp/diffref/v
    # PyPI's Linux torch wheel (2.15.0+cu132) links the CUDA runtime at import even on a
    # CPU-only machine, so `--no-deps` gives "libcudart.so.13: cannot open shared object
    # file": install it with its nvidia-*/cuda-* dependencies (about 5 GB in the venv).
    /tmp/diffref/v/bin/pip install torch==2.15.0
    /tmp/diffref/v/bin/pip install diffusers==0.42.1 transformers==5.24.0 safetensors==0.8.0 \
        numpy==2.4.6 pillow==13.0.0 accelerate==1.15.0
    /tmp/diffref/v/bin/python benches/reference/diffusion_reference.py \
        --out zipp-diffusion/tests/fixtures

Versions used for the committed fixtures: Python 3.11.7, torch 2.15.0 (+cu132 wheel, run on
CPU), diffusers 0.42.1, transformers 5.24.0, tokenizers 0.23.3, safetensors 0.8.0,
numpy 2.4.6, accelerate 1.15.0, huggingface_hub 2.4.0.

Re-running regenerates every file byte for byte (checked with sha256). `--threads 1`
writes the same set computed with one thread, to measure float32 reduction-order noise.
"""

import argparse
import collections
import contextlib
import copy
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import diffusers
import transformers
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
    UniPCMultistepScheduler,
)
from diffusers.utils import torch_utils
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

# ----------------------------------------------------------------------------------------
# Prompts and the tiny tokenizer
# ----------------------------------------------------------------------------------------

PROMPTS = {
    "prompt": "a photo of a red cat",
    "negative": "blurry, low quality",
    "liked": "watercolor, soft pastel light, wide shot",
    "disliked": "neon, harsh shadows",
    # ~120 tokens with the tiny vocabulary: two chunks of 75 when chunked.
    "long": (
        "a photo of a red cat, watercolor, soft pastel light, wide shot, "
        "a red cat in golden morning light, soft shadows, low angle, "
        "a photo of a cat on a red sofa, pastel light, watercolor texture, "
        "a photo of a red cat, watercolor, soft pastel light, wide shot, "
        "a red cat asleep, high quality"
    ),
}
N_MERGES = 48
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    """OpenAI CLIP's byte -> printable character table, in its order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return list(zip(bs, [chr(c) for c in cs]))


def clip_words(text):
    # open_clip's pattern, on lowercase ASCII text.
    return re.findall(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+", text)


def learn_merges(texts, n):
    """A deterministic little BPE learner (most frequent pair, ties by the pair's text)."""
    cnt = collections.Counter(w for t in texts for w in clip_words(t))
    words = {tuple(w[:-1]) + (w[-1] + "</w>",): c for w, c in sorted(cnt.items())}
    merges = []
    for _ in range(n):
        pairs = collections.Counter()
        for sym, c in words.items():
            for a, b in zip(sym, sym[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        new = {}
        for sym, c in words.items():
            out, i = [], 0
            while i < len(sym):
                if i + 1 < len(sym) and (sym[i], sym[i + 1]) == best:
                    out.append(sym[i] + sym[i + 1])
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            new[tuple(out)] = c
        words = new
    return merges


def build_vocab(merges):
    """open_clip's vocabulary order: bytes, bytes+</w>, joined merges, then the two specials."""
    alphabet = [c for _, c in bytes_to_unicode()]
    vocab = alphabet + [c + "</w>" for c in alphabet] + [a + b for a, b in merges] + [BOS, EOS]
    assert len(set(vocab)) == len(vocab), "a merge duplicates a vocabulary entry"
    return {tok: i for i, tok in enumerate(vocab)}


def open_clip_bpe_ids(text, merges, vocab):
    """open_clip SimpleTokenizer.encode (+BOS/EOS), written out, to cross-check transformers."""
    ranks = {m: i for i, m in enumerate(merges)}
    b2u = dict(bytes_to_unicode())
    ids = [vocab[BOS]]
    for w in clip_words(" ".join(text.lower().split())):
        word = [b2u[b] for b in w.encode()]
        word = tuple(word[:-1]) + (word[-1] + "</w>",)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            out, i = [], 0
            while i < len(word):
                try:
                    j = word.index(best[0], i)
                except ValueError:
                    out.extend(word[i:])
                    break
                out.extend(word[i:j])
                i = j
                if i < len(word) - 1 and word[i + 1] == best[1]:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        ids.extend(vocab[s] for s in word)
    return ids + [vocab[EOS]]


def write_tokenizer(d, merges, vocab, pad):
    d.mkdir(parents=True, exist_ok=True)
    (d / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (d / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    special = lambda s: {"content": s, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    dump(d / "special_tokens_map.json", {
        "bos_token": special(BOS), "eos_token": special(EOS), "pad_token": pad, "unk_token": special(EOS)})
    dump(d / "tokenizer_config.json", {
        "add_prefix_space": False, "bos_token": BOS, "do_lower_case": True, "eos_token": EOS,
        "errors": "replace", "model_max_length": 77, "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer", "unk_token": EOS})


# ----------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------


def dump(path, obj):
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def seeded(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def perturb_and_round(model, seed):
    """Norm weights/biases off 1/0 and every all-zero bias made non-zero, so that a
    mis-mapped norm or bias shows; then every float tensor rounded to float16 (what the
    files store), so the float32 model holds exactly what the files hold."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in sorted(model.named_modules()):
            if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        for name, p in sorted(model.named_parameters()):
            if name.endswith("bias") and bool((p == 0).all()):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model.eval()


def text_encoder_state(te):
    """The hub layout (`text_model.*`, `text_projection.weight`); transformers 5 itself
    would save without the `text_model.` prefix."""
    out = {}
    for k, v in te.state_dict().items():
        if k.endswith("position_ids"):
            continue
        hub = k if k.startswith(("text_projection", "text_model.")) else "text_model." + k
        out[hub] = v.detach().half().contiguous()
    return out


def save_text_encoder(te, d):
    d.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(te.config)
    cfg.dtype = "float16"
    cfg.architectures = [type(te).__name__]
    cfg.save_pretrained(d)
    save_file(text_encoder_state(te), str(d / "model.safetensors"), metadata={"format": "pt"})


def save_diffusers_model(model, d):
    copy.deepcopy(model).half().save_pretrained(d, safe_serialization=True)


def assert_same_weights(a, b, what):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), (what, set(sa) ^ set(sb))
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), (what, k)


# ----------------------------------------------------------------------------------------
# Model configurations
# ----------------------------------------------------------------------------------------


def clip_config(vocab, pad_id, act, width=32):
    return CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, hidden_act=act, layer_norm_eps=1e-5,
        bos_token_id=vocab[BOS], eos_token_id=vocab[EOS], pad_token_id=pad_id, projection_dim=width)


def make_text_encoder(cfg, seed, projection=False):
    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return perturb_and_round(cls(cfg), seed + 1)


def make_unet(seed, **kw):
    torch.manual_seed(seed)
    args = dict(
        sample_size=8, in_channels=4, out_channels=4, flip_sin_to_cos=True, freq_shift=0,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32), layers_per_block=1, downsample_padding=1, mid_block_scale_factor=1,
        act_fn="silu", norm_num_groups=8, norm_eps=1e-5, cross_attention_dim=32, attention_head_dim=2)
    args.update(kw)
    return perturb_and_round(UNet2DConditionModel(**args), seed + 1)


def make_vae(seed, scaling_factor):
    # Four blocks, as real SD VAEs: the 8x latent downscale the pipelines assume
    # (vae_scale_factor = 2 ** (len(block_out_channels) - 1)).
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 16, 16), layers_per_block=1,
        act_fn="silu", latent_channels=4, norm_num_groups=4, sample_size=64, scaling_factor=scaling_factor)
    return perturb_and_round(vae, seed + 1)


SD15_SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    trained_betas=None, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    prediction_type="epsilon", timestep_spacing="leading")


def model_index(cls, components):
    idx = {"_class_name": cls, "_diffusers_version": diffusers.__version__}
    idx.update(components)
    return idx


SD_INDEX = lambda sched: model_index("StableDiffusionPipeline", {
    "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
    "safety_checker": [None, None], "scheduler": ["diffusers", sched], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"]})


# ----------------------------------------------------------------------------------------
# diffusers -> original (CompVis / LDM) single-file key mapping, written out here
# ----------------------------------------------------------------------------------------

RESNET_UNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
RESNET_VAE = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}
VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _sub(rest, table):
    for a, b in table.items():
        if rest.startswith(a + "."):
            return b + rest[len(a):]
    raise KeyError(rest)


def unet_key_to_ldm(k, cfg):
    L = cfg["layers_per_block"]
    fixed = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
             "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
    for a, b in fixed.items():
        if k.startswith(a + "."):
            return b + k[len(a):]
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        blk = 1 + i * (L + 1) + j
        return f"input_blocks.{blk}.0.{_sub(rest, RESNET_UNET)}" if kind == "resnets" else f"input_blocks.{blk}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", k):
        return f"input_blocks.{(int(m[1]) + 1) * (L + 1)}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", k):
        return f"middle_block.{2 * int(m[1])}.{_sub(m[2], RESNET_UNET)}"
    if m := re.match(r"mid_block\.attentions\.0\.(.*)", k):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", k):
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        blk = i * (L + 1) + j
        return f"output_blocks.{blk}.0.{_sub(rest, RESNET_UNET)}" if kind == "resnets" else f"output_blocks.{blk}.1.{rest}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", k):
        i = int(m[1])
        has_attn = cfg["up_block_types"][i].startswith("CrossAttn")
        return f"output_blocks.{i * (L + 1) + L}.{2 if has_attn else 1}.conv.{m[2]}"
    raise KeyError(k)


def vae_key_to_ldm(k, cfg):
    n = len(cfg["block_out_channels"])
    for part in ("encoder", "decoder"):
        if not k.startswith(part + "."):
            continue
        rest = k[len(part) + 1:]
        if m := re.match(r"(conv_in|conv_out)\.(.*)", rest):
            return f"{part}.{rest}"
        if m := re.match(r"conv_norm_out\.(.*)", rest):
            return f"{part}.norm_out.{m[1]}"
        if m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", rest):
            return f"{part}.mid.block_{int(m[1]) + 1}.{_sub(m[2], RESNET_VAE)}"
        if m := re.match(r"mid_block\.attentions\.0\.(.*)", rest):
            return f"{part}.mid.attn_1.{_sub(m[1], VAE_ATTN)}"
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            return f"{part}.down.{m[1]}.block.{m[2]}.{_sub(m[3], RESNET_VAE)}"
        if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", rest):
            return f"{part}.down.{m[1]}.downsample.conv.{m[2]}"
        if m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", rest):
            return f"{part}.up.{n - 1 - int(m[1])}.block.{m[2]}.{_sub(m[3], RESNET_VAE)}"
        if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", rest):
            return f"{part}.up.{n - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if k.startswith(("quant_conv.", "post_quant_conv.")):
        return k
    raise KeyError(k)


OPENCLIP = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
            "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def open_clip_state(te):
    """A transformers CLIP text model under OpenCLIP's names (SD 2.x's `cond_stage_model.model.`,
    SDXL's `conditioner.embedders.1.model.`): q, k, v fused into `in_proj_*` (rows q, k, v),
    `text_projection` stored as the matrix P of `x @ P` (transformers' weight transposed), and the
    `logit_scale` real OpenCLIP checkpoints carry (unused by diffusion)."""
    s = text_encoder_state(te)
    out = {}
    for k, v in s.items():
        if k == "text_model.embeddings.token_embedding.weight":
            out["token_embedding.weight"] = v
        elif k == "text_model.embeddings.position_embedding.weight":
            out["positional_embedding"] = v
        elif k.startswith("text_model.final_layer_norm."):
            out["ln_final." + k.rsplit(".", 1)[1]] = v
        elif k == "text_projection.weight":
            out["text_projection"] = v.T.contiguous()
        elif m := re.match(r"text_model\.encoder\.layers\.(\d+)\.(.*)", k):
            if not re.match(r"self_attn\.[qkv]_proj\.", m[2]):
                out[f"transformer.resblocks.{m[1]}.{_sub(m[2], OPENCLIP)}"] = v
        else:
            raise KeyError(k)
    for i in range(te.config.num_hidden_layers):
        for kind in ("weight", "bias"):
            qkv = [s[f"text_model.encoder.layers.{i}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
            out[f"transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat(qkv).contiguous()
    out["logit_scale"] = torch.tensor(4.6052).half()
    return out


def ldm_checkpoint(unet, vae, te=None, texts=None):
    """The original single-file layout. `texts`: (prefix, state) per text encoder; default SD 1.x's
    one OpenAI CLIP under `cond_stage_model.transformer.`."""
    texts = texts if texts is not None else [("cond_stage_model.transformer.", text_encoder_state(te))]
    out = {}
    for k, v in unet.state_dict().items():
        out["model.diffusion_model." + unet_key_to_ldm(k, unet.config)] = v
    for k, v in vae.state_dict().items():
        lk = vae_key_to_ldm(k, vae.config)
        if ".mid.attn_1." in lk and lk.endswith("weight") and v.ndim == 2:
            v = v[:, :, None, None]  # the LDM VAE's attention projections are 1x1 convs
        out["first_stage_model." + lk] = v
    for prefix, state in texts:
        for k, v in state.items():
            out[prefix + k] = v
    assert len(out) == len(unet.state_dict()) + len(vae.state_dict()) + sum(len(s) for _, s in texts)
    return {k: v.detach().half().contiguous() for k, v in out.items()}


# ----------------------------------------------------------------------------------------
# Recording the noise diffusers draws
# ----------------------------------------------------------------------------------------

ORIG_RANDN = torch_utils.randn_tensor


@contextlib.contextmanager
def record_randn(log):
    """Replaces `randn_tensor` in every diffusers module that imported it; each draw is
    appended to `log` as (module, tensor) in call order."""
    patched = []
    for name, mod in list(sys.modules.items()):
        if name.startswith("diffusers") and getattr(mod, "randn_tensor", None) is ORIG_RANDN:
            def wrapped(*a, _name=name, **k):
                t = ORIG_RANDN(*a, **k)
                log.append((_name, t.detach().clone()))
                return t
            setattr(mod, "randn_tensor", wrapped)
            patched.append(mod)
    try:
        yield
    finally:
        for mod in patched:
            setattr(mod, "randn_tensor", ORIG_RANDN)


# ----------------------------------------------------------------------------------------
# Reference computations
# ----------------------------------------------------------------------------------------


class Ref:
    def __init__(self):
        self.arrays = {}
        self.meta = {}

    def add(self, name, t, meaning):
        t = torch.as_tensor(np.asarray(t)) if not isinstance(t, torch.Tensor) else t
        assert name not in self.arrays, name
        self.arrays[name] = t.detach().float().contiguous().clone()
        self.meta.setdefault("arrays", {})[name] = {"shape": list(t.shape), "meaning": meaning}


def token_ids(tok, text):
    return tok(text, padding="max_length", max_length=tok.model_max_length, truncation=True).input_ids


def chunk_ids(tok, text):
    body = tok(text, add_special_tokens=False, truncation=False).input_ids
    chunks = []
    for i in range(0, len(body), 75):
        c = body[i:i + 75]
        chunks.append([tok.bos_token_id] + c + [tok.eos_token_id] + [tok.pad_token_id] * (75 - len(c)))
    return body, chunks


@torch.no_grad()
def text_refs(ref, p, tok, te, merges, vocab, kind="plain"):
    """Token ids, text-encoder outputs for every prompt, and the chunked long prompt."""
    ids = {}
    emb = {}
    for key, text in PROMPTS.items():
        t = token_ids(tok, text)
        ids[key] = t
        if key == "long":
            continue
        # The tokenizer transformers loads must agree with open_clip's BPE over the same files.
        oc = open_clip_bpe_ids(text, merges, vocab)
        assert t[:len(oc)] == oc and all(x == tok.pad_token_id for x in t[len(oc):]), (key, t, oc)
        out = te(torch.tensor([t]), output_hidden_states=True)
        emb[key] = out
        if kind == "sdxl2":
            ref.add(f"{p}.text.{key}.penultimate", out.hidden_states[-2], "hidden_states[-2] (what SDXL pipelines use)")
            ref.add(f"{p}.text.{key}.text_embeds", out.text_embeds, "projected pooled output (text_embeds)")
        else:
            ref.add(f"{p}.text.{key}.last_hidden_state", out.last_hidden_state, f"text encoder last_hidden_state for '{text}'")
            ref.add(f"{p}.text.{key}.pooler_output", out.pooler_output, "pooled output (final-norm state at the first EOS)")
            if kind == "sdxl1":
                ref.add(f"{p}.text.{key}.penultimate", out.hidden_states[-2], "hidden_states[-2] (what SDXL pipelines use)")
    body, chunks = chunk_ids(tok, PROMPTS["long"])
    assert 100 <= len(body) <= 150 and len(chunks) == 2, len(body)
    if kind == "sdxl2":
        long = torch.cat([te(torch.tensor([c]), output_hidden_states=True).hidden_states[-2] for c in chunks], 1)
        ref.add(f"{p}.text.long_chunked.penultimate", long, "chunked long prompt, hidden_states[-2] of each chunk concatenated")
    else:
        long = torch.cat([te(torch.tensor([c])).last_hidden_state for c in chunks], 1)
        ref.add(f"{p}.text.long_chunked.last_hidden_state", long,
                "long prompt: ids without BOS/EOS cut in 75s, each chunk BOS+ids+EOS+pad to 77, encoded, concatenated on axis 1")
    return {"ids": ids, "long_body_ids": body, "long_chunk_ids": chunks, "pad_id": tok.pad_token_id,
            "bos_id": tok.bos_token_id, "eos_id": tok.eos_token_id}, emb


@torch.no_grad()
def unet_vae_refs(ref, p, unet, vae, emb, seed, added=None):
    x = seeded(seed, 2, 4, 8, 8)
    ref.add(f"{p}.unet.sample", x, "UNet input latents (batch 0 uses the negative prompt, batch 1 the prompt)")
    if added is None:
        ehs = torch.cat([emb["negative"], emb["prompt"]])
    else:
        ehs = added["ehs"]
    for t in (999.0, 500.0, 1.0):
        kw = {} if added is None else {"added_cond_kwargs": added["cond"]}
        out = unet(x, torch.tensor(t), encoder_hidden_states=ehs, **kw).sample
        ref.add(f"{p}.unet.out_t{int(t)}", out, f"UNet output at timestep {t} (float), encoder_hidden_states=[negative; prompt]")
    z = seeded(seed + 1, 1, 4, 8, 8)
    ref.add(f"{p}.vae.latents", z, "latents to decode")
    ref.add(f"{p}.vae.decoded", vae.decode(z / vae.config.scaling_factor).sample,
            "vae.decode(latents / scaling_factor).sample, raw (before the [-1,1] -> [0,1] mapping)")
    img = torch.round((seeded(seed + 2, 1, 3, 64, 64) * 0.5).clamp(-1, 1) * 127) / 127
    ref.add(f"{p}.vae.image", img, "image to encode, in [-1, 1]")
    dist = vae.encode(img).latent_dist
    ref.add(f"{p}.vae.encoded_mean", dist.mean, "vae.encode(image).latent_dist.mean")
    ref.add(f"{p}.vae.encoded_std", dist.std, "vae.encode(image).latent_dist.std")


@torch.no_grad()
def scheduler_refs(ref, meta, sd_cfg, sd2_cfg, turbo_cfg):
    # DDIM, epsilon (tiny-sd) and v-prediction (tiny-sd2).
    for p, cfg, seed in (("ddim", sd_cfg, 300), ("ddim_v", sd2_cfg, 310)):
        s = DDIMScheduler.from_config(cfg)
        s.set_timesteps(10)
        t = int(s.timesteps[3])
        mo, x = seeded(seed, 1, 4, 8, 8), seeded(seed + 1, 1, 4, 8, 8)
        out = s.step(mo, t, x)
        meta[p] = {"timesteps_10": [int(v) for v in s.timesteps], "step_t": t, "eta": 0.0,
                   "prediction_type": s.config.prediction_type}
        ref.add(f"sched.{p}.model_output", mo, f"{p}: model output given to step(t={t})")
        ref.add(f"sched.{p}.sample", x, f"{p}: sample given to step")
        ref.add(f"sched.{p}.prev_sample", out.prev_sample, f"{p}: step result (eta 0)")
        ref.add(f"sched.{p}.pred_original_sample", out.pred_original_sample, f"{p}: predicted x0")

    # Euler ancestral, trailing (tiny-turbo), every step with its noise recorded.
    meta["euler_a"] = {}
    for n, seed in ((4, 320), (1, 340)):
        s = EulerAncestralDiscreteScheduler.from_config(turbo_cfg)
        s.set_timesteps(n)
        info = {"timesteps": [float(v) for v in s.timesteps], "sigmas": [float(v) for v in s.sigmas],
                "init_noise_sigma": float(s.init_noise_sigma)}
        p = f"sched.euler_a{n}"
        ref.add(f"{p}.sigmas", s.sigmas, "sigmas after set_timesteps (last is 0)")
        x = seeded(seed, 1, 4, 8, 8) * s.init_noise_sigma
        ref.add(f"{p}.sample0", x, "initial sample (already times init_noise_sigma)")
        g = torch.Generator().manual_seed(seed + 1)
        for i, t in enumerate(s.timesteps):
            scaled = s.scale_model_input(x, t)
            ref.add(f"{p}.step{i}.scaled_input", scaled, "scale_model_input(sample, t) = sample / sqrt(sigma^2 + 1)")
            mo = seeded(seed + 10 + i, 1, 4, 8, 8)
            log = []
            with record_randn(log):
                out = s.step(mo, t, x, generator=g)
            assert len(log) == 1
            ref.add(f"{p}.step{i}.model_output", mo, "model output given to step")
            ref.add(f"{p}.step{i}.noise", log[0][1], "the N(0,1) noise step() drew (replay it)")
            ref.add(f"{p}.step{i}.prev_sample", out.prev_sample, "step result")
            ref.add(f"{p}.step{i}.pred_original_sample", out.pred_original_sample, "predicted x0")
            x = out.prev_sample
        meta["euler_a"][str(n)] = info

    # UniPC from tiny-sd's scheduler config.
    s = UniPCMultistepScheduler.from_config(sd_cfg)
    s.set_timesteps(10)
    meta["unipc"] = {"timesteps_10": [int(v) for v in s.timesteps], "config": {k: v for k, v in s.config.items() if not k.startswith("_")}}
    x = seeded(360, 1, 4, 8, 8)
    ref.add("sched.unipc.sample0", x, "initial sample")
    for i in range(3):
        mo = seeded(361 + i, 1, 4, 8, 8)
        x = s.step(mo, s.timesteps[i], x).prev_sample
        ref.add(f"sched.unipc.step{i}.model_output", mo, f"model output given to step {i} (t={int(s.timesteps[i])})")
        ref.add(f"sched.unipc.step{i}.prev_sample", x, "step result (feeds the next step)")


@torch.no_grad()
def pipe_run(pipe, **kw):
    img = pipe(output_type="np", **kw).images
    lat = pipe(output_type="latent", **kw).images
    return torch.from_numpy(np.ascontiguousarray(img)), lat


def draws_meta(log):
    return [{"module": m, "shape": list(t.shape)} for m, t in log]


@torch.no_grad()
def viper(unet, sched_cfg, emb, latents, w, beta):
    s = DDIMScheduler.from_config(sched_cfg)
    s.set_timesteps(2)
    c, u, P, N = emb["prompt"], emb["negative"], emb["liked"], emb["disliked"]
    cs, us = c + beta * P, u + beta * N
    x = latents * s.init_noise_sigma
    first = None
    for t in s.timesteps:
        inp = s.scale_model_input(torch.cat([x] * 4), t)
        e_u, e_c, e_p, e_n = unet(inp, t, encoder_hidden_states=torch.cat([us, cs, P, N])).sample.chunk(4)
        eps = e_u + w * (e_c + beta * e_p - e_u - beta * e_n)
        first = eps if first is None else first
        x = s.step(eps, t, x).prev_sample
    return x, first


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-sdxl", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tiny-sd", "tiny-sd2", "tiny-turbo", "tiny-sdxl"):
        shutil.rmtree(out / name, ignore_errors=True)

    ref = Ref()
    meta = ref.meta
    meta["versions"] = {"python": sys.version.split()[0], "torch": torch.__version__, "diffusers": diffusers.__version__,
                        "transformers": transformers.__version__, "numpy": np.__version__, "threads": args.threads}
    meta["prompts"] = PROMPTS

    # --- tokenizer -----------------------------------------------------------------------
    merges = learn_merges([v for k, v in PROMPTS.items() if k != "long"], N_MERGES)
    vocab = build_vocab(merges)
    meta["tokenizer"] = {"n_merges": len(merges), "vocab_size": len(vocab), "bos_id": vocab[BOS], "eos_id": vocab[EOS],
                         "merges": [f"{a} {b}" for a, b in merges]}

    # --- tiny-sd ---------------------------------------------------------------------------
    sd_dir = out / "tiny-sd"
    write_tokenizer(sd_dir / "tokenizer", merges, vocab, EOS)
    te1 = make_text_encoder(clip_config(vocab, vocab[EOS], "quick_gelu"), 1000)
    unet1 = make_unet(1100)
    vae = make_vae(1200, 0.18215)
    save_text_encoder(te1, sd_dir / "text_encoder")
    save_diffusers_model(unet1, sd_dir / "unet")
    save_diffusers_model(vae, sd_dir / "vae")
    DDIMScheduler(**SD15_SCHEDULER).save_pretrained(sd_dir / "scheduler")
    dump(sd_dir / "model_index.json", SD_INDEX("DDIMScheduler"))

    # --- tiny-sd.safetensors (original layout) -------------------------------------------
    single = out / "tiny-sd.safetensors"
    save_file(ldm_checkpoint(unet1, vae, te1), str(single), metadata={"format": "pt"})

    # --- tiny-sd2 / tiny-turbo -----------------------------------------------------------
    sd2_dir = out / "tiny-sd2"
    write_tokenizer(sd2_dir / "tokenizer", merges, vocab, "!")
    te2 = make_text_encoder(clip_config(vocab, vocab["!"], "gelu"), 2000)
    unet2 = make_unet(2100, use_linear_projection=True, attention_head_dim=[2, 4], upcast_attention=True)
    save_text_encoder(te2, sd2_dir / "text_encoder")
    save_diffusers_model(unet2, sd2_dir / "unet")
    shutil.copytree(sd_dir / "vae", sd2_dir / "vae")  # SD 2.x kept SD 1.x's VAE
    DDIMScheduler(**{**SD15_SCHEDULER, "prediction_type": "v_prediction"}).save_pretrained(sd2_dir / "scheduler")
    dump(sd2_dir / "model_index.json", SD_INDEX("DDIMScheduler"))

    turbo_dir = out / "tiny-turbo"
    for comp in ("tokenizer", "text_encoder", "unet", "vae"):
        shutil.copytree(sd2_dir / comp, turbo_dir / comp)
    EulerAncestralDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        trained_betas=None, prediction_type="epsilon", steps_offset=1, timestep_spacing="trailing",
    ).save_pretrained(turbo_dir / "scheduler")
    dump(turbo_dir / "model_index.json", SD_INDEX("EulerAncestralDiscreteScheduler"))

    # --- load everything back the way users do, and check ---------------------------------
    f32 = dict(dtype=torch.float32, local_files_only=True)
    pipe = StableDiffusionPipeline.from_pretrained(sd_dir, **f32)
    pipe2 = StableDiffusionPipeline.from_pretrained(sd2_dir, **f32)
    pipe_t = StableDiffusionPipeline.from_pretrained(turbo_dir, **f32)
    for a, b, w in ((pipe.text_encoder, te1, "te1"), (pipe.unet, unet1, "unet1"), (pipe.vae, vae, "vae"),
                    (pipe2.text_encoder, te2, "te2"), (pipe2.unet, unet2, "unet2"), (pipe_t.unet, unet2, "unet-turbo")):
        assert_same_weights(a, b, w)
    for pp in (pipe, pipe2, pipe_t):
        pp.set_progress_bar_config(disable=True)
    meta["single_file"] = verify_single_file(single, sd_dir, pipe)
    # SD 2.x in the original layout: OpenCLIP names under cond_stage_model.model., with the
    # text_projection real 2.x checkpoints carry (unused by the pipeline: a seeded matrix here).
    single2 = out / "tiny-sd2.safetensors"
    oc = open_clip_state(te2)
    oc["text_projection"] = seeded(2500, 32, 32).half()
    save_file(ldm_checkpoint(unet2, vae, texts=[("cond_stage_model.model.", oc)]), str(single2),
              metadata={"format": "pt"})
    meta["single_file_sd2"] = verify_single_file(
        single2, sd2_dir, pipe2, bad_keys=("model.diffusion_model.out.2.bias",
                                           "first_stage_model.decoder.conv_out.bias",
                                           "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_weight"))

    # --- references: tiny-sd -------------------------------------------------------------
    meta["sd"], emb = text_refs(ref, "sd", pipe.tokenizer, pipe.text_encoder, merges, vocab)
    last = {k: o.last_hidden_state for k, o in emb.items()}
    unet_vae_refs(ref, "sd", pipe.unet, pipe.vae, last, 100)

    meta["sd2"], emb2 = text_refs(ref, "sd2", pipe2.tokenizer, pipe2.text_encoder, merges, vocab)
    last2 = {k: o.last_hidden_state for k, o in emb2.items()}
    unet_vae_refs(ref, "sd2", pipe2.unet, pipe2.vae, last2, 200)

    scheduler_refs(ref, meta.setdefault("sched", {}), pipe.scheduler.config, pipe2.scheduler.config,
                   pipe_t.scheduler.config)

    # --- whole pipelines -------------------------------------------------------------------
    common = dict(prompt=PROMPTS["prompt"], negative_prompt=PROMPTS["negative"], height=64, width=64)
    lat0 = seeded(400, 1, 4, 8, 8)
    ref.add("pipe.latents0", lat0, "initial latents given to the txt2img pipelines (they multiply by init_noise_sigma)")
    runs = meta.setdefault("pipelines", {})

    img, lat = pipe_run(pipe, num_inference_steps=3, guidance_scale=7.5, latents=lat0.clone(), **common)
    ref.add("pipe.sd_ddim.image", img, "tiny-sd, DDIM 3 steps, cfg 7.5: output_type np, [1,64,64,3] in [0,1]")
    ref.add("pipe.sd_ddim.latents", lat, "same run, output_type latent (final latents, not scaled)")
    runs["sd_ddim"] = {"model": "tiny-sd", "scheduler": "DDIM", "steps": 3, "guidance": 7.5,
                       "timesteps": [int(t) for t in pipe.scheduler.timesteps]}

    ddim = pipe.scheduler
    pipe.scheduler = UniPCMultistepScheduler.from_config(ddim.config)
    img, lat = pipe_run(pipe, num_inference_steps=3, guidance_scale=7.5, latents=lat0.clone(), **common)
    ref.add("pipe.sd_unipc.image", img, "tiny-sd, UniPC (from DDIM's config) 3 steps, cfg 7.5, np image")
    ref.add("pipe.sd_unipc.latents", lat, "same run, final latents")
    runs["sd_unipc"] = {"model": "tiny-sd", "scheduler": "UniPCMultistep.from_config(ddim)", "steps": 3, "guidance": 7.5,
                        "timesteps": [int(t) for t in pipe.scheduler.timesteps]}
    pipe.scheduler = ddim

    img, lat = pipe_run(pipe2, num_inference_steps=3, guidance_scale=7.5, latents=lat0.clone(), **common)
    ref.add("pipe.sd2_ddim.image", img, "tiny-sd2 (v-prediction), DDIM 3 steps, cfg 7.5, np image")
    ref.add("pipe.sd2_ddim.latents", lat, "same run, final latents")
    runs["sd2_ddim"] = {"model": "tiny-sd2", "scheduler": "DDIM v_prediction", "steps": 3, "guidance": 7.5,
                        "timesteps": [int(t) for t in pipe2.scheduler.timesteps]}

    for n in (1, 4):
        res = {}
        for ot in ("np", "latent"):
            log = []
            with record_randn(log):
                res[ot] = pipe_t(prompt=PROMPTS["prompt"], height=64, width=64, num_inference_steps=n, guidance_scale=0.0,
                                 latents=lat0.clone(), generator=torch.Generator().manual_seed(500), output_type=ot).images
            res[ot + "_log"] = log
        assert len(res["np_log"]) == n and all(torch.equal(a[1], b[1]) for a, b in zip(res["np_log"], res["latent_log"]))
        ref.add(f"pipe.turbo{n}.image", torch.from_numpy(res["np"]), f"tiny-turbo, Euler-a trailing {n} step(s), guidance 0, np image")
        ref.add(f"pipe.turbo{n}.latents", res["latent"], "same run, final latents")
        for i, (_, t) in enumerate(res["np_log"]):
            ref.add(f"pipe.turbo{n}.noise{i}", t, f"noise drawn by the scheduler's step {i}")
        runs[f"turbo{n}"] = {"model": "tiny-turbo", "scheduler": "EulerAncestral trailing", "steps": n, "guidance": 0.0,
                             "timesteps": [float(t) for t in pipe_t.scheduler.timesteps],
                             "sigmas": [float(s) for s in pipe_t.scheduler.sigmas],
                             "init_noise_sigma": float(pipe_t.scheduler.init_noise_sigma),
                             "draws": draws_meta(res["np_log"]), "generator_seed": 500}

    # --- img2img -------------------------------------------------------------------------
    i2i = StableDiffusionImg2ImgPipeline(**pipe.components)
    i2i.set_progress_bar_config(disable=True)
    init = torch.round(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(600)) * 255) / 255
    ref.add("img2img.init_image", init, "init image [1,3,64,64] in [0,1] (k/255); the pipeline maps it to 2x-1")
    res = {}
    for ot in ("np", "latent"):
        log = []
        with record_randn(log):
            res[ot] = i2i(image=init.clone(), strength=0.6, num_inference_steps=5, guidance_scale=7.5,
                          generator=torch.Generator().manual_seed(601), output_type=ot, **{k: v for k, v in common.items() if k not in ("height", "width")}).images
        res[ot + "_log"] = log
    assert all(torch.equal(a[1], b[1]) for a, b in zip(res["np_log"], res["latent_log"]))
    ref.add("img2img.image", torch.from_numpy(res["np"]), "final np image [1,64,64,3]")
    ref.add("img2img.latents", res["latent"], "final latents")
    for i, (m, t) in enumerate(res["np_log"]):
        ref.add(f"img2img.draw{i}", t, f"random draw {i} (from {m})")
    runs["img2img"] = {"model": "tiny-sd", "scheduler": "DDIM", "steps": 5, "strength": 0.6, "guidance": 7.5,
                       "scheduler_timesteps": [int(t) for t in i2i.scheduler.timesteps],
                       "timesteps": [int(t) for t in i2i.get_timesteps(5, 0.6, "cpu")[0]], "generator_seed": 601,
                       "draws": draws_meta(res["np_log"])}

    # --- ViPer steering ------------------------------------------------------------------
    w, beta = 5.0, 0.85
    lat_v, eps_v = viper(pipe.unet, pipe.scheduler.config, last, lat0, w, beta)
    lat_0, _ = viper(pipe.unet, pipe.scheduler.config, last, lat0, w, 0.0)
    _, lat_cfg = pipe_run(pipe, num_inference_steps=2, guidance_scale=w, latents=lat0.clone(), **common)
    diff = float((lat_0 - lat_cfg).abs().max())
    assert diff < 1e-4, diff
    ref.add("viper.latents", lat_v, "ViPer steering, tiny-sd, DDIM 2 steps, w 5, beta+ = beta- = 0.85, from pipe.latents0")
    ref.add("viper.eps_step0", eps_v, "the combined eps-hat of the first step")
    ref.add("viper.latents_beta0", lat_0, "the same with beta = 0 (= plain CFG)")
    ref.add("viper.latents_cfg_pipeline", lat_cfg, "StableDiffusionPipeline, DDIM 2 steps, cfg 5: should equal latents_beta0")
    meta["viper"] = {"w": w, "beta_plus": beta, "beta_minus": beta, "steps": 2, "scheduler": "DDIM (tiny-sd)",
                     "unet_batch_order": ["u'", "c'", "P", "N"], "beta0_vs_pipeline_max_abs_diff": diff}

    # --- SDXL --------------------------------------------------------------------------------
    if not args.no_sdxl:
        sdxl_refs(out, ref, meta, merges, vocab, sd_dir, sd2_dir, f32)

    # --- write -----------------------------------------------------------------------------
    save_file(ref.arrays, str(out / "reference.safetensors"), metadata={"format": "pt"})
    # Only this script's files (other scripts write their own fixtures beside these).
    ours = [out / "reference.safetensors", out / "tiny-sd.safetensors"]
    ours += [p for d in ("tiny-sd", "tiny-sd2", "tiny-turbo", "tiny-sdxl") for p in (out / d).rglob("*")]
    files = sorted(p for p in ours if p.is_file() and not p.name.startswith("."))
    meta["files_sha256"] = {str(p.relative_to(out)): sha256(p) for p in files}
    dump(out / "reference.json", meta)


def verify_single_file(single, cfg_dir, pipe, cls=StableDiffusionPipeline,
                       names=("unet", "vae", "text_encoder"),
                       bad_keys=("model.diffusion_model.out.2.bias", "first_stage_model.encoder.mid.attn_1.q.weight",
                                 "cond_stage_model.transformer.text_model.final_layer_norm.bias")):
    """The single file through diffusers' own loader must give the diffusers-layout weights."""
    sf = cls.from_single_file(str(single), config=str(cfg_dir), local_files_only=True, dtype=torch.float32)
    for name in names:
        assert_same_weights(getattr(sf, name), getattr(pipe, name), "single-file " + name)
    # And the weights really come from the file: a copy with one tensor changed per model differs.
    import tempfile
    bad = load_file(str(single))
    for k in bad_keys:
        bad[k] = bad[k] + 1
    with tempfile.TemporaryDirectory() as tmp:
        save_file(bad, f"{tmp}/bad.safetensors")
        sf_bad = cls.from_single_file(f"{tmp}/bad.safetensors", config=str(cfg_dir), local_files_only=True,
                                      dtype=torch.float32)
    for name in names:
        try:
            assert_same_weights(getattr(sf_bad, name), getattr(pipe, name), name)
        except AssertionError:
            continue
        raise AssertionError(f"from_single_file ignored the checkpoint's {name} weights")
    return {"loader": f"{cls.__name__}.from_single_file(path, config={Path(cfg_dir).name} dir, local_files_only=True)",
            "checked": f"every tensor of {', '.join(names[:-1])} and {names[-1]} equal to the diffusers-layout load",
            "n_tensors": len(load_file(str(single))), "scheduler_loaded": type(sf.scheduler).__name__}


@torch.no_grad()
def sdxl_refs(out, ref, meta, merges, vocab, sd_dir, sd2_dir, f32):
    d = out / "tiny-sdxl"
    shutil.copytree(sd_dir / "tokenizer", d / "tokenizer")
    shutil.copytree(sd2_dir / "tokenizer", d / "tokenizer_2")
    shutil.copytree(sd_dir / "text_encoder", d / "text_encoder")  # SDXL's first encoder is SD 1.x's CLIP-L
    # Wider than the first encoder, as in SDXL (768 and 1280): diffusers' single-file loader
    # tells the two apart by width, and so would a mix-up in zipp.
    te2 = make_text_encoder(clip_config(vocab, vocab["!"], "gelu", width=48), 3000, projection=True)
    save_text_encoder(te2, d / "text_encoder_2")
    unet = make_unet(
        3100, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=[1, 2], attention_head_dim=[2, 4], use_linear_projection=True,
        cross_attention_dim=32 + 48, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=48 + 6 * 8)
    save_diffusers_model(unet, d / "unet")
    # Same weights as tiny-sd's VAE (one git blob); only the config's scaling factor differs.
    shutil.copytree(sd_dir / "vae", d / "vae")
    vcfg = json.loads((d / "vae" / "config.json").read_text())
    vcfg["scaling_factor"] = 0.13025
    (d / "vae" / "config.json").write_text(json.dumps(vcfg, indent=2, sort_keys=True) + "\n")
    EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        trained_betas=None, prediction_type="epsilon", steps_offset=1, timestep_spacing="leading",
        interpolation_type="linear", use_karras_sigmas=False,
    ).save_pretrained(d / "scheduler")
    dump(d / "model_index.json", model_index("StableDiffusionXLPipeline", {
        "feature_extractor": [None, None], "force_zeros_for_empty_prompt": True, "image_encoder": [None, None],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]}))

    pipe = StableDiffusionXLPipeline.from_pretrained(d, add_watermarker=False, **f32)
    pipe.set_progress_bar_config(disable=True)
    assert_same_weights(pipe.text_encoder_2, te2, "sdxl te2")
    assert_same_weights(pipe.unet, unet, "sdxl unet")

    m = {}
    # The same model in the original single-file layout (CLIP-L under conditioner.embedders.0.,
    # OpenCLIP bigG under conditioner.embedders.1.model.).
    single = out / "tiny-sdxl.safetensors"
    save_file(ldm_checkpoint(pipe.unet, pipe.vae, texts=[
        ("conditioner.embedders.0.transformer.", text_encoder_state(pipe.text_encoder)),
        ("conditioner.embedders.1.model.", open_clip_state(pipe.text_encoder_2))]), str(single), metadata={"format": "pt"})
    m["single_file"] = verify_single_file(
        single, d, pipe, cls=StableDiffusionXLPipeline, names=("unet", "vae", "text_encoder", "text_encoder_2"),
        bad_keys=("model.diffusion_model.label_emb.0.2.bias", "first_stage_model.decoder.conv_out.bias",
                  "conditioner.embedders.0.transformer.text_model.final_layer_norm.bias",
                  "conditioner.embedders.1.model.text_projection"))
    m["tokenizer"], e1 = text_refs(ref, "sdxl.te1", pipe.tokenizer, pipe.text_encoder, merges, vocab, kind="sdxl1")
    m["tokenizer_2"], e2 = text_refs(ref, "sdxl.te2", pipe.tokenizer_2, pipe.text_encoder_2, merges, vocab, kind="sdxl2")
    ctx = {k: torch.cat([e1[k].hidden_states[-2], e2[k].hidden_states[-2]], -1) for k in e1}
    # The pipeline's own encode_prompt must give the same as the pieces above.
    pe, npe, pooled, npooled = pipe.encode_prompt(PROMPTS["prompt"], negative_prompt=PROMPTS["negative"],
                                                  do_classifier_free_guidance=True, device="cpu")
    assert torch.equal(pe, ctx["prompt"]) and torch.equal(npe, ctx["negative"]), "encode_prompt differs"
    assert torch.equal(pooled, e2["prompt"].text_embeds) and torch.equal(npooled, e2["negative"].text_embeds)
    ref.add("sdxl.prompt_embeds", torch.cat([npe, pe]), "[negative; prompt] = cat(te1 penultimate, te2 penultimate) on the last axis")
    ref.add("sdxl.pooled", torch.cat([npooled, pooled]), "[negative; prompt] text_embeds of text_encoder_2")
    time_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]] * 2)
    ref.add("sdxl.time_ids", time_ids, "add_time_ids: original (64,64), crop (0,0), target (64,64)")
    added = {"ehs": torch.cat([npe, pe]), "cond": {"text_embeds": torch.cat([npooled, pooled]), "time_ids": time_ids}}
    unet_vae_refs(ref, "sdxl", pipe.unet, pipe.vae, None, 700, added=added)

    lat0 = seeded(800, 1, 4, 8, 8)
    ref.add("sdxl.pipe.latents0", lat0, "initial latents given to the SDXL pipeline (it multiplies by init_noise_sigma)")
    kw = dict(prompt=PROMPTS["prompt"], negative_prompt=PROMPTS["negative"], height=64, width=64,
              num_inference_steps=2, guidance_scale=5.0, latents=lat0.clone())
    img, lat = pipe_run(pipe, **kw)
    ref.add("sdxl.pipe.image", img, "tiny-sdxl, EulerDiscrete 2 steps, cfg 5, np image")
    ref.add("sdxl.pipe.latents", lat, "same run, final latents")
    m["pipeline"] = {"scheduler": "EulerDiscrete leading", "steps": 2, "guidance": 5.0,
                     "timesteps": [float(t) for t in pipe.scheduler.timesteps],
                     "sigmas": [float(s) for s in pipe.scheduler.sigmas],
                     "init_noise_sigma": float(pipe.scheduler.init_noise_sigma),
                     "original_size": [64, 64], "crops_coords_top_left": [0, 0], "target_size": [64, 64]}
    meta["sdxl"] = m


if __name__ == "__main__":
    main()
