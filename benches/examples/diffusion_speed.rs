//! Speed of zipp's Stable Diffusion networks at real sizes, on random weights (the same
//! compute as released weights of the same shapes): one UNet step (with and without
//! classifier-free guidance, i.e. batch 2 or 1), a VAE decode and the text encoder (a
//! one-step Turbo image is text + UNet + decode). The diffusers side of the comparison is
//! `benches/reference/diffusion_speed.py` with the same configurations; run both through
//! `benches/reference/diffusion_side_by_side.sh` so they share the machine's state.
//!
//! ```text
//! cargo run --release -p zipp-benches --example diffusion_speed -- \
//!     --model sd21|sd15|sdxl --part unet|unet-cfg|vae|taesd|text|params|conv|linear|unet-parts --size 512 --reps 3
//!     (conv: --impl zipp|candle|both --shapes unet|vae|all)
//! ```
//!
//! Prints one JSON line per part: median, min and max seconds over `--reps` timed runs after
//! one warm-up, the process's peak resident memory (`VmHWM`: weights + activations) and the
//! activations' peak (`VmHWM` over the resident memory just before the part runs; the peak is
//! reset there through `/proc/self/clear_refs`).
//! `--part params` prints each component's parameter count and weight bytes in f32 and f16
//! for `--model sd15|sd21|sdxl` without allocating any weights.

use std::time::Instant;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Module, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use zipp_diffusion::clip::{ClipText, ClipTextConfig};
use zipp_diffusion::unet::{Unet, UnetConfig};
use zipp_diffusion::vae::{Vae, VaeConfig};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

/// The released models' UNet and (last) text encoder: zipp's built-in configurations.
fn configs(model: &str) -> (UnetConfig, ClipTextConfig) {
    match model {
        "sd15" => (UnetConfig::default(), ClipTextConfig::default()),
        // stabilityai/stable-diffusion-2-1 and sd-turbo (the same UNet and text encoder).
        "sd21" => zipp_diffusion::model::sd2_configs(),
        // stabilityai/stable-diffusion-xl-base-1.0: its second, OpenCLIP bigG, text encoder
        // (the first is SD 1.x's).
        "sdxl" => {
            let (unet, _, [_, big_g]) = zipp_diffusion::model::sdxl_configs();
            (unet, big_g)
        }
        other => panic!("unknown --model {other} (sd15, sd21, sdxl)"),
    }
}

/// Hands out stride-0 views of one zero, so a model can be built at full size without its
/// weights, and counts the parameters asked for (each name once: candle's VAE attention asks
/// for its weights twice).
struct Counting(Arc<AtomicUsize>, std::sync::Mutex<std::collections::HashSet<String>>);

impl SimpleBackend for Counting {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if self.1.lock().unwrap().insert(name.to_string()) {
            self.0.fetch_add(s.elem_count(), Ordering::Relaxed);
        }
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: shape unknown")
    }
    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

fn count(build: impl FnOnce(VarBuilder) -> candle_core::Result<()>) -> candle_core::Result<usize> {
    let n = Arc::new(AtomicUsize::new(0));
    build(VarBuilder::from_backend(Box::new(Counting(n.clone(), Default::default())), DType::F32, Device::Cpu))?;
    Ok(n.load(Ordering::Relaxed))
}

