//! [`Models`]: a registry of the models zipp uses, keyed by kind, each loaded once on first
//! use and shared.
//!
//! A model kind is a type implementing [`ModelKind`] (its stable name, the type it loads, how
//! it loads from the registry's root) plus one entry in [`KINDS`] (so it can be named from
//! JSON, C or Python and listed). Adding a backend's model — an LLM, a UNet, CLIP — is that
//! and nothing else here.

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use zipp_core::embed::{CpuKernel, Embedder, MiniLm, MiniLmOptions};
use zipp_core::error::{Error, Result};
use zipp_core::models::{default_models_dir, ModelSource, CLIP_BPE_FILE, MINILM_DIR, PROVISION_HINT};
use zipp_core::tokenize::{ClipTokenizer, TokenCounter};

/// A kind of model [`Models`] can load and share.
pub trait ModelKind: 'static {
    /// Stable name (`"minilm"`), used in [`Models::loaded`], [`Models::load`] and by the
    /// bindings.
    const NAME: &'static str;
    /// What is loaded and shared.
    type Model: Send + Sync + 'static;
    /// Loads the model from `models` (its root, its options). Called once per registry.
    fn load(models: &Models) -> Result<Self::Model>;
}

/// all-MiniLM-L6-v2, the sentence embedder of retrieval and scoring (folder
/// [`MINILM_DIR`] under the root).
pub struct MiniLmKind;

impl ModelKind for MiniLmKind {
    const NAME: &'static str = "minilm";
    type Model = MiniLm;
    fn load(models: &Models) -> Result<MiniLm> {
        MiniLm::load_with(&ModelSource::Dir(models.root.join(MINILM_DIR)), models.minilm_options.clone())
    }
}

/// The CLIP BPE vocabulary that counts prompt tokens (file [`CLIP_BPE_FILE`] under the root).
pub struct ClipBpeKind;

impl ModelKind for ClipBpeKind {
    const NAME: &'static str = "clip_bpe";
    type Model = ClipTokenizer;
    fn load(models: &Models) -> Result<ClipTokenizer> {
        ClipTokenizer::from_file(models.root.join(CLIP_BPE_FILE))
    }
}

/// SmolLM2-135M-Instruct Q4_1, the embedded default language model (the ZIPP rewriter's),
/// file [`zipp_lm::gguf::SMOLLM2_FILE`] under the root; its dot-product kernel is the
/// registry's `kernel` option (the one MiniLM's small batches use).
pub struct SmolLm2Kind;

impl ModelKind for SmolLm2Kind {
    const NAME: &'static str = "smollm2";
    type Model = zipp_lm::GgufModel;
    fn load(models: &Models) -> Result<zipp_lm::GgufModel> {
        zipp_lm::GgufModel::load_with(models.root.join(zipp_lm::gguf::SMOLLM2_FILE), models.minilm_options.kernel)
    }
}

/// A registered kind, by name: what [`Models::load`] and [`Models::loaded`] go through.
pub struct KindEntry {
    pub name: &'static str,
    /// What the model is for (one line, for listings).
    pub description: &'static str,
    load: fn(&Models) -> Result<()>,
}

/// Every kind this build can load, in load order.
pub const KINDS: &[KindEntry] = &[
    KindEntry {
        name: ClipBpeKind::NAME,
        description: "CLIP BPE vocabulary: counts prompt tokens for the text encoder's budget",
        load: |m| m.get::<ClipBpeKind>().map(drop),
    },
    KindEntry {
        name: MiniLmKind::NAME,
        description: "all-MiniLM-L6-v2 sentence embedder: retrieval and VPTT scoring",
        load: |m| m.get::<MiniLmKind>().map(drop),
    },
    KindEntry {
        name: SmolLm2Kind::NAME,
        description: "SmolLM2-135M-Instruct (GGUF, Q4_1): the language model of the ZIPP rewriter",
        load: |m| m.get::<SmolLm2Kind>().map(drop),
    },
];

type Shared = Arc<dyn Any + Send + Sync>;

/// How the registry's models run, as data (JSON in C and for Python's keyword arguments):
/// `{"max_tokens": 256, "batch_size": 64, "force_candle": false, "kernel": "auto"}`, every
/// field optional. Checked when given, before any model loads (the limits that depend on the
/// model file, such as `max_tokens` against its position table, when it loads).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsOptions {
    /// MiniLM tokens per text including `[CLS]`/`[SEP]` (longer texts are truncated).
    pub max_tokens: usize,
    /// MiniLM texts per forward pass.
    pub batch_size: usize,
    /// Run candle's generic `BertModel` instead of the packed CPU encoder (slower; for
    /// comparisons).
    pub force_candle: bool,
    /// The CPU kernel of MiniLM's small batches and of the GGUF language model's dot
    /// products: `"auto"`, `"portable"` or `"avx2"`.
    pub kernel: KernelName,
}

/// [`CpuKernel`] by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelName {
    #[default]
    Auto,
    Portable,
    Avx2,
}

