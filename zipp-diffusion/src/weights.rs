//! Safetensors weights behind candle's `VarBuilder`, under diffusers' names, whatever the
//! file's layout.
//!
//! A [`Weights`] is a set of memory-mapped safetensors files plus a name table: diffusers
//! name → where the tensor is stored (a name in one of the files, possibly a row slice of a
//! fused tensor, as OpenCLIP's `in_proj_weight`). The diffusers layout maps names to
//! themselves; a single-file checkpoint maps them through [`crate::ldm`]. Tensors are
//! converted to the model's dtype as they are read; a `[c, c, 1, 1]` convolution stored for
//! a `[c, c]` linear (LDM's VAE attention) is reshaped. A name the model asks for that the
//! table lacks, or a shape that does not match the configuration, is an error naming the
//! tensor and the file.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

/// Where a diffusers-named tensor is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A tensor of that name.
    Name(String),
    /// Rows `start..start+len` (dimension 0) of a stored tensor.
    Rows { name: String, start: usize, len: usize },
    /// A stored 2-D tensor transposed (OpenCLIP's `text_projection`, stored as the `P` of
    /// `x @ P`, where transformers keeps the weight of `x @ Wᵀ`).
    Transposed(String),
}

/// Memory-mapped safetensors files.
pub struct Files {
    inner: MmapedSafetensors,
    paths: Vec<PathBuf>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files").field("paths", &self.paths).finish()
    }
}

impl Files {
    /// Maps `paths` (one checkpoint, or the shards of one).
    #[allow(unsafe_code)]
    pub fn open(paths: &[PathBuf]) -> Result<Files> {
        for p in paths {
            if !p.is_file() {
                candle_core::bail!("{} does not exist", p.display());
            }
        }
        // SAFETY: `MmapedSafetensors::multi` maps the files read-only and validates their
        // headers; the mapping is only unsound if another process truncates or rewrites a file
        // while it is mapped. zipp never writes model files, and the documentation of the
        // loaders says not to modify a model while a process uses it (the same contract as
        // candle, diffusers and llama.cpp, which all map weights).
        let inner = unsafe { MmapedSafetensors::multi(paths)? };
        Ok(Files { inner, paths: paths.to_vec() })
    }

    /// Every stored tensor name.
    pub fn names(&self) -> Vec<String> {
        self.inner.tensors().into_iter().map(|(n, _)| n).collect()
    }

    /// The shape of a stored tensor.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner.get(name).ok().map(|v| v.shape().to_vec())
    }

    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    fn load(&self, name: &str, dev: &Device) -> Result<Tensor> {
        self.inner.load(name, dev)
    }
}

/// One component's weights (the UNet, the VAE, a text encoder) under diffusers' names.
#[derive(Clone)]
pub struct Weights {
    files: Arc<Files>,
    table: Arc<HashMap<String, Source>>,
    used: Arc<Mutex<HashSet<String>>>,
    label: String,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights").field("label", &self.label).field("tensors", &self.table.len()).finish()
    }
}

impl Weights {
    /// Every tensor of `files` under its own name (the diffusers layout).
    pub fn identity(files: Arc<Files>, label: impl Into<String>) -> Weights {
        let table = files.names().into_iter().map(|n| (n.clone(), Source::Name(n))).collect();
        Weights::with_table(files, table, label)
    }

    /// The tensors of `files` that `table` names.
    pub fn with_table(files: Arc<Files>, table: HashMap<String, Source>, label: impl Into<String>) -> Weights {
        Weights { files, table: Arc::new(table), used: Arc::default(), label: label.into() }
    }

    /// The diffusers names available.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.table.keys()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.table.contains_key(name)
    }

    /// The stored shape behind a diffusers name (before any row slice).
    pub fn stored_shape(&self, name: &str) -> Option<Vec<usize>> {
        match self.table.get(name)? {
            Source::Name(n) => self.files.shape(n),
            Source::Rows { name, len, .. } => {
                let mut s = self.files.shape(name)?;
                s[0] = *len;
                Some(s)
            }
            Source::Transposed(n) => {
                let mut s = self.files.shape(n)?;
                s.reverse();
                Some(s)
            }
        }
    }

    /// A `VarBuilder` over these weights, producing `dtype` tensors on `device`.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> candle_nn::VarBuilder<'static> {
        candle_nn::VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// Names in the table the model never asked for (a sign the configuration does not fit
    /// the weights, or tensors zipp does not use).
    pub fn unused(&self) -> Vec<String> {
        let used = self.used.lock().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<String> = self.table.keys().filter(|k| !used.contains(*k)).cloned().collect();
        v.sort();
        v
    }

    /// What the weights are, for errors: the label and the files.
    pub fn describe(&self) -> String {
        let files: Vec<String> = self.files.paths().iter().map(|p| p.display().to_string()).collect();
        format!("{} ({})", self.label, files.join(", "))
    }

    fn read(&self, name: &str, dev: &Device) -> Result<Tensor> {
        let Some(src) = self.table.get(name) else {
            candle_core::bail!("tensor `{name}` is missing from the {} weights", self.describe());
        };
        self.used.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_string());
        match src {
            Source::Name(n) => self.files.load(n, dev),
            Source::Rows { name, start, len } => self.files.load(name, dev)?.narrow(0, *start, *len),
            Source::Transposed(n) => {
                let t = self.files.load(n, dev)?;
                if t.rank() != 2 {
                    candle_core::bail!(
                        "tensor `{n}` of the {} has shape {:?}, not a matrix",
                        self.describe(),
                        t.dims()
                    );
                }
                t.t()?.contiguous()
            }
        }
    }
}

impl SimpleBackend for Weights {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let t = self.read(name, dev)?;
        let t = if t.shape() == &s {
            t
        } else if t.elem_count() == s.elem_count() && squeeze_ones(t.dims()) == squeeze_ones(s.dims()) {
            t.reshape(s)?
        } else {
            candle_core::bail!(
                "tensor `{name}` of the {} has shape {:?}, the model configuration needs {:?} \
                 (do the weights and the config belong together?)",
                self.describe(),
                t.dims(),
                s.dims()
            );
        };
        t.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.read(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.table.contains_key(name)
    }
}

fn squeeze_ones(d: &[usize]) -> Vec<usize> {
    d.iter().copied().filter(|&x| x != 1).collect()
}

/// The safetensors file(s) of a diffusers component directory: `stem.safetensors`, else its
/// `fp16` variant, else the shards its index names.
pub fn component_files(dir: &Path, stem: &str) -> std::result::Result<Vec<PathBuf>, String> {
    for name in [format!("{stem}.safetensors"), format!("{stem}.fp16.safetensors")] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(vec![p]);
        }
    }
    for index in [format!("{stem}.safetensors.index.json"), format!("{stem}.safetensors.index.fp16.json")] {
        let p = dir.join(&index);
        if p.is_file() {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: malformed JSON: {e}", p.display()))?;
            let mut shards: Vec<String> = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| format!("{}: no weight_map", p.display()))?
                .values()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            shards.sort();
            shards.dedup();
            return Ok(shards.into_iter().map(|s| dir.join(s)).collect());
        }
    }
    let bin = dir.join(format!("{stem}.bin"));
    if bin.is_file() {
        return Err(format!(
            "{} holds only a PyTorch pickle ({stem}.bin); zipp reads safetensors only (pickles can run \
             code): convert it, e.g. with diffusers' save_pretrained(safe_serialization=True)",
            dir.display()
        ));
    }
    Err(format!("{} has no {stem}.safetensors (nor an fp16 variant or a sharded index)", dir.display()))
}
