//! Single-file checkpoints: the original (CompVis / Stability "LDM") layout → diffusers
//! names.
//!
//! A `.safetensors` checkpoint as most users have it holds the UNet under
//! `model.diffusion_model.`, the VAE under `first_stage_model.` and the text encoder under
//! `cond_stage_model.` (OpenAI CLIP in transformers' naming for SD 1.x, OpenCLIP's own for
//! SD 2.x); SDXL keeps its two under `conditioner.embedders.0.` (CLIP ViT-L) and
//! `conditioner.embedders.1.` (OpenCLIP bigG, with the `text_projection` its pooled output
//! needs). [`unet_table`], [`vae_table`] and [`text_table`] rename those tensors to the names
//! the diffusers layout uses, so one set of model code loads both layouts. The mapping is
//! zipp's own, from the two architectures' module structure; the test fixtures were made by
//! an independent inverse mapping and checked with diffusers' own single-file loader
//! (`benches/reference/diffusion_reference.py`).

use std::collections::HashMap;

use crate::weights::Source;

pub const UNET_PREFIX: &str = "model.diffusion_model.";
pub const VAE_PREFIX: &str = "first_stage_model.";
/// SD 1.x / 2.x's one text encoder.
pub const TEXT_PREFIX: &str = "cond_stage_model.";
/// SDXL's two: CLIP ViT-L (`…0.transformer.`), then OpenCLIP bigG (`…1.model.`).
pub const XL_TEXT_PREFIXES: [&str; 2] = ["conditioner.embedders.0.", "conditioner.embedders.1."];

/// Which text encoder layout a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextLayout {
    /// `<prefix>transformer.…` (transformers' CLIPTextModel: SD 1.x, SDXL's first encoder).
    OpenAi,
    /// `<prefix>model.…` (OpenCLIP: SD 2.x, SDXL's second encoder).
    OpenClip,
}

/// The layout of the text encoder under `prefix` (`cond_stage_model.`,
/// `conditioner.embedders.N.`), if the checkpoint has one there.
pub fn text_layout(names: &[String], prefix: &str) -> Option<TextLayout> {
    let under = |tail: &str| names.iter().any(|n| n.strip_prefix(prefix).is_some_and(|r| r.starts_with(tail)));
    if under("transformer.") {
        Some(TextLayout::OpenAi)
    } else if under("model.") {
        Some(TextLayout::OpenClip)
    } else {
        None
    }
}

/// Whether the checkpoint is SDXL-shaped (its text encoders under `conditioner.embedders.`).
pub fn is_xl(names: &[String]) -> bool {
    names.iter().any(|n| n.starts_with("conditioner.embedders."))
}

fn resnet_part(rest: &str) -> String {
    const MAP: [(&str, &str); 6] = [
        ("in_layers.0.", "norm1."),
        ("in_layers.2.", "conv1."),
        ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."),
        ("out_layers.3.", "conv2."),
        ("skip_connection.", "conv_shortcut."),
    ];
    for (from, to) in MAP {
        if let Some(tail) = rest.strip_prefix(from) {
            return format!("{to}{tail}");
        }
    }
    rest.to_string()
}

/// Splits `"12.1.rest"` into `(12, 1, "rest")`.
fn two_indices(s: &str) -> Option<(usize, usize, &str)> {
    let (a, s) = s.split_once('.')?;
    let (b, rest) = s.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?, rest))
}

/// Whether LDM sub-module `prefix` (e.g. `output_blocks.2.1.`) is an attention block.
fn is_attention(names: &[String], prefix: &str) -> bool {
    names.iter().any(|n| n.starts_with(prefix) && n[prefix.len()..].starts_with("transformer_blocks."))
}

