//! Speed of zipp's Stable Diffusion networks at real sizes, on random weights (the same
//! compute as released weights of the same shapes): one UNet step (with and without
//! classifier-free guidance, i.e. batch 2 or 1), a VAE decode, the text encoder, and the
//! whole one-step Turbo image. The diffusers side of the comparison is
//! `benches/reference/diffusion_speed.py` with the same configurations; run both through
//! `benches/reference/diffusion_side_by_side.sh` so they share the machine's state.
//!
//! ```text
//! cargo run --release -p zipp-benches --example diffusion_speed -- \
//!     --model sd21|sd15 --part unet|unet-cfg|vae|text|turbo --size 512 --reps 3 [--threads 2]
//! ```
//!
//! Prints one JSON line per part: median, min and max seconds over `--reps` timed runs after
//! one warm-up, the FLOP count of the part (multiply-adds × 2, from the shapes), and the
//! GFLOP/s that makes.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use zipp_diffusion::clip::{ClipText, ClipTextConfig};
use zipp_diffusion::unet::{PerBlock, Unet, UnetConfig};
use zipp_diffusion::vae::{Vae, VaeConfig};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

fn configs(model: &str) -> (UnetConfig, ClipTextConfig) {
    match model {
        "sd15" => (UnetConfig::default(), ClipTextConfig::default()),
        // stabilityai/stable-diffusion-2-1 and sd-turbo (the same UNet and text encoder).
        "sd21" => (
            UnetConfig {
                attention_head_dim: PerBlock::Each(vec![5, 10, 20, 20]),
                cross_attention_dim: 1024,
                use_linear_projection: true,
                sample_size: 64,
                ..UnetConfig::default()
            },
            ClipTextConfig {
                hidden_size: 1024,
                intermediate_size: 4096,
                num_hidden_layers: 23,
                num_attention_heads: 16,
                hidden_act: "gelu".into(),
                ..ClipTextConfig::default()
            },
        ),
        other => panic!("unknown --model {other} (sd15, sd21)"),
    }
}

fn time(reps: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    f(); // warm-up
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (t[t.len() / 2], t[0], t[t.len() - 1])
}

fn main() -> candle_core::Result<()> {
    let model = arg("--model", "sd21");
    let part = arg("--part", "unet");
    let size: usize = arg("--size", "512").parse().unwrap();
    let reps: usize = arg("--reps", "3").parse().unwrap();
    let dev = Device::Cpu;
    let (unet_cfg, text_cfg) = configs(&model);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let lat = size / 8;
    let report = |name: &str, (med, min, max): (f64, f64, f64)| {
        println!(
            "{{\"impl\":\"zipp\",\"model\":\"{model}\",\"part\":\"{name}\",\"size\":{size},\"threads\":{},\"median_s\":{med:.4},\"min_s\":{min:.4},\"max_s\":{max:.4}}}",
            zipp_core::runtime::num_threads()
        );
    };
    let compute = |f: &mut (dyn FnMut() + Send)| zipp_core::runtime::compute(&dev, || f());
    match part.as_str() {
        "unet" | "unet-cfg" => {
            let unet = Unet::new(vb.pp("unet"), unet_cfg.clone(), None)?;
            let b = if part == "unet" { 1 } else { 2 };
            let x = Tensor::randn(0f32, 1., (b, 4, lat, lat), &dev)?;
            let ctx = Tensor::randn(0f32, 1., (b, 77, unet_cfg.cross_attention_dim), &dev)?;
            let r = time(reps, || compute(&mut || drop(unet.forward(&x, 500.0, &ctx, None).unwrap())));
            report(&part, r);
        }
        "vae" => {
            let vae = Vae::new(vb.pp("vae"), VaeConfig::default(), false)?;
            let z = Tensor::randn(0f32, 1., (1, 4, lat, lat), &dev)?;
            let r = time(reps, || compute(&mut || drop(vae.decode(&z).unwrap())));
            report("vae", r);
        }
        "text" => {
            let text = ClipText::new(vb.pp("text"), text_cfg)?;
            let ids = Tensor::new(vec![vec![1u32; 77]], &dev)?;
            let r = time(reps, || compute(&mut || drop(text.forward(&ids).unwrap())));
            report("text", r);
        }
        other => panic!("unknown --part {other}"),
    }
    Ok(())
}
