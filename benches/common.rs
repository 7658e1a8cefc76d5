//! Shared fixtures of the benchmarks: the real models, the example personas, and the
//! sentence lists the Python reference (`benches/reference/st_throughput.py`) embeds, so
//! both sides measure the same inputs.

use std::path::PathBuf;
use std::sync::Arc;

use zipp_core::embed::MiniLm;
use zipp_core::models::ModelSource;
use zipp_core::persona::JsonlReader;
use zipp_core::tokenize::ClipTokenizer;
use zipp_core::Persona;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("benches/ has a parent").to_path_buf()
}

pub fn minilm() -> Arc<MiniLm> {
    Arc::new(MiniLm::load(&ModelSource::Default).unwrap_or_else(|e| panic!("{e}")))
}

pub fn clip() -> Arc<ClipTokenizer> {
    Arc::new(ClipTokenizer::load_default().unwrap_or_else(|e| panic!("{e}")))
}

/// The example persona with `id`.
pub fn persona(id: &str) -> Persona {
    JsonlReader::open(root().join("examples/data/personas.jsonl"))
        .unwrap()
        .map(|p| p.unwrap())
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no persona {id}"))
}

/// `(sentences, single_query)` of `benches/data/st_sentences_{short,long}.json`.
pub fn sentences(kind: &str) -> (Vec<String>, String) {
    let path = root().join(format!("benches/data/st_sentences_{kind}.json"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let list = v["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    (list, v["single_query"].as_str().unwrap().to_string())
}
