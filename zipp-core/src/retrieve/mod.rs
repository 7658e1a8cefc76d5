//! Retrieval over a persona's memory: the indexed persona and the VPRAG / BRAG selectors.
//!
//! [`IndexedPersona`] wraps a [`Persona`] with its memory embeddings, computed **once** per
//! embedder (captions, every distinct element, every category description — one batched
//! embedding call) and reused by every request, so a repeated query costs only its own
//! embedding plus arithmetic.

pub mod categories;
pub mod vprag;

use std::sync::{Arc, Mutex, RwLock};

use crate::embed::{Embedder, Embeddings};
use crate::error::Result;
use crate::persona::Persona;

/// A persona plus its cached memory embeddings (one [`MemoryIndex`] per embedder id).
/// Creating one is free; the index is built on first use by an embedding personalizer,
/// or eagerly with [`IndexedPersona::index`]. Safe to share across threads.
pub struct IndexedPersona {
    persona: Arc<Persona>,
    indexes: RwLock<Vec<Arc<MemoryIndex>>>,
    /// Held while building, so threads that miss the cache together embed the memory once.
    building: Mutex<()>,
}

impl std::fmt::Debug for IndexedPersona {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexedPersona").field("id", &self.persona.id).finish_non_exhaustive()
    }
}

impl From<Persona> for IndexedPersona {
    fn from(p: Persona) -> Self {
        IndexedPersona::new(p)
    }
}

impl IndexedPersona {
    pub fn new(persona: Persona) -> Self {
        IndexedPersona { persona: Arc::new(persona), indexes: RwLock::new(Vec::new()), building: Mutex::new(()) }
    }

    pub fn persona(&self) -> &Persona {
        &self.persona
    }

    /// The memory index for `embedder`, built on first call and cached.
    pub fn index(&self, embedder: &dyn Embedder) -> Result<Arc<MemoryIndex>> {
        let id = embedder.id();
        // Poisoned locks only mean another thread panicked; the Vec is always intact.
        let cached =
            || self.indexes.read().unwrap_or_else(|e| e.into_inner()).iter().find(|ix| ix.embedder_id == id).cloned();
        if let Some(ix) = cached() {
            return Ok(ix);
        }
        let _building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ix) = cached() {
            return Ok(ix); // built by the thread we waited for
        }
        let built = Arc::new(MemoryIndex::build(&self.persona, embedder)?);
        self.indexes.write().unwrap_or_else(|e| e.into_inner()).push(built.clone());
        Ok(built)
    }
}

/// A persona's memory, embedded. Element strings are de-duplicated: each distinct string
/// is embedded once and referred to by index.
#[derive(Debug)]
pub struct MemoryIndex {
    pub embedder_id: String,
    /// Row `i`: unit embedding of `memory[i].caption`.
    pub captions: Embeddings,
    /// Categories present in the memory, sorted by name.
    pub categories: Vec<String>,
    /// Row `k`: unit embedding of `categories::describe(categories[k])`.
    pub category_vecs: Embeddings,
    /// Distinct element strings.
    pub elements: Vec<String>,
    /// Row `e`: unit embedding of `elements[e]`.
    pub element_vecs: Embeddings,
    /// `post_elements[i][k]`: indices into `elements` of post `i`'s elements in category
    /// `k`, in the post's order.
    pub post_elements: Vec<Vec<Vec<usize>>>,
}

impl MemoryIndex {
    /// Embeds captions, category descriptions and distinct elements in one batched call.
    pub fn build(persona: &Persona, embedder: &dyn Embedder) -> Result<MemoryIndex> {
        // A persona edited by hand after loading is checked before anything is embedded.
        persona.validate()?;
        let categories: Vec<String> = persona.categories().into_iter().map(str::to_string).collect();
        let mut elements: Vec<String> = Vec::new();
        let mut lookup: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let mut post_elements = Vec::with_capacity(persona.memory.len());
        for post in &persona.memory {
            let mut per_cat = vec![Vec::new(); categories.len()];
            for (cat, list) in &post.elements {
                // `categories` was collected from these same posts, so the search succeeds.
                let k = categories.binary_search(cat).expect("category collected from memory");
                for e in list {
                    let idx = *lookup.entry(e.as_str()).or_insert_with(|| {
                        elements.push(e.clone());
                        elements.len() - 1
                    });
                    per_cat[k].push(idx);
                }
            }
            post_elements.push(per_cat);
        }
        let descriptions: Vec<String> = categories.iter().map(|c| categories::describe(c)).collect();
        let mut texts: Vec<&str> = persona.memory.iter().map(|p| p.caption.as_str()).collect();
        texts.extend(descriptions.iter().map(String::as_str));
        texts.extend(elements.iter().map(String::as_str));
        let all = embedder.embed(&texts)?;
        crate::embed::check_shape(embedder, texts.len(), &all)?;
        let dim = embedder.dim();
        let n = persona.memory.len();
        let c = categories.len();
        let slice = |from: usize, to: usize| Embeddings::new(dim, all.as_slice()[from * dim..to * dim].to_vec());
        Ok(MemoryIndex {
            embedder_id: embedder.id().to_string(),
            captions: if n == 0 { Embeddings::empty(dim) } else { slice(0, n)? },
            category_vecs: if c == 0 { Embeddings::empty(dim) } else { slice(n, n + c)? },
            element_vecs: if elements.is_empty() { Embeddings::empty(dim) } else { slice(n + c, texts.len())? },
            categories,
            elements,
            post_elements,
        })
    }

    /// Number of elements of post `i` in category `k`.
    pub fn count(&self, i: usize, k: usize) -> usize {
        self.post_elements[i][k].len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, Post};

    /// Returns one row whatever it is asked: a broken custom embedder.
    struct OneRow;
    impl Embedder for OneRow {
        fn id(&self) -> &str {
            "one-row"
        }
        fn dim(&self) -> usize {
            3
        }
        fn embed(&self, _texts: &[&str]) -> Result<Embeddings> {
            Embeddings::new(3, vec![1.0, 0.0, 0.0])
        }
    }

    #[test]
    fn a_misbehaving_embedder_is_an_error_not_a_panic() {
        let mut p = Persona::new("p");
        p.memory.push(Post::new("a").with("mood", &["calm"]));
        p.memory.push(Post::new("b"));
        let ip = IndexedPersona::new(p);
        assert!(matches!(ip.index(&OneRow), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn an_invalid_hand_edited_persona_is_not_indexed() {
        let mut p = Persona::new("p");
        p.memory.push(Post::new("  "));
        let ip = IndexedPersona::new(p);
        assert!(matches!(ip.index(&OneRow), Err(Error::Schema { .. })));
    }
}
