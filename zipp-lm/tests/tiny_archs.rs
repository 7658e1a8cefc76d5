//! The engine on tiny random-initialised llama, qwen2 and qwen3 models (written by
//! tests/common/tiny_gguf.rs, loaded through the real GGUF loader) against llama.cpp:
//! tests/fixtures/tiny_llama_cpp.json, produced by `benches/reference/tiny_gguf_reference.py`
//! (llama-cpp-python 0.3.36, f32 KV cache; its header has the commands). Both quantize the
//! activations to 8 bits the same way, so the logits agree to a few hundredths; the
//! kernels (AVX2 where present, and the portable one) are each checked.

#[path = "common/tiny_gguf.rs"]
mod tiny_gguf;

use serde::Deserialize;
use zipp_core::embed::CpuKernel;
use zipp_core::lm::LanguageModel;
use zipp_lm::GgufModel;

#[derive(Deserialize)]
struct Fixture {
    models: std::collections::BTreeMap<String, Model>,
}
#[derive(Deserialize)]
struct Model {
    sha256: String,
    runs: Vec<Run>,
    tokenize: Vec<Tokenized>,
}
#[derive(Deserialize)]
struct Tokenized {
    text: String,
    ids: Vec<u32>,
}
#[derive(Deserialize)]
struct Run {
    ids: Vec<u32>,
    logits: Vec<f32>,
    greedy: Vec<u32>,
}

fn sha256(path: &std::path::Path) -> String {
    // The same bytes as the file llama.cpp read: checked with the system's sha256sum.
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum runs");
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn tiny_llama_qwen2_and_qwen3_match_llama_cpp() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/tiny_llama_cpp.json")).unwrap();
    let dir = std::env::temp_dir().join(format!("zipp-tiny-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut kernels = vec![CpuKernel::Portable];
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        kernels.push(CpuKernel::Avx2);
    }
    let mut worst = 0f32;
    for arch in tiny_gguf::ARCHS {
        let path = tiny_gguf::write(arch, &dir);
        let want = &fixture.models[arch];
        assert_eq!(
            sha256(&path),
            want.sha256,
            "{arch}: the writer no longer writes the file the fixture was made from"
        );
        let m = GgufModel::load(&path).unwrap();
        for t in &want.tokenize {
            assert_eq!(m.encode(&t.text).unwrap(), t.ids, "{arch}: {:?}", t.text);
            assert_eq!(m.decode(&t.ids).unwrap(), t.text, "{arch}: round trip of {:?}", t.text);
        }
        for &kernel in &kernels {
            let m = GgufModel::load_with(&path, kernel).unwrap();
            assert!(m.id().contains(&format!("zipp-tiny-{arch}")), "{}", m.id());
            for run in &want.runs {
                let got = m.logits(&run.ids).unwrap();
                assert_eq!(got.len(), run.logits.len());
                let diff = got.iter().zip(&run.logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                let top = |v: &[f32]| v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
                println!("{arch} {kernel:?} {:?}: max |logit diff| {diff:.4}", &run.ids[..3.min(run.ids.len())]);
                let scale = run.logits.iter().fold(0f32, |a, b| a.max(b.abs()));
                worst = worst.max(diff / scale);
                assert_eq!(top(&got), top(&run.logits), "{arch} {kernel:?}: top-1");
                let greedy = m.greedy_ids(&run.ids, 8).unwrap();
                // Greedy continuations may part at a near-tie; up to there they agree.
                let same = greedy.iter().zip(&run.greedy).take_while(|(a, b)| a == b).count();
                println!("  greedy: {same} of 8 identical");
                assert!(same >= 1, "{arch} {kernel:?}: {greedy:?} vs {:?}", run.greedy);
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    println!("worst max |logit diff| relative to the largest logit: {worst:.4}");
    assert!(worst < 0.03, "{worst}");
}
