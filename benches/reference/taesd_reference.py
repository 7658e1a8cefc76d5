"""Tiny random TAESD (diffusers' AutoencoderTiny) fixture and its decode, for
`zipp-diffusion/tests/taesd.rs`.

Venv: /tmp/diffref/v (see diffusion_reference.py; torch 2.15.0, diffusers 0.42.1).

    /tmp/diffref/v/bin/python benches/reference/taesd_reference.py --out zipp-diffusion/tests/fixtures

Writes `tiny-taesd/` (config.json, diffusion_pytorch_model.safetensors in float16: the real
TAESD's architecture with 8 channels instead of 64 and 1 block per level instead of 3/3/3/1;
as the real TAESD, every level has the same width, so no block has a skip convolution) and
`taesd_reference.safetensors` (float32): `latents` [1,4,8,8] and `decoded` [1,3,64,64], what
`AutoencoderTiny.decode(latents).sample` returns (in [-1, 1]).
"""

import argparse
import pathlib

import torch
from diffusers import AutoencoderTiny
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=pathlib.Path, required=True)
    out = ap.parse_args().out
    torch.manual_seed(11)
    vae = AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    ).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_(p.half().float())  # f16-exact weights
    d = out / "tiny-taesd"
    vae.to(torch.float16).save_pretrained(d, safe_serialization=True)
    vae.to(torch.float32)
    g = torch.Generator().manual_seed(3)
    latents = torch.randn(1, 4, 8, 8, generator=g)
    with torch.no_grad():
        decoded = vae.decode(latents).sample
    save_file({"latents": latents.contiguous(), "decoded": decoded.contiguous()}, str(out / "taesd_reference.safetensors"))
    print("decoded range", decoded.min().item(), decoded.max().item())


if __name__ == "__main__":
    main()
