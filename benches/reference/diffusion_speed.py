"""diffusers' side of the diffusion speed comparison (BENCHMARKS.md, "Diffusion").

Builds the same networks as `benches/examples/diffusion_speed.rs` from the released
configurations (SD 2.1 / SD-Turbo UNet and OpenCLIP text encoder, SD 1.x UNet and CLIP
ViT-L text encoder, the SD VAE) with random weights (the same compute as the released
weights), float32 on the CPU with `--threads` torch threads, and times one warm-up and
`--reps` runs of the part asked for. Prints one JSON line like the Rust example's.

Throwaway venv (never in CI): python3 -m venv /tmp/diffref/v &&
/tmp/diffref/v/bin/pip install torch diffusers transformers  (measured with torch 2.15.0,
diffusers 0.42.1, transformers 5.24.0)

    /tmp/diffref/v/bin/python benches/reference/diffusion_speed.py --model sd21 --part unet --reps 3
"""

import argparse
import json
import statistics
import time

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

UNET = {
    "sd15": dict(attention_head_dim=8, cross_attention_dim=768),
    "sd21": dict(attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024, use_linear_projection=True),
}
TEXT = {
    "sd15": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 hidden_act="quick_gelu"),
    "sd21": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                 hidden_act="gelu"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="sd21", choices=list(UNET))
    ap.add_argument("--part", default="unet", choices=["unet", "unet-cfg", "vae", "taesd", "text"])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    lat = a.size // 8
    with torch.inference_mode():
        if a.part.startswith("unet"):
            unet = UNet2DConditionModel(sample_size=lat, **UNET[a.model]).eval()
            b = 1 if a.part == "unet" else 2
            x = torch.randn(b, 4, lat, lat)
            ctx = torch.randn(b, 77, UNET[a.model]["cross_attention_dim"])
            run = lambda: unet(x, 500, encoder_hidden_states=ctx)  # noqa: E731
        elif a.part == "vae":
            vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                                down_block_types=("DownEncoderBlock2D",) * 4,
                                up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4).eval()
            z = torch.randn(1, 4, lat, lat)
            run = lambda: vae.decode(z)  # noqa: E731
        elif a.part == "taesd":
            tiny = AutoencoderTiny().eval()
            z = torch.randn(1, 4, lat, lat)
            run = lambda: tiny.decode(z)  # noqa: E731
        else:
            text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, **TEXT[a.model])).eval()
            ids = torch.ones(1, 77, dtype=torch.long)
            run = lambda: text(ids)  # noqa: E731
        run()
        times = []
        for _ in range(a.reps):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
    print(json.dumps({"impl": "diffusers", "model": a.model, "part": a.part, "size": a.size, "threads": a.threads,
                      "median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
                      "max_s": round(max(times), 4), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
