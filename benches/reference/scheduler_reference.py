"""diffusers' own outputs for zipp-diffusion's schedulers (zipp-diffusion/src/scheduler/).

Writes zipp-diffusion/tests/fixtures/schedulers.json, which zipp-diffusion/tests/schedulers.rs
replays: for each case a scheduler_config.json (as the Hub publishes it), the scheduler
kind, the step count, and from diffusers the timesteps, sigmas, init_noise_sigma, and a whole
text-to-image trajectory x_{i+1} = step(model_output_i, t_i, x_i) over fixed random model
outputs (so UniPC's multistep history matters), scale_model_input at every step, Euler-a's
ancestral noise as drawn (captured by wrapping `randn_tensor` in the scheduler's module, so
Rust replays it through `Noise::replay`), and an image-to-image start the way diffusers'
img2img pipeline does it (t_start = steps - int(steps * strength), `set_begin_index`,
`add_noise` at timesteps[t_start]) followed by its trajectory. Plus a table of timesteps (and
Euler sigmas) for every spacing at awkward step counts.

Schedulers are built the way a diffusers pipeline builds them: the class named in the file
loads the file, then `Kind.from_config(that.config)` swaps in the scheduler we test. Keys the
file leaves out keep the *new* class's defaults (diffusers tracks `_use_default_values`), so
e.g. UniPC, Euler and Euler-a from SD1.5's file get `linspace` spacing while DDIM gets
`leading`.

Run in a throwaway CPU venv (never in CI):

    python3 -m venv /tmp/diffref/v
    /tmp/diffref/v/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    /tmp/diffref/v/bin/pip install diffusers numpy
    /tmp/diffref/v/bin/python benches/reference/scheduler_reference.py \
        > zipp-diffusion/tests/fixtures/schedulers.json

Made with diffusers 0.42.1, torch 2.15.0, numpy 2.4.6, Python 3.11 (versions are recorded in
the fixture's "meta"). The scheduler configs below are the Hub's scheduler_config.json files
of stable-diffusion-v1-5, stable-diffusion-2-1, sd-turbo and stable-diffusion-xl-base-1.0.
"""

import json
import sys

import diffusers
import numpy as np
import torch
import diffusers.schedulers.scheduling_euler_ancestral_discrete as euler_a_module
from diffusers import DDIMScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, UniPCMultistepScheduler

SD15 = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.6.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
SD21 = {
    "_class_name": "DDIMScheduler",
    "_diffusers_version": "0.8.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}
SD_TURBO = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.24.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "trailing",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

SDXL = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.19.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}

KINDS = {
    "ddim": DDIMScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "unipc": UniPCMultistepScheduler,
    "euler": EulerDiscreteScheduler,
}


def with_(base, **over):
    d = dict(base)
    d.update(over)
    return d


def make(kind, file_config):
    """As a pipeline does it: the file's own class loads it, then the kind is swapped in."""
    own = getattr(diffusers, file_config["_class_name"]).from_config(file_config)
    return KINDS[kind].from_config(own.config)


def f32(t):
    """A tensor as a flat list of float32 values, printed with the digits float32 needs."""
    return [float(f"{v:.9g}") for v in t.detach().to(torch.float32).flatten().tolist()]


def f32s(xs):
    return [float(f"{float(np.float32(v)):.9g}") for v in xs]


class NoiseTap:
    """Records every tensor Euler-a's step draws from randn_tensor."""

    def __init__(self):
        self.drawn = []
        self.orig = euler_a_module.randn_tensor

    def __enter__(self):
        def tapped(*args, **kwargs):
            t = self.orig(*args, **kwargs)
            self.drawn.append(t.clone())
            return t

        euler_a_module.randn_tensor = tapped
        return self

    def __exit__(self, *exc):
        euler_a_module.randn_tensor = self.orig


def step(sched, kind, mo, t, x, gen):
    if kind == "ddim":
        return sched.step(mo, int(t), x, eta=0.0).prev_sample
    if kind == "euler_a":
        return sched.step(mo, t, x, generator=gen).prev_sample
    return sched.step(mo, t, x).prev_sample