/// The UNet's tensors: diffusers name → LDM name. `layers_per_block` comes from the
/// configuration the checkpoint is loaded with.
pub fn unet_table(names: &[String], layers_per_block: usize) -> HashMap<String, Source> {
    let per = layers_per_block + 1;
    let unet: Vec<String> = names.iter().filter_map(|n| n.strip_prefix(UNET_PREFIX)).map(str::to_string).collect();
    let mut table = HashMap::new();
    for key in &unet {
        let mapped = if let Some(r) = key.strip_prefix("time_embed.0.") {
            Some(format!("time_embedding.linear_1.{r}"))
        } else if let Some(r) = key.strip_prefix("time_embed.2.") {
            Some(format!("time_embedding.linear_2.{r}"))
        } else if let Some(r) = key.strip_prefix("label_emb.0.0.") {
            Some(format!("add_embedding.linear_1.{r}"))
        } else if let Some(r) = key.strip_prefix("label_emb.0.2.") {
            Some(format!("add_embedding.linear_2.{r}"))
        } else if let Some(r) = key.strip_prefix("input_blocks.0.0.") {
            Some(format!("conv_in.{r}"))
        } else if let Some(r) = key.strip_prefix("out.0.") {
            Some(format!("conv_norm_out.{r}"))
        } else if let Some(r) = key.strip_prefix("out.2.") {
            Some(format!("conv_out.{r}"))
        } else if let Some(r) = key.strip_prefix("input_blocks.") {
            two_indices(r).map(|(i, j, rest)| {
                let (block, layer) = ((i - 1) / per, (i - 1) % per);
                if layer == layers_per_block {
                    // The downsampler: `input_blocks.i.0.op.*`.
                    format!("down_blocks.{block}.downsamplers.0.conv.{}", rest.trim_start_matches("op."))
                } else if j == 0 {
                    format!("down_blocks.{block}.resnets.{layer}.{}", resnet_part(rest))
                } else {
                    format!("down_blocks.{block}.attentions.{layer}.{rest}")
                }
            })
        } else if let Some(r) = key.strip_prefix("middle_block.") {
            r.split_once('.').and_then(|(j, rest)| match j {
                "0" => Some(format!("mid_block.resnets.0.{}", resnet_part(rest))),
                "1" => Some(format!("mid_block.attentions.0.{rest}")),
                "2" => Some(format!("mid_block.resnets.1.{}", resnet_part(rest))),
                _ => None,
            })
        } else if let Some(r) = key.strip_prefix("output_blocks.") {
            two_indices(r).map(|(i, j, rest)| {
                let (block, layer) = (i / per, i % per);
                let prefix = format!("{UNET_PREFIX}output_blocks.{i}.{j}.");
                if j == 0 {
                    format!("up_blocks.{block}.resnets.{layer}.{}", resnet_part(rest))
                } else if is_attention(names, &prefix) {
                    format!("up_blocks.{block}.attentions.{layer}.{rest}")
                } else {
                    // The upsampler: `output_blocks.i.{1|2}.conv.*`.
                    format!("up_blocks.{block}.upsamplers.0.{rest}")
                }
            })
        } else {
            None
        };
        if let Some(m) = mapped {
            table.insert(m, Source::Name(format!("{UNET_PREFIX}{key}")));
        }
    }
    table
}

fn vae_resnet(rest: &str) -> String {
    match rest.strip_prefix("nin_shortcut.") {
        Some(t) => format!("conv_shortcut.{t}"),
        None => rest.to_string(),
    }
}

fn vae_attention(rest: &str) -> Option<String> {
    let (part, tail) = rest.split_once('.')?;
    let to = match part {
        "norm" => "group_norm",
        "q" => "to_q",
        "k" => "to_k",
        "v" => "to_v",
        "proj_out" => "to_out.0",
        _ => return None,
    };
    Some(format!("{to}.{tail}"))
}

