//! Inputs of the encoder from a text embedder: community features (SPEC §6: `embed(name +
//! description)`, which is what makes the encoder inductive) and per-user content means.

use candle_core::{Device, Tensor};
use zipp_core::embed::Embedder;
use zipp_core::error::{Error, Result};

use crate::graph::BipartiteGraph;
use crate::split::{EdgeSplit, Part};

/// Texts embedded per call.
const BATCH: usize = 256;

/// `[S, dim]`: the embedding of each community's [`crate::Community::text`], in batches;
/// `progress(done, total)` after each batch, `false` cancels.
pub fn community_features(
    embedder: &dyn Embedder,
    graph: &BipartiteGraph,
    device: &Device,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Tensor> {
    let texts: Vec<String> = graph.communities().iter().map(|c| c.text()).collect();
    embed_texts(embedder, &texts, device, progress)
}

/// `[n, dim]` embeddings of `texts` in batches (see [`community_features`]).
pub fn embed_texts(
    embedder: &dyn Embedder,
    texts: &[String],
    device: &Device,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Tensor> {
    let dim = embedder.dim();
    let mut data = Vec::with_capacity(texts.len() * dim);
    for chunk in texts.chunks(BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let e = embedder.embed(&refs)?;
        data.extend_from_slice(e.as_slice());
        if !progress(data.len() / dim, texts.len()) {
            return Err(Error::Cancelled(format!("embedding cancelled after {} texts", data.len() / dim)));
        }
    }
    Ok(Tensor::from_vec(data, (texts.len(), dim), device)?)
}

/// `[U, d]`: per user, the weighted mean of `item_vectors` (`[S, d]`) over their
/// **training** edges (zero rows for users without any). Held-out edges never contribute,
/// so content built this way does not leak test edges into training.
pub fn mean_over_training_edges(graph: &BipartiteGraph, split: &EdgeSplit, item_vectors: &Tensor) -> Result<Tensor> {
    let (s_n, d) = item_vectors.dims2()?;
    if s_n != graph.num_communities() {
        return Err(Error::InvalidInput(format!("content: {s_n} vectors for {} communities", graph.num_communities())));
    }
    let v = item_vectors.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; graph.num_users() * d];
    let csr = graph.by_user();
    for u in 0..graph.num_users() {
        let row = &mut out[u * d..(u + 1) * d];
        let mut total = 0f32;
        for e in csr.range(u).filter(|&e| split.part(e) == Part::Train) {
            let s = csr.col[e] as usize;
            let w = graph.weight(e);
            total += w;
            row.iter_mut().zip(&v[s * d..(s + 1) * d]).for_each(|(x, y)| *x += w * y);
        }
        if total > 0.0 {
            row.iter_mut().for_each(|x| *x /= total);
        }
    }
    Ok(Tensor::from_vec(out, (graph.num_users(), d), item_vectors.device())?)
}