impl From<KernelName> for CpuKernel {
    fn from(k: KernelName) -> CpuKernel {
        match k {
            KernelName::Auto => CpuKernel::Auto,
            KernelName::Portable => CpuKernel::Portable,
            KernelName::Avx2 => CpuKernel::Avx2,
        }
    }
}

impl Default for ModelsOptions {
    fn default() -> Self {
        let d = MiniLmOptions::default();
        ModelsOptions {
            max_tokens: d.max_tokens,
            batch_size: d.batch_size,
            force_candle: d.force_candle,
            kernel: KernelName::Auto,
        }
    }
}

impl ModelsOptions {
    /// Parses options (located errors) and checks them.
    pub fn from_json(json: &str) -> Result<ModelsOptions> {
        let options: ModelsOptions = zipp_core::json::from_str(json, "models options")?;
        options.validate()?;
        Ok(options)
    }

    /// Checks what can be checked without the model files.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::InvalidInput("batch_size must be at least 1".into()));
        }
        if self.max_tokens < 2 {
            return Err(Error::InvalidInput(format!(
                "max_tokens {} leaves no room for text (it counts [CLS] and [SEP])",
                self.max_tokens
            )));
        }
        Ok(())
    }

    fn minilm(&self) -> MiniLmOptions {
        let kernel = self.kernel.into();
        MiniLmOptions {
            max_tokens: self.max_tokens,
            batch_size: self.batch_size,
            force_candle: self.force_candle,
            kernel,
            ..MiniLmOptions::default()
        }
    }
}

/// The models personalizers and evaluations need, found under one root folder laid out as
/// `scripts/provision-models.sh` leaves it.
///
/// Nothing is read until first asked for; each kind then loads once, even when many threads
/// ask at the same time (a second thread waits for the first load of *that* kind only), and
/// is shared (`Arc`) by everything built from this value. The bindings hand one `Models` to
/// many personalizers this way.
pub struct Models {
    root: PathBuf,
    explicit_root: bool,
    minilm_options: MiniLmOptions,
    /// One slot per kind name; the slot's own lock serialises that kind's loading.
    slots: Mutex<HashMap<&'static str, Arc<Mutex<Option<Shared>>>>>,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models").field("root", &self.root).field("loaded", &self.loaded()).finish()
    }
}

impl Default for Models {
    fn default() -> Self {
        Models::new()
    }
}

