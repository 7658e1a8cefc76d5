//! The GGUF backend on the real SmolLM2-135M-Instruct Q4_1 (provisioned by
//! scripts/provision-models.sh): the LanguageModel contract (streaming, seeds, stop
//! sequences, cancellation, max_tokens) and clear errors for bad input and bad files.
//! Parity with llama.cpp: smollm2_parity.rs.

use std::sync::{Arc, Mutex, OnceLock};

use zipp_core::error::ErrorKind;
use zipp_core::lm::{Cancel, Finish, LanguageModel, Message, Sampling};
use zipp_lm::GgufModel;

fn model() -> &'static GgufModel {
    static M: OnceLock<GgufModel> = OnceLock::new();
    M.get_or_init(|| GgufModel::load_default().expect("run scripts/provision-models.sh"))
}

#[test]
fn streaming_seeds_stops_and_cancel() {
    let m = model();
    let msgs = [Message::user("Write one sentence about the sea.")];
    let sampled = Sampling { temperature: 0.8, top_p: Some(0.9), seed: 7, max_tokens: 16, ..Sampling::default() };
    let mut pieces = Vec::new();
    let a = m.generate(&msgs, &sampled, &Cancel::new(), &mut |p| pieces.push(p.to_string())).unwrap();
    assert_eq!(pieces.concat(), a.text);
    let b = m.generate(&msgs, &sampled, &Cancel::new(), &mut |_| {}).unwrap();
    assert_eq!(a.text, b.text, "same seed, same text");
    // A stop sequence taken from the greedy answer ends the text before it.
    let greedy = m.generate(&msgs, &Sampling::greedy(16), &Cancel::new(), &mut |_| {}).unwrap();
    let word = greedy.text.split_whitespace().nth(2).unwrap().to_string();
    let stopped = m
        .generate(&msgs, &Sampling { stop: vec![word.clone()], ..Sampling::greedy(16) }, &Cancel::new(), &mut |_| {})
        .unwrap();
    assert_eq!(stopped.finish, Finish::StopSequence);
    assert_eq!(stopped.text, greedy.text[..greedy.text.find(&word).unwrap()]);
    // Cancelled from the callback after the first piece: the text is what was streamed.
    let cancel = Cancel::new();
    let seen = Arc::new(Mutex::new(String::new()));
    let (c, s) = (cancel.clone(), seen.clone());
    let out = m
        .generate(&msgs, &Sampling::greedy(16), &cancel, &mut move |p| {
            s.lock().unwrap().push_str(p);
            c.cancel();
        })
        .unwrap();
    assert_eq!(out.finish, Finish::Cancelled);
    assert_eq!(out.text, *seen.lock().unwrap());
    assert!(out.completion_tokens < 16);
    let capped = m.generate(&msgs, &Sampling::greedy(3), &Cancel::new(), &mut |_| {}).unwrap();
    assert_eq!((capped.finish, capped.completion_tokens), (Finish::MaxTokens, 3));
}

#[test]
fn bad_input_and_bad_files_are_clear_errors() {
    let m = model();
    let msgs = [Message::user("hi")];
    let e = m
        .generate(&msgs, &Sampling { top_k: Some(0), ..Sampling::default() }, &Cancel::new(), &mut |_| {})
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let huge = [Message::user("word ".repeat(m.context_len() + 16))];
    let e = m.generate(&huge, &Sampling::greedy(8), &Cancel::new(), &mut |_| {}).unwrap_err();
    assert!(e.kind() == ErrorKind::InvalidInput && e.to_string().contains("context"), "{e}");
    let dir = std::env::temp_dir().join(format!("zipp-lm-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(GgufModel::load(dir.join("missing.gguf")).unwrap_err().kind(), ErrorKind::ModelNotFound);
    let bytes = std::fs::read(zipp_core::models::default_models_dir().join(zipp_lm::gguf::SMOLLM2_FILE)).unwrap();
    for (name, data) in
        [("truncated.gguf", &bytes[..bytes.len() / 3]), ("garbage.gguf", &b"not a gguf file at all"[..])]
    {
        std::fs::write(dir.join(name), data).unwrap();
        let e = GgufModel::load(dir.join(name)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ModelInvalid, "{name}: {e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