/// Peak resident memory of this process, MiB.
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Resident memory now, after resetting the peak (Linux `clear_refs` 5), so a later
/// `peak_rss_mib() - rss_reset_mib()` is what the code in between added at its peak.
fn rss_reset_mib() -> f64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_mib("VmRSS:")
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
    // Activations: the peak above the resident memory just before the timed part (weights).
    let before = std::cell::Cell::new(0.0);
    let report = |name: &str, (med, min, max): (f64, f64, f64)| {
        println!(
            "{{\"impl\":\"zipp\",\"model\":\"{model}\",\"part\":\"{name}\",\"size\":{size},\"threads\":{},\"median_s\":{med:.4},\"min_s\":{min:.4},\"max_s\":{max:.4},\"peak_rss_mib\":{:.0},\"activation_peak_mib\":{:.0}}}",
            zipp_core::runtime::num_threads(),
            peak_rss_mib(),
            peak_rss_mib() - before.get()
        );
    };
    if part == "params" {
        let gib = |n: usize, bytes: usize| (n * bytes) as f64 / (1u64 << 30) as f64;
        let mut parts = vec![
            ("unet", count(|vb| Unet::new(vb, unet_cfg.clone(), None).map(drop))?),
            ("vae", count(|vb| Vae::new(vb, VaeConfig::default(), true).map(drop))?),
            ("vae_decoder", count(|vb| Vae::new(vb, VaeConfig::default(), false).map(drop))?),
        ];
        if model == "sdxl" {
            parts.push(("text_encoder", count(|vb| ClipText::new(vb, ClipTextConfig::default()).map(drop))?));
            parts.push(("text_encoder_2", count(|vb| ClipText::new(vb, text_cfg).map(drop))?));
        } else {
            parts.push(("text_encoder", count(|vb| ClipText::new(vb, text_cfg).map(drop))?));
        }
        for (name, n) in parts {
            println!(
                "{{\"model\":\"{model}\",\"component\":\"{name}\",\"params\":{n},\"f32_gib\":{:.3},\"f16_gib\":{:.3}}}",
                gib(n, 4),
                gib(n, 2)
            );
        }
        return Ok(());
    }
    let compute = |f: &mut (dyn FnMut() + Send)| zipp_core::runtime::compute(&dev, &mut *f);
    match part.as_str() {
        "unet" | "unet-cfg" => {
            let unet = Unet::new(vb.pp("unet"), unet_cfg.clone(), None)?;
            let b = if part == "unet" { 1 } else { 2 };
            let x = Tensor::randn(0f32, 1., (b, 4, lat, lat), &dev)?;
            let ctx = Tensor::randn(0f32, 1., (b, 77, unet_cfg.cross_attention_dim), &dev)?;
            before.set(rss_reset_mib());
            let r = time(reps, || compute(&mut || drop(unet.forward(&x, 500.0, &ctx, None).unwrap())));
            report(&part, r);
        }
        "vae" => {
            let vae = Vae::new(vb.pp("vae"), VaeConfig::default(), false)?;
            let z = Tensor::randn(0f32, 1., (1, 4, lat, lat), &dev)?;
            before.set(rss_reset_mib());
            let r = time(reps, || compute(&mut || drop(vae.decode(&z).unwrap())));
            report("vae", r);
        }
        "taesd" => {
            let d = zipp_diffusion::taesd::TinyDecoder::new(vb.pp("taesd"), Default::default())?;
            let z = Tensor::randn(0f32, 1., (1, 4, lat, lat), &dev)?;
            before.set(rss_reset_mib());
            let r = time(reps, || compute(&mut || drop(d.decode(&z).unwrap())));
            report("taesd", r);
        }
        "text" => {
            let text = ClipText::new(vb.pp("text"), text_cfg)?;
            let ids = Tensor::new(vec![vec![1u32; 77]], &dev)?;
            before.set(rss_reset_mib());
            let r = time(reps, || compute(&mut || drop(text.forward(&ids).unwrap())));
            report("text", r);
        }
        "conv" => {
            let which_impl = arg("--impl", "both");
            let shapes = arg("--shapes", "all");
            // zipp's convolution against candle's on the same weights, at the UNet's and the
            // VAE decoder's 3×3 shapes (channels in → out at a side of `s` pixels).
            for (cin, cout, s) in [
                (320, 320, lat),
                (640, 640, lat / 2),
                (1280, 1280, lat / 4),
                (512, 512, size / 2),
                (256, 256, size),
                (128, 128, size),
            ]
            .into_iter()
            .enumerate()
            .filter(|&(i, _)| shapes == "all" || (shapes == "unet") == (i < 3))
            .map(|(_, shape)| shape)
            {
                let vs = vb.pp(format!("conv{cin}_{s}"));
                let conv = zipp_diffusion::layers::conv2d(cin, cout, 3, 1, 1, true, vs)?;
                let x = Tensor::randn(0f32, 1., (1, cin, s, s), &dev)?;
                let flop = 2.0 * (cin * cout * 9 * s * s) as f64;
                for (name, which) in [("zipp", 0), ("candle", 1)] {
                    if !["both", name].contains(&which_impl.as_str()) {
                        continue;
                    }
                    let r = time(reps, || {
                        compute(&mut || {
                            let y = if which == 0 {
                                conv.forward(&x)
                            } else {
                                zipp_diffusion::layers::candle_conv(&conv, &x)
                            };
                            drop(y.unwrap())
                        })
                    });
                    println!(
                        "{{\"impl\":\"{name}\",\"part\":\"conv3x3 {cin}->{cout} at {s}x{s}\",\"median_s\":{:.4},\"min_s\":{:.4},\"gflops\":{:.1},\"peak_rss_mib\":{:.0}}}",
                        r.0,
                        r.1,
                        flop / r.0 / 1e9,
                        peak_rss_mib()
                    );
                }
            }
        }
        "linear" => {
            // The spatial transformer's linear layers at each SD 2.1 level (tokens × in →
            // out): candle's `Linear` against zipp's (one GEMM over all rows, the weight kept
            // transposed, bias and residual written in as the accumulator's start).
            let b: usize = arg("--batch", "1").parse().unwrap();
            for (tokens, cin, cout) in [
                (lat * lat, 320, 320),
                (lat * lat, 320, 2560),
                (lat * lat, 1280, 320),
                (lat * lat / 4, 640, 640),
                (lat * lat / 16, 1280, 1280),
                (77, 1024, 1024),
            ] {
                if cin == cout && tokens >= 256 {
                    // The transformer's proj_in / proj_out: feature map ↔ tokens.
                    let side = (tokens as f64).sqrt() as usize;
                    let vs = vb.pp(format!("map{tokens}_{cin}"));
                    let candle = candle_nn::linear(cin, cout, vs.clone())?;
                    let zipp = zipp_diffusion::layers::linear(cin, cout, vs)?;
                    let map = Tensor::randn(0f32, 1., (b, cin, side, side), &dev)?;
                    let tok = Tensor::randn(0f32, 1., (b, tokens, cin), &dev)?;
                    for (name, which) in [("candle in", 0), ("zipp in", 1), ("candle out", 2), ("zipp out", 3)] {
                        let r = time(reps, || {
                            compute(&mut || {
                                let y = match which {
                                    0 => map
                                        .permute((0, 2, 3, 1))
                                        .and_then(|t| t.reshape((b, tokens, cin)))
                                        .and_then(|t| candle.forward(&t)),
                                    1 => zipp.forward_from_map(&map),
                                    2 => candle
                                        .forward(&tok)
                                        .and_then(|t| t.reshape((b, side, side, cout)))
                                        .and_then(|t| t.permute((0, 3, 1, 2)))
                                        .and_then(|t| t.contiguous())
                                        .and_then(|t| t + &map),
                                    _ => zipp.forward_to_map(&tok, &map),
                                };
                                drop(y.unwrap())
                            })
                        });
                        println!(
                            "{{\"impl\":\"{name}\",\"part\":\"map linear {b}x{cin}x{side}x{side}\",\"median_s\":{:.5},\"min_s\":{:.5}}}",
                            r.0, r.1
                        );
                    }
                }
                let vs = vb.pp(format!("lin{tokens}_{cin}_{cout}"));
                let candle = candle_nn::linear(cin, cout, vs.clone())?;
                let zipp = zipp_diffusion::layers::linear(cin, cout, vs)?;
                let x = Tensor::randn(0f32, 1., (b, tokens, cin), &dev)?;
                let res = Tensor::randn(0f32, 1., (b, tokens, cout), &dev)?;
                let flop = 2.0 * (b * tokens * cin * cout) as f64;
                for (name, which) in [("candle", 0), ("zipp", 1), ("candle+residual", 2), ("zipp+residual", 3)] {
                    let r = time(reps, || {
                        compute(&mut || {
                            let y = match which {
                                0 => candle.forward(&x),
                                1 => zipp.forward(&x),
                                2 => candle.forward(&x).and_then(|y| y + &res),
                                _ => zipp.forward_residual(&x, &res),
                            };
                            drop(y.unwrap())
                        })
                    });
                    println!(
                        "{{\"impl\":\"{name}\",\"part\":\"linear {b}x{tokens}x{cin}->{cout}\",\"median_s\":{:.5},\"min_s\":{:.5},\"gflops\":{:.1}}}",
                        r.0,
                        r.1,
                        flop / r.0 / 1e9
                    );
                }
            }
        }
        "unet-parts" => {
            // One ResNet block and one spatial transformer at each SD 2.1 level (`--batch`),
            // and how many of each a UNet step runs: where a step's time goes.
            let b: usize = arg("--batch", "1").parse().unwrap();
            let temb = Tensor::randn(0f32, 1., (b, 1280), &dev)?;
            let ctx = Tensor::randn(0f32, 1., (b, 77, unet_cfg.cross_attention_dim), &dev)?;
            for (i, (width, heads, side)) in
                [(320, 5, lat), (640, 10, lat / 2), (1280, 20, lat / 4)].into_iter().enumerate()
            {
                let cfg = zipp_diffusion::layers::ResnetConfig {
                    cin: width,
                    cout: width,
                    temb: Some(1280),
                    groups: 32,
                    eps: 1e-5,
                    output_scale_factor: 1.0,
                };
                let resnet = zipp_diffusion::layers::ResnetBlock::new(vb.pp(format!("r{i}")), cfg)?;
                let tcfg = zipp_diffusion::attention::TransformerConfig {
                    channels: width,
                    heads,
                    depth: 1,
                    groups: 32,
                    context_dim: unet_cfg.cross_attention_dim,
                    linear_projection: unet_cfg.use_linear_projection,
                    slice: None,
                };
                let tr = zipp_diffusion::attention::Transformer2D::new(vb.pp(format!("t{i}")), tcfg)?;
                let x = Tensor::randn(0f32, 1., (b, width, side, side), &dev)?;
                let r = time(reps, || compute(&mut || drop(resnet.forward(&x, Some(&temb)).unwrap())));
                println!("{{\"part\":\"resnet {width} at {side}x{side}\",\"per_step\":{},\"median_s\":{:.4},\"min_s\":{:.4}}}", if i < 2 { 5 } else { 7 }, r.0, r.1);
                let r = time(reps, || compute(&mut || drop(tr.forward(&x, &ctx).unwrap())));
                println!("{{\"part\":\"transformer {width} at {side}x{side}\",\"per_step\":5,\"median_s\":{:.4},\"min_s\":{:.4}}}", r.0, r.1);
            }
        }
        other => panic!("unknown --part {other}"),
    }
    Ok(())
}