def run(kind, sched, x, start, gen_models, gen_noise):
    """Steps from index `start` to the end; returns the per-step records."""
    outs, scaled, mos = [], [], []
    with NoiseTap() as tap:
        for t in sched.timesteps[start:]:
            s = sched.scale_model_input(x, t)
            mo = torch.randn(x.shape, generator=gen_models, dtype=torch.float32)
            x = step(sched, kind, mo, t, x, gen_noise)
            scaled.append(f32(s))
            mos.append(f32(mo))
            outs.append(f32(x))
    rec = {"model_outputs": mos, "scaled": scaled, "trajectory": outs}
    if kind == "euler_a":
        rec["noises"] = [f32(n) for n in tap.drawn]
    return rec


def case(name, kind, config, steps, shape=(1, 2, 3, 3), strength=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    gen_noise = torch.Generator().manual_seed(seed + 1)
    sched = make(kind, config)
    sched.set_timesteps(steps)
    out = {
        "name": name,
        "kind": kind,
        "config": config,
        "resolved": {
            "timestep_spacing": sched.config.timestep_spacing,
            "steps_offset": sched.config.steps_offset,
            "prediction_type": sched.config.prediction_type,
        },
        "steps": steps,
        "shape": list(shape),
        "timesteps": [float(t) for t in sched.timesteps.tolist()],
        "init_noise_sigma": float(sched.init_noise_sigma),
    }
    if hasattr(sched, "sigmas") and kind != "ddim":
        out["sigmas"] = f32s(sched.sigmas.tolist())
    x = torch.randn(shape, generator=gen, dtype=torch.float32) * sched.init_noise_sigma
    out["x_init"] = f32(x)
    out["text_to_image"] = run(kind, sched, x, 0, gen, gen_noise)

    if strength is not None:
        sched = make(kind, config)
        sched.set_timesteps(steps)
        init_timestep = min(int(steps * strength), steps)
        t_start = max(steps - init_timestep, 0)
        timesteps = sched.timesteps[t_start * sched.order :]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(t_start * sched.order)
        original = torch.randn(shape, generator=gen, dtype=torch.float32)
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        t0 = timesteps[:1].repeat(shape[0])
        noised = sched.add_noise(original, noise, t0)
        rec = run(kind, sched, noised, t_start, gen, gen_noise)
        rec.update(
            {"strength": strength, "start": t_start, "original": f32(original), "noise": f32(noise), "noised": f32(noised)}
        )
        out["image_to_image"] = rec
    return out


def timestep_table():
    """Timesteps (and Euler's and Euler-a's sigmas) for SD1.5's schedule at awkward step counts."""
    rows = []
    for kind in ["ddim", "euler_a", "unipc", "euler"]:
        for spacing, offset in [("leading", 1), ("leading", 0), ("linspace", 1), ("trailing", 1)]:
            for steps in [1, 2, 3, 7, 16, 48, 61, 100]:
                s = make(kind, with_(SD15, timestep_spacing=spacing, steps_offset=offset))
                s.set_timesteps(steps)
                row = {"kind": kind, "spacing": spacing, "steps_offset": offset, "steps": steps}
                row["timesteps"] = [float(t) for t in s.timesteps.tolist()]
                if kind in ("euler_a", "euler"):
                    row["sigmas"] = f32s(s.sigmas.tolist())
                    row["init_noise_sigma"] = float(s.init_noise_sigma)
                rows.append(row)
    return rows


def main():
    torch.set_num_threads(1)
    cases = [
        case("ddim_sd15", "ddim", SD15, 10, strength=0.75, seed=1),
        case("ddim_sd21_v", "ddim", SD21, 10, strength=0.5, seed=2),
        case(
            "ddim_trailing_clip_alpha_one",
            "ddim",
            with_(SD15, timestep_spacing="trailing", clip_sample=True, set_alpha_to_one=True),
            7,
            seed=3,
        ),
        case("ddim_linspace_sample", "ddim", with_(SD15, timestep_spacing="linspace", prediction_type="sample"), 10, seed=4),
        case("euler_a_turbo_1", "euler_a", SD_TURBO, 1, shape=(2, 2, 3, 3), seed=5),
        case("euler_a_turbo_4", "euler_a", SD_TURBO, 4, shape=(2, 2, 3, 3), strength=0.5, seed=6),
        case("euler_a_sd15_leading", "euler_a", with_(SD15, timestep_spacing="leading"), 10, strength=0.75, seed=7),
        case("euler_a_sd21_v", "euler_a", SD21, 8, seed=8),
        case("unipc_sd15", "unipc", SD15, 10, strength=0.75, seed=9),
        case("unipc_sd21_v", "unipc", SD21, 10, strength=0.6, seed=10),
        case(
            "unipc_leading_order3_bh1_sigma_min",
            "unipc",
            with_(SD15, timestep_spacing="leading", solver_order=3, solver_type="bh1", final_sigmas_type="sigma_min"),
            8,
            seed=11,
        ),
        case(
            "unipc_trailing_disable_corrector",
            "unipc",
            with_(SD15, timestep_spacing="trailing", disable_corrector=[0, 2]),
            6,
            strength=0.5,
            seed=12,
        ),
        case(
            "unipc_noise_prediction_v_sigma_min",
            "unipc",
            with_(SD21, predict_x0=False, final_sigmas_type="sigma_min"),
            8,
            strength=0.5,
            seed=16,
        ),
        case(
            "unipc_full_order_final_sigma_min",
            "unipc",
            with_(SD15, lower_order_final=False, final_sigmas_type="sigma_min"),
            6,
            seed=17,
        ),
        # Zero-terminal-SNR betas (Lin et al. 2023) with trailing spacing, as that paper pairs them.
        case("ddim_zero_snr_v", "ddim", with_(SD21, rescale_betas_zero_snr=True, timestep_spacing="trailing"), 5, seed=13),
        case("euler_a_zero_snr_v", "euler_a", with_(SD21, rescale_betas_zero_snr=True, timestep_spacing="trailing"), 4, seed=14),
        case("unipc_zero_snr_v", "unipc", with_(SD21, rescale_betas_zero_snr=True, timestep_spacing="trailing"), 5, seed=15),
        # Euler (EulerDiscreteScheduler): SDXL's own file (leading, steps_offset 1), then the
        # other spacings, v-prediction, and the options SDXL-family files set.
        case("euler_sdxl", "euler", SDXL, 10, strength=0.75, seed=18),
        case("euler_sdxl_2", "euler", SDXL, 2, shape=(2, 2, 3, 3), strength=0.5, seed=19),
        case("euler_sd15_linspace", "euler", SD15, 10, strength=0.6, seed=20),
        case("euler_sd21_v", "euler", SD21, 8, strength=0.5, seed=21),
        case("euler_turbo_1", "euler", SD_TURBO, 1, shape=(2, 2, 3, 3), seed=22),
        case("euler_turbo_4", "euler", SD_TURBO, 4, strength=0.5, seed=23),
        case(
            "euler_sdxl_trailing_v",
            "euler",
            with_(SDXL, timestep_spacing="trailing", prediction_type="v_prediction"),
            6,
            strength=0.5,
            seed=24,
        ),
        case("euler_sdxl_sigma_min", "euler", with_(SDXL, final_sigmas_type="sigma_min"), 5, strength=0.6, seed=25),
        case("euler_sdxl_linspace_sample", "euler", with_(SDXL, timestep_spacing="linspace", prediction_type="sample"), 5, seed=26),
        case("euler_zero_snr_v", "euler", with_(SD21, rescale_betas_zero_snr=True, timestep_spacing="trailing"), 4, seed=27),
    ]
    doc = {
        "meta": {
            "made_by": "benches/reference/scheduler_reference.py",
            "diffusers": diffusers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "cases": cases,
        "timestep_table": timestep_table(),
    }
    json.dump(doc, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