/// The VAE's tensors: diffusers name → LDM name. `n_blocks` is the number of resolutions.
pub fn vae_table(names: &[String], n_blocks: usize) -> HashMap<String, Source> {
    let mut table = HashMap::new();
    for full in names {
        let Some(key) = full.strip_prefix(VAE_PREFIX) else { continue };
        let Some((side, r)) = key.split_once('.') else {
            continue;
        };
        let mapped = match side {
            "quant_conv" | "post_quant_conv" => Some(key.to_string()),
            "encoder" | "decoder" => {
                let inner = if let Some(t) = r.strip_prefix("norm_out.") {
                    Some(format!("conv_norm_out.{t}"))
                } else if r.starts_with("conv_in.") || r.starts_with("conv_out.") {
                    Some(r.to_string())
                } else if let Some(t) = r.strip_prefix("mid.block_1.") {
                    Some(format!("mid_block.resnets.0.{}", vae_resnet(t)))
                } else if let Some(t) = r.strip_prefix("mid.block_2.") {
                    Some(format!("mid_block.resnets.1.{}", vae_resnet(t)))
                } else if let Some(t) = r.strip_prefix("mid.attn_1.") {
                    vae_attention(t).map(|a| format!("mid_block.attentions.0.{a}"))
                } else if let Some(t) = r.strip_prefix("down.") {
                    t.split_once('.').and_then(|(i, t)| {
                        if let Some(u) = t.strip_prefix("downsample.") {
                            Some(format!("down_blocks.{i}.downsamplers.0.{u}"))
                        } else {
                            let (j, u) = t.strip_prefix("block.")?.split_once('.')?;
                            Some(format!("down_blocks.{i}.resnets.{j}.{}", vae_resnet(u)))
                        }
                    })
                } else if let Some(t) = r.strip_prefix("up.") {
                    t.split_once('.').and_then(|(i, t)| {
                        // LDM counts decoder levels from the lowest resolution up; diffusers
                        // from the latent side down.
                        let i: usize = i.parse().ok()?;
                        let d = n_blocks.checked_sub(1 + i)?;
                        if let Some(u) = t.strip_prefix("upsample.") {
                            Some(format!("up_blocks.{d}.upsamplers.0.{u}"))
                        } else {
                            let (j, u) = t.strip_prefix("block.")?.split_once('.')?;
                            Some(format!("up_blocks.{d}.resnets.{j}.{}", vae_resnet(u)))
                        }
                    })
                } else {
                    None
                };
                inner.map(|i| format!("{side}.{i}"))
            }
            _ => None,
        };
        if let Some(m) = mapped {
            table.insert(m, Source::Name(full.clone()));
        }
    }
    table
}

/// The text encoder's tensors under `prefix`: transformers name → checkpoint name. For
/// OpenCLIP layouts `hidden` is the width, to split the fused attention projection; SD 2.x
/// checkpoints hold one layer more than the configuration uses (it conditions on the
/// penultimate), which is simply never read.
pub fn text_table(names: &[String], prefix: &str, layout: TextLayout, hidden: usize) -> HashMap<String, Source> {
    let mut table = HashMap::new();
    match layout {
        TextLayout::OpenAi => {
            let p = format!("{prefix}transformer.");
            for full in names {
                let Some(key) = full.strip_prefix(&p) else { continue };
                let key = if key.starts_with("text_model.") || key.starts_with("text_projection.") {
                    key.to_string()
                } else {
                    format!("text_model.{key}")
                };
                table.insert(key, Source::Name(full.clone()));
            }
        }
        TextLayout::OpenClip => {
            let p = format!("{prefix}model.");
            for full in names {
                let Some(key) = full.strip_prefix(&p) else { continue };
                let src = Source::Name(full.clone());
                match key {
                    "token_embedding.weight" => {
                        table.insert("text_model.embeddings.token_embedding.weight".into(), src);
                    }
                    "positional_embedding" => {
                        table.insert("text_model.embeddings.position_embedding.weight".into(), src);
                    }
                    // Stored as P of `x @ P` ([hidden, proj]); read by SDXL's pooled output only.
                    "text_projection" => {
                        table.insert("text_projection.weight".into(), Source::Transposed(full.clone()));
                    }
                    _ => {
                        if let Some(t) = key.strip_prefix("ln_final.") {
                            table.insert(format!("text_model.final_layer_norm.{t}"), src);
                        } else if let Some(t) = key.strip_prefix("transformer.resblocks.") {
                            let Some((i, t)) = t.split_once('.') else { continue };
                            let base = format!("text_model.encoder.layers.{i}.");
                            let simple = [
                                ("ln_1.", "layer_norm1."),
                                ("ln_2.", "layer_norm2."),
                                ("attn.out_proj.", "self_attn.out_proj."),
                                ("mlp.c_fc.", "mlp.fc1."),
                                ("mlp.c_proj.", "mlp.fc2."),
                            ];
                            if let Some((to, tail)) =
                                simple.iter().find_map(|(f, to)| t.strip_prefix(f).map(|tail| (to, tail)))
                            {
                                table.insert(format!("{base}{to}{tail}"), src);
                            } else if let Some(kind) = t.strip_prefix("attn.in_proj_") {
                                for (k, proj) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                                    table.insert(
                                        format!("{base}self_attn.{proj}.{kind}"),
                                        Source::Rows { name: full.clone(), start: k * hidden, len: hidden },
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    table
}

/// Whether the names look like a single-file Stable Diffusion checkpoint.
pub fn is_checkpoint(names: &[String]) -> bool {
    names.iter().any(|n| n.starts_with(UNET_PREFIX))
}