/// A poisoned lock only means another thread panicked while loading; the slot is still
/// either empty or a fully loaded model.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Models {
    /// The provisioned defaults in [`default_models_dir`] (`$ZIPP_MODELS_DIR`, else
    /// `~/.cache/zipp/models`).
    pub fn new() -> Models {
        Models::build(default_models_dir(), false)
    }

    /// Models under `root` (laid out like [`default_models_dir`]).
    pub fn in_dir(root: impl Into<PathBuf>) -> Models {
        Models::build(root.into(), true)
    }

    /// `root` when given, else the defaults: the one "folder or default" rule of every
    /// binding.
    pub fn at(root: Option<impl Into<PathBuf>>) -> Models {
        match root {
            Some(r) => Models::in_dir(r),
            None => Models::new(),
        }
    }

    fn build(root: PathBuf, explicit_root: bool) -> Models {
        Models { root, explicit_root, minilm_options: MiniLmOptions::default(), slots: Mutex::new(HashMap::new()) }
    }

    /// The registry's options (validated), e.g. from a binding. Only before first use.
    pub fn with_options(self, options: &ModelsOptions) -> Result<Models> {
        options.validate()?;
        Ok(self.with_minilm_options(options.minilm()))
    }

    /// Options for MiniLM (device, batch size, token limit, kernel). Only before first use.
    pub fn with_minilm_options(mut self, options: MiniLmOptions) -> Models {
        self.minilm_options = options;
        self
    }

    /// The root folder models are read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The model of kind `K`, loaded on first call and shared afterwards.
    pub fn get<K: ModelKind>(&self) -> Result<Arc<K::Model>> {
        let slot = lock(&self.slots).entry(K::NAME).or_default().clone();
        let mut slot = lock(&slot);
        if let Some(model) = slot.as_ref() {
            return downcast::<K>(model.clone());
        }
        let model: Arc<K::Model> = Arc::new(K::load(self).map_err(|e| self.hinted(e))?);
        *slot = Some(model.clone());
        Ok(model)
    }

    /// Loads the kind called `name` now (so the first use does not pay for it, and a missing
    /// file is reported up front). An unknown name is [`Error::InvalidInput`] listing the
    /// kinds.
    pub fn load(&self, name: &str) -> Result<()> {
        match KINDS.iter().find(|k| k.name == name) {
            Some(kind) => (kind.load)(self),
            None => Err(Error::InvalidInput(format!(
                "unknown model kind `{name}` (known: {})",
                KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Loads every registered kind now.
    pub fn load_all(&self) -> Result<()> {
        KINDS.iter().try_for_each(|k| (k.load)(self))
    }

    /// Whether the kind called `name` is loaded.
    pub fn is_loaded(&self, name: &str) -> bool {
        let slot = lock(&self.slots).get(name).cloned();
        slot.is_some_and(|s| lock(&s).is_some())
    }

    /// The names of the loaded kinds, in [`KINDS`] order.
    pub fn loaded(&self) -> Vec<&'static str> {
        KINDS.iter().map(|k| k.name).filter(|n| self.is_loaded(n)).collect()
    }

    /// The MiniLM sentence embedder.
    pub fn minilm(&self) -> Result<Arc<MiniLm>> {
        self.get::<MiniLmKind>()
    }

    /// [`Models::minilm`] as a trait object.
    pub fn embedder(&self) -> Result<Arc<dyn Embedder>> {
        Ok(self.minilm()?)
    }

    /// The CLIP BPE tokenizer that counts prompt tokens.
    pub fn clip(&self) -> Result<Arc<ClipTokenizer>> {
        self.get::<ClipBpeKind>()
    }

    /// The embedded default language model (SmolLM2-135M-Instruct), as a trait object.
    pub fn language_model(&self) -> Result<Arc<dyn zipp_core::lm::LanguageModel>> {
        Ok(self.get::<SmolLm2Kind>()?)
    }

    /// [`Models::clip`] as a trait object.
    pub fn token_counter(&self) -> Result<Arc<dyn TokenCounter>> {
        Ok(self.clip()?)
    }

    /// A missing model says how to fill this root: the provisioning command, pointed at
    /// the root when it was given explicitly.
    fn hinted(&self, e: Error) -> Error {
        match e {
            Error::ModelNotFound { model, path, .. } => Error::ModelNotFound {
                model,
                path,
                hint: if self.explicit_root {
                    format!(
                        "fill that folder with `ZIPP_MODELS_DIR={} bash scripts/provision-models.sh`",
                        self.root.display()
                    )
                } else {
                    PROVISION_HINT.into()
                },
            },
            e => e,
        }
    }
}

fn downcast<K: ModelKind>(model: Shared) -> Result<Arc<K::Model>> {
    model.downcast::<K::Model>().map_err(|_| {
        // Two kinds registered under one name with different model types: a bug in a kind's
        // registration, not in the input.
        Error::Internal(format!("model kind `{}` is registered twice with different types", K::NAME))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_validate_and_reach_minilm() {
        let o = ModelsOptions::from_json(r#"{"force_candle": true, "kernel": "portable", "batch_size": 8}"#).unwrap();
        let m = o.minilm();
        assert!(m.force_candle && m.kernel == CpuKernel::Portable && m.batch_size == 8 && m.max_tokens == 256);
        assert_eq!(ModelsOptions::from_json("{}").unwrap(), ModelsOptions::default());
        let e = ModelsOptions::from_json(r#"{"force_candel": true}"#).unwrap_err();
        assert_eq!(e.kind(), "schema");
        assert!(e.to_string().contains("force_candel"), "{e}");
        assert_eq!(ModelsOptions::from_json(r#"{"kernel": "sse"}"#).unwrap_err().kind(), "schema");
        assert_eq!(ModelsOptions::from_json(r#"{"batch_size": 0}"#).unwrap_err().kind(), "invalid_input");
        assert_eq!(ModelsOptions::from_json(r#"{"max_tokens": 1}"#).unwrap_err().kind(), "invalid_input");
    }

    #[test]
    fn missing_root_names_that_root_in_the_hint() {
        let root = std::env::temp_dir().join(format!("zipp-models-missing-{}", std::process::id()));
        let models = Models::in_dir(&root);
        for err in [models.minilm().err().unwrap(), models.clip().err().unwrap()] {
            assert_eq!(err.kind(), "model_not_found", "{err}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("ZIPP_MODELS_DIR={}", root.display())), "{msg}");
        }
        assert!(models.loaded().is_empty());
        assert_eq!(models.load("minilm").unwrap_err().kind(), "model_not_found");
        let e = models.load("unet").unwrap_err();
        assert_eq!(e.kind(), "invalid_input");
        assert!(e.to_string().contains("clip_bpe, minilm, smollm2"), "{e}");
    }

    /// A kind that counts its loads: shows the registry loads once under contention and
    /// that a new kind needs nothing but its `ModelKind` impl.
    struct Counting;
    static LOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    impl ModelKind for Counting {
        const NAME: &'static str = "counting";
        type Model = String;
        fn load(models: &Models) -> Result<String> {
            LOADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(models.root().display().to_string())
        }
    }

    #[test]
    fn a_kind_loads_once_under_concurrent_first_use_and_is_shared() {
        let models = Models::in_dir("/somewhere");
        let got: Vec<Arc<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| models.get::<Counting>().unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(LOADS.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(got.iter().all(|m| Arc::ptr_eq(m, &got[0]) && m.as_str() == "/somewhere"));
        assert!(models.is_loaded("counting"));
        // Not a registered kind, so not listed by name.
        assert!(models.loaded().is_empty());
    }
}
