//! [`Models`]: the default models, loaded once on first use and shared.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{default_models_dir, ModelSource, CLIP_BPE_FILE, MINILM_DIR, PROVISION_HINT};
use crate::embed::{Embedder, MiniLm, MiniLmOptions};
use crate::error::{Error, Result};
use crate::tokenize::{ClipTokenizer, TokenCounter};

/// The models a personalizer needs (MiniLM for retrieval, the CLIP BPE for token budgets),
/// found under one root folder laid out as `scripts/provision-models.sh` leaves it.
///
/// Nothing is read until first asked for; each model then loads once, even when many
/// threads ask at the same time, and is shared (`Arc`) by every personalizer built from
/// this value. The bindings hand one `Models` to many personalizers this way.
pub struct Models {
    root: PathBuf,
    explicit_root: bool,
    minilm_options: MiniLmOptions,
    minilm: Mutex<Option<Arc<MiniLm>>>,
    clip: Mutex<Option<Arc<ClipTokenizer>>>,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("root", &self.root)
            .field("minilm_loaded", &lock(&self.minilm).is_some())
            .field("clip_loaded", &lock(&self.clip).is_some())
            .finish()
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

    fn build(root: PathBuf, explicit_root: bool) -> Models {
        Models {
            root,
            explicit_root,
            minilm_options: MiniLmOptions::default(),
            minilm: Mutex::new(None),
            clip: Mutex::new(None),
        }
    }

    /// Options for MiniLM (device, batch size, token limit). Only before first use.
    pub fn with_minilm_options(mut self, options: MiniLmOptions) -> Models {
        self.minilm_options = options;
        self
    }

    /// The root folder models are read from.
    pub fn root(&self) -> &Path {
        &self.root
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

    /// The MiniLM sentence embedder (loaded on first call).
    pub fn minilm(&self) -> Result<Arc<MiniLm>> {
        let mut slot = lock(&self.minilm);
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let source = ModelSource::Dir(self.root.join(MINILM_DIR));
        let m = Arc::new(MiniLm::load_with(&source, self.minilm_options.clone()).map_err(|e| self.hinted(e))?);
        *slot = Some(m.clone());
        Ok(m)
    }

    /// [`Models::minilm`] as a trait object.
    pub fn embedder(&self) -> Result<Arc<dyn Embedder>> {
        Ok(self.minilm()?)
    }

    /// The CLIP BPE tokenizer that counts prompt tokens (loaded on first call).
    pub fn clip(&self) -> Result<Arc<ClipTokenizer>> {
        let mut slot = lock(&self.clip);
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(ClipTokenizer::from_file(self.root.join(CLIP_BPE_FILE)).map_err(|e| self.hinted(e))?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// [`Models::clip`] as a trait object.
    pub fn token_counter(&self) -> Result<Arc<dyn TokenCounter>> {
        Ok(self.clip()?)
    }

    /// Loads every model now (so the first personalization does not pay for it, and a
    /// missing file is reported up front).
    pub fn load_all(&self) -> Result<()> {
        self.clip()?;
        self.minilm()?;
        Ok(())
    }

    /// Which models are loaded: `(minilm, clip)`.
    pub fn loaded(&self) -> (bool, bool) {
        (lock(&self.minilm).is_some(), lock(&self.clip).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_root_names_that_root_in_the_hint() {
        let root = std::env::temp_dir().join(format!("zipp-models-missing-{}", std::process::id()));
        let models = Models::in_dir(&root);
        for err in [models.minilm().err().unwrap(), models.clip().err().unwrap()] {
            assert_eq!(err.kind(), "model_not_found", "{err}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("ZIPP_MODELS_DIR={}", root.display())), "{msg}");
        }
        assert_eq!(models.loaded(), (false, false));
    }
}
