//! Writes the tiny random-initialised llama, qwen2 and qwen3 GGUF files of the engine's
//! parity tests into a folder (for `benches/reference/tiny_gguf_reference.py`):
//! `target/release/examples/tiny_gguf DIR`.

#[path = "../tests/common/tiny_gguf.rs"]
mod tiny_gguf;

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: tiny_gguf DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    for arch in tiny_gguf::ARCHS {
        println!("{}", tiny_gguf::write(arch, &dir).display());
    }
}
