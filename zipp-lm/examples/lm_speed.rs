//! Prefill and decode speed of the GGUF backend on one prompt (the embedded default model):
//! `target/release/examples/lm_speed [REPS]`, built by scripts/test.sh's build (or
//! `cargo build --release -p zipp-lm --examples`). Threads: $ZIPP_NUM_THREADS. The llama.cpp
//! side of the comparison is benches/reference/llama_cpp_speed.py, same prompt.

use zipp_lm::GgufModel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let reps: usize = std::env::args().nth(1).map(|r| r.parse()).transpose()?.unwrap_or(3);
    let m = GgufModel::load_default()?;
    let prompt = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
                  <|im_start|>user\nWrite a long, detailed description of a quiet harbour at dawn, with boats, gulls and \
                  paper lanterns, for an image generator.<|im_end|>\n<|im_start|>assistant\n";
    let ids = m.encode(prompt)?;
    for _ in 0..reps {
        let t = std::time::Instant::now();
        m.logits(&ids)?;
        let prefill = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let out = m.greedy_ids(&ids, 64)?;
        let total = t.elapsed().as_secs_f64();
        // The greedy run prefills once more, then decodes: its decode time is the rest.
        let decode = total - prefill;
        println!(
            "prompt {} tokens: prefill {:.1} tok/s ({:.3} s); decode {} tokens {:.1} tok/s",
            ids.len(),
            ids.len() as f64 / prefill,
            prefill,
            out.len(),
            out.len() as f64 / decode
        );
    }
    Ok(())
}
