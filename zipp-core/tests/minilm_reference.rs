//! The real all-MiniLM-L6-v2 on candle agrees with sentence-transformers itself.
//!
//! `fixtures/minilm_reference.json` holds sentence-transformers' own vectors for 29 varied
//! texts (short, one-word, long past 256 tokens, unicode, stray whitespace …); its
//! `produced_by` field says exactly how (scripts/reference/minilm_reference.py,
//! sentence-transformers 6.2.0, torch 2.15.0, CPU fp32, max_seq_length 256).
//! Needs the provisioned model (`bash scripts/provision-models.sh`); fails, not skips,
//! without it.

use std::sync::{Arc, OnceLock};

use serde::Deserialize;
use zipp_core::embed::{CpuKernel, Embedder, MiniLm, MiniLmOptions};
use zipp_core::models::ModelSource;

#[derive(Deserialize)]
struct Fixture {
    model_sha256: String,
    max_seq_length: usize,
    dim: usize,
    sanity_cosine: f32,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    text: String,
    n_tokens: usize,
    embedding: Vec<f32>,
}

fn fixture() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/minilm_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Loaded once per test binary, shared by the tests.
fn model() -> Arc<MiniLm> {
    static M: OnceLock<Arc<MiniLm>> = OnceLock::new();
    M.get_or_init(|| Arc::new(MiniLm::load(&ModelSource::Default).unwrap_or_else(|e| panic!("{e}")))).clone()
}

/// The agreement the docs quote (README, BENCHMARKS, minilm.rs): every vector, every path.
/// Measured (f64 cosine, `cargo test -p zipp-core --test minilm_reference -- --nocapture`,
/// x86_64 with AVX2): worst 1 − cos = 6.7e-13 for the packed encoder with either kernel,
/// 1.05e-12 for candle's BertModel; the bound leaves room for other CPUs' summation orders.
const MIN_COSINE: f64 = 0.9999998;

fn load(options: MiniLmOptions) -> MiniLm {
    MiniLm::load_with(&ModelSource::Default, options).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_vector_matches_sentence_transformers() {
    check_against_fixture(&model(), "default");
}

/// The portable small-batch kernel (gemm's un-packed one: what aarch64 and x86 CPUs
/// without AVX2 run for every short query) agrees too, forced on whatever CPU this is.
#[test]
fn portable_kernel_matches_sentence_transformers() {
    check_against_fixture(&load(MiniLmOptions { kernel: CpuKernel::Portable, ..Default::default() }), "portable");
}

/// The AVX2 small-batch kernel agrees; on a CPU without AVX2 and FMA asking for it is an
/// error at load time, not undefined behaviour.
#[test]
fn avx2_kernel_matches_sentence_transformers_or_is_refused() {
    let options = MiniLmOptions { kernel: CpuKernel::Avx2, ..Default::default() };
    let avx2 =
        cfg!(target_arch = "x86_64") && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    match MiniLm::load_with(&ModelSource::Default, options) {
        Ok(m) => {
            assert!(avx2, "loaded an AVX2 kernel on a CPU without AVX2/FMA");
            check_against_fixture(&m, "avx2");
        }
        Err(e) => {
            assert!(!avx2, "{e}");
            assert!(matches!(e, zipp_core::Error::InvalidInput(_)), "{e}");
        }
    }
}

/// The kernel choice takes effect: the two kernels sum in a different order, so a short
/// text's vector differs in the last bits between them (and agrees to float precision).
#[test]
fn the_kernel_choice_changes_the_short_text_path() {
    if CpuKernel::Avx2.resolve().is_err() {
        return; // only one kernel exists on this CPU; the test above checks the refusal
    }
    let p = load(MiniLmOptions { kernel: CpuKernel::Portable, ..Default::default() });
    let a = load(MiniLmOptions { kernel: CpuKernel::Avx2, ..Default::default() });
    let text = "a lighthouse in fog";
    let (vp, va) = (p.embed_one(text).unwrap(), a.embed_one(text).unwrap());
    assert_ne!(vp, va, "both options ran the same kernel");
    assert!(cosine(&vp, &va) > 0.9999999, "{}", cosine(&vp, &va));
}

/// candle's generic `BertModel` (what GPU devices run) agrees too.
#[test]
fn candle_bert_path_matches_sentence_transformers() {
    check_against_fixture(&load(MiniLmOptions { force_candle: true, ..Default::default() }), "candle");
}

/// Cosine in f64 (the bound is within a few f32 ulps of 1).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let d = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
    d(a, b) / (d(a, a) * d(b, b)).sqrt()
}

