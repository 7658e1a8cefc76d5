//! Tiny random-initialised chat models written as GGUF files, one per architecture the
//! engine runs (llama, qwen2, qwen3), for parity tests against llama.cpp: the weights come
//! from a fixed xorshift stream and candle's quantizers, so the same code writes the same
//! bytes every time. `zipp-lm/examples/tiny_gguf.rs` writes them for the reference script
//! (`benches/reference/tiny_gguf_reference.py`); the tests write them again into a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// The architectures, with the file name each is written under.
pub const ARCHS: [&str; 3] = ["llama", "qwen2", "qwen3"];

/// GPT-2's byte-to-character map (printable bytes stand for themselves, the others map to
/// U+0100 and up): the 256 base tokens of a byte-level BPE vocabulary.
fn byte_tokens() -> Vec<String> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars: Vec<u32> = printable.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    let mut by_byte: Vec<(u32, u32)> = printable.into_iter().zip(chars).collect();
    by_byte.sort();
    by_byte.into_iter().map(|(_, c)| char::from_u32(c).unwrap().to_string()).collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn tensor(&mut self, shape: &[usize], scale: f32, offset: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| offset + scale * self.next()).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }
}

/// Writes the tiny model of `arch` into `dir` and returns its path.
pub fn write(arch: &str, dir: &Path) -> PathBuf {
    let (hidden, heads, kv_heads, ffn, layers) = (64usize, 4usize, 2usize, 128usize, 2usize);
    // qwen3 has a head size of its own: 4 heads of 32 = 128 query values for 64 hidden.
    let head_dim = if arch == "qwen3" { 32 } else { hidden / heads };
    let (q_dim, kv) = (heads * head_dim, kv_heads * head_dim);
    let mut tokens = byte_tokens();
    let merges = ["Ġ t", "h e", "Ġt he", "i n", "a n", "e r", "Ġ a", "o n"];
    for m in merges {
        tokens.push(m.replace(' ', ""));
    }
    let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    let first_special = tokens.len() as u32;
    tokens.extend(specials.iter().map(|s| s.to_string()));
    let vocab = tokens.len();
    let mut types = vec![Value::I32(1); vocab];
    for t in types.iter_mut().skip(first_special as usize) {
        *t = Value::I32(3);
    }
    let pre = match arch {
        "llama" => "smollm",
        _ => "qwen2",
    };
    let key = |k: &str| format!("{arch}.{k}");
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String(format!("zipp-tiny-{arch}"))),
        (key("block_count"), Value::U32(layers as u32)),
        (key("context_length"), Value::U32(256)),
        (key("embedding_length"), Value::U32(hidden as u32)),
        (key("feed_forward_length"), Value::U32(ffn as u32)),
        (key("attention.head_count"), Value::U32(heads as u32)),
        (key("attention.head_count_kv"), Value::U32(kv_heads as u32)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
        (key("rope.freq_base"), Value::F32(10000.0)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens.into_iter().map(Value::String).collect())),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.merges".into(), Value::Array(merges.iter().map(|m| Value::String(m.to_string())).collect())),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(first_special)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(first_special + 2)),
    ];
    if arch == "qwen3" {
        md.push((key("attention.key_length"), Value::U32(head_dim as u32)));
        md.push((key("attention.value_length"), Value::U32(head_dim as u32)));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ arch.len() as u64 ^ ((arch.as_bytes()[arch.len() - 1] as u64) << 32));
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut add =
        |name: String, t: Tensor, dtype: GgmlDType| tensors.push((name, QTensor::quantize(&t, dtype).unwrap()));
    add("token_embd.weight".into(), rng.tensor(&[vocab, hidden], 1.0, 0.0), GgmlDType::Q8_0);
    add("output_norm.weight".into(), rng.tensor(&[hidden], 0.2, 1.0), GgmlDType::F32);
    for l in 0..layers {
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        let w = 0.25;
        add(n("attn_norm"), rng.tensor(&[hidden], 0.2, 1.0), GgmlDType::F32);
        add(n("ffn_norm"), rng.tensor(&[hidden], 0.2, 1.0), GgmlDType::F32);
        add(n("attn_q"), rng.tensor(&[q_dim, hidden], w, 0.0), GgmlDType::Q4_1);
        add(n("attn_k"), rng.tensor(&[kv, hidden], w, 0.0), GgmlDType::Q4_1);
        add(n("attn_v"), rng.tensor(&[kv, hidden], w, 0.0), GgmlDType::Q8_0);
        add(n("attn_output"), rng.tensor(&[hidden, q_dim], w, 0.0), GgmlDType::Q4_1);
        add(n("ffn_gate"), rng.tensor(&[ffn, hidden], w, 0.0), GgmlDType::Q4_1);
        add(n("ffn_up"), rng.tensor(&[ffn, hidden], w, 0.0), GgmlDType::Q4_1);
        add(n("ffn_down"), rng.tensor(&[hidden, ffn], w, 0.0), GgmlDType::Q8_0);
        if arch == "qwen2" {
            for (s, len) in [("attn_q", q_dim), ("attn_k", kv), ("attn_v", kv)] {
                add(format!("blk.{l}.{s}.bias"), rng.tensor(&[len], 0.5, 0.0), GgmlDType::F32);
            }
        }
        if arch == "qwen3" {
            add(n("attn_q_norm"), rng.tensor(&[head_dim], 0.2, 1.0), GgmlDType::F32);
            add(n("attn_k_norm"), rng.tensor(&[head_dim], 0.2, 1.0), GgmlDType::F32);
        }
    }
    // An untied output head for llama (the tied path is SmolLM2's).
    if arch == "llama" {
        add("output.weight".into(), rng.tensor(&[vocab, hidden], 1.0, 0.0), GgmlDType::Q8_0);
    }
    let path = dir.join(format!("tiny-{arch}.gguf"));
    let mut file = std::fs::File::create(&path).unwrap();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    candle_core::quantized::gguf_file::write(&mut file, &md_refs, &t_refs).unwrap();
    path
}