fn check_against_fixture(m: &MiniLm, path: &str) {
    let fx = fixture();
    assert_eq!(fx.model_sha256, "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db");
    assert_eq!((m.dim(), m.options().max_tokens), (fx.dim, fx.max_seq_length));
    assert!(fx.items.len() >= 20);
    assert!(fx.items.iter().filter(|i| i.n_tokens > 256).count() >= 3, "fixture must cover truncation");
    let texts: Vec<&str> = fx.items.iter().map(|i| i.text.as_str()).collect();
    // One batched call (length-sorted chunks) and one call per text must both agree.
    let batched = m.embed(&texts).unwrap();
    let mut worst = [1.0f64; 2];
    for (r, item) in fx.items.iter().enumerate() {
        let single = m.embed_one(&item.text).unwrap();
        for (i, (name, v)) in [("batched", batched.row(r)), ("single", single.as_slice())].into_iter().enumerate() {
            let cos = cosine(v, &item.embedding);
            worst[i] = worst[i].min(cos);
            assert!(cos >= MIN_COSINE, "{path} {name} {:?}: cosine {cos:.9}", item.text);
            let norm = v.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "not unit length: {norm}");
        }
        // Token counts before truncation agree with the reference tokenizer; after
        // truncation never more than 256.
        let ids = m.token_ids(&item.text).unwrap();
        assert_eq!(ids.len(), item.n_tokens.min(256), "{:?}", item.text);
    }
    println!(
        "{path}: worst 1 − cosine vs sentence-transformers: batched {:.2e}, single {:.2e}",
        1.0 - worst[0],
        1.0 - worst[1]
    );
}

#[test]
fn sanity_pair_cosine() {
    let m = model();
    let e = m.embed(&["A dog runs on the beach.", "A puppy is running along the seashore."]).unwrap();
    let cos = cosine(e.row(0), e.row(1));
    assert!((cos - fixture().sanity_cosine as f64).abs() < 1e-4, "{cos}");
}

#[test]
fn shared_across_threads_gives_identical_vectors() {
    let m = model();
    let want = m.embed_one("a lighthouse in fog").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || m.embed_one("a lighthouse in fog").unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), want);
    }
    assert!(m.embed(&[]).unwrap().is_empty());
}

#[test]
fn corrupt_and_mismatched_files_are_reported() {
    use zipp_core::Error;
    let dir = zipp_core::models::default_models_dir().join(zipp_core::models::MINILM_DIR);
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (config, tokenizer, weights) = (read("config.json"), read("tokenizer.json"), read("model.safetensors"));
    let src = |c: &[u8], t: &[u8], w: &[u8]| {
        ModelSource::Bytes(vec![
            ("config".into(), c.to_vec()),
            ("tokenizer".into(), t.to_vec()),
            ("weights".into(), w.to_vec()),
        ])
    };
    // Truncated weights.
    let err = MiniLm::load(&src(&config, &tokenizer, &weights[..weights.len() / 2])).err().unwrap();
    assert!(matches!(err, Error::ModelInvalid { .. }), "{err}");
    assert!(err.to_string().contains("provision"), "{err}");
    // Garbage config.
    let err = MiniLm::load(&src(b"{not json", &tokenizer, &weights)).err().unwrap();
    assert!(matches!(err, Error::ModelInvalid { .. }), "{err}");
    // A config that does not match the weights (wrong hidden size).
    let mut cfg: serde_json::Value = serde_json::from_slice(&config).unwrap();
    cfg["hidden_size"] = 768.into();
    cfg["intermediate_size"] = 3072.into();
    let err = MiniLm::load(&src(cfg.to_string().as_bytes(), &tokenizer, &weights)).err().unwrap();
    assert!(matches!(err, Error::ModelInvalid { .. }), "{err}");
    // A config with a zero dimension.
    let mut cfg: serde_json::Value = serde_json::from_slice(&config).unwrap();
    cfg["type_vocab_size"] = 0.into();
    let err = MiniLm::load(&src(cfg.to_string().as_bytes(), &tokenizer, &weights)).err().unwrap();
    assert!(matches!(err, Error::ModelInvalid { .. }) && err.to_string().contains("type_vocab_size"), "{err}");
    // Corrupt tokenizer.
    let err = MiniLm::load(&src(&config, b"[]", &weights)).err().unwrap();
    assert!(matches!(err, Error::ModelInvalid { .. }), "{err}");
    // A directory without the model.
    let err = MiniLm::load(&ModelSource::Dir(std::env::temp_dir().join("zipp-no-model"))).err().unwrap();
    assert!(matches!(err, Error::ModelNotFound { .. }), "{err}");
}
