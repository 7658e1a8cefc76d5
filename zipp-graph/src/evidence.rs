//! Attention evidence → the verbalizer's input (SPEC §6).
//!
//! Per user, the communities of their training edges are ranked by the encoder's
//! **last-layer attention** (communities → users, mean over heads; ties by lower community
//! index). A token budget (default 512, counted by any [`TokenCounter`]) is then filled in
//! that order, first with the ranked communities (name and description), then — for the
//! communities that made it, in rank order — with their snippets, each community's in the
//! order the edge file gave them (the first snippet of a community is taken as its most
//! salient: the loaders keep input order). An item or snippet that does not fit is skipped,
//! and filling goes on with smaller ones. The result is
//! [`zipp_lm::verbalize::ActivityEvidence`]: item weights are the attention, so the
//! verbalizer ranks them as the encoder did.

use zipp_core::error::{Error, Result};
use zipp_core::tokenize::TokenCounter;
use zipp_lm::verbalize::{ActivityEvidence, EvidenceItem, ItemKind, MAX_ITEMS, MAX_SNIPPETS};

use crate::graph::BipartiteGraph;
use crate::model::GraphView;

/// How much evidence to gather per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidenceOptions {
    /// Tokens of names, descriptions and snippets together.
    pub token_budget: usize,
    /// Most snippets per community.
    pub snippets_per_community: usize,
}

impl Default for EvidenceOptions {
    fn default() -> Self {
        EvidenceOptions { token_budget: 512, snippets_per_community: 3 }
    }
}

/// One ranked community of a user, before the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedCommunity {
    /// Community index.
    pub community: usize,
    /// Edge id in the graph.
    pub edge: usize,
    /// Last-layer attention, mean over heads.
    pub attention: f32,
}

/// `user`'s training communities by attention, highest first. `attention` is
/// [`crate::model::Encoder::user_attention`] over the same `view`.
pub fn ranked_communities(view: &GraphView, attention: &[f32], user: usize) -> Result<Vec<RankedCommunity>> {
    let adj = &view.c2u;
    if attention.len() != adj.n_edges() {
        return Err(Error::InvalidInput(format!(
            "evidence: {} attention values for {} edges",
            attention.len(),
            adj.n_edges()
        )));
    }
    if user >= adj.n_dst() {
        return Err(Error::InvalidInput(format!("evidence: user {user} out of range ({} users)", adj.n_dst())));
    }
    let mut out: Vec<RankedCommunity> = (adj.ptr()[user]..adj.ptr()[user + 1])
        .map(|k| RankedCommunity {
            community: adj.src()[k] as usize,
            edge: view.c2u_edges[k] as usize,
            attention: attention[k],
        })
        .collect();
    out.sort_by(|a, b| b.attention.total_cmp(&a.attention).then(a.community.cmp(&b.community)));
    Ok(out)
}

/// The evidence of `user` under the budget (module docs).
pub fn user_evidence(
    graph: &BipartiteGraph,
    view: &GraphView,
    attention: &[f32],
    user: usize,
    counter: &dyn TokenCounter,
    options: &EvidenceOptions,
) -> Result<ActivityEvidence> {
    if options.token_budget == 0 {
        return Err(Error::InvalidInput("evidence: the token budget must be positive".into()));
    }
    let ranked = ranked_communities(view, attention, user)?;
    if ranked.is_empty() {
        return Err(Error::InvalidInput(format!(
            "evidence: user {:?} has no training edge, so nothing to verbalize",
            graph.users()[user]
        )));
    }
    let mut left = options.token_budget;
    let mut items: Vec<(EvidenceItem, usize)> = Vec::new();
    for r in &ranked {
        if items.len() == MAX_ITEMS {
            break;
        }
        let c = &graph.communities()[r.community];
        let cost = counter.count(&c.name) + counter.count(&c.description);
        if cost > left {
            continue;
        }
        left -= cost;
        let item = EvidenceItem {
            kind: ItemKind::Community,
            name: c.name.clone(),
            description: c.description.clone(),
            weight: r.attention as f64,
            snippets: Vec::new(),
        };
        items.push((item, r.edge));
    }
    let per = options.snippets_per_community.min(MAX_SNIPPETS);
    for (item, edge) in items.iter_mut() {
        for s in graph.snippets(*edge).iter().take(per) {
            let cost = counter.count(s);
            if cost <= left && !s.trim().is_empty() {
                left -= cost;
                item.snippets.push(s.to_string());
            }
        }
    }
    if items.is_empty() {
        return Err(Error::InvalidInput(format!(
            "evidence: no community name of user {:?} fits a budget of {} tokens",
            graph.users()[user],
            options.token_budget
        )));
    }
    let evidence = ActivityEvidence {
        user: graph.users()[user].clone(),
        items: items.into_iter().map(|(i, _)| i).collect(),
        demographics: Default::default(),
    };
    evidence.validate()?;
    Ok(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::model::GraphView;
    use crate::split::EdgeSplit;
    use candle_core::{Device, Tensor};

    /// Counts whitespace-separated words.
    struct Words;
    impl TokenCounter for Words {
        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }
        fn context_length(&self) -> usize {
            usize::MAX
        }
    }

    #[test]
    fn communities_by_attention_then_snippets_under_the_budget() {
        let mut b = GraphBuilder::new();
        let film = b.community("analog photography", "film cameras").unwrap();
        let noir = b.community("film noir", "").unwrap();
        let cats = b.community("cats", "").unwrap();
        let u = b.user("u").unwrap();
        b.edge(u, film, 1.0, Some("expired film heavy grain")).unwrap();
        b.edge(u, film, 1.0, Some("second thought")).unwrap();
        b.edge(u, noir, 1.0, Some("hard shadows")).unwrap();
        b.edge(u, cats, 1.0, None).unwrap();
        let g = b.build().unwrap();
        let split = EdgeSplit::all_train(&g);
        let x = Tensor::zeros((3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        let view = GraphView::new(&g, &split, &x).unwrap();
        // Attention in slot order (communities ascending): film 0.2, noir 0.7, cats 0.1.
        let att = [0.2, 0.7, 0.1];
        let ranked = ranked_communities(&view, &att, 0).unwrap();
        assert_eq!(ranked.iter().map(|r| r.community).collect::<Vec<_>>(), vec![1, 0, 2]);
        let big = EvidenceOptions { token_budget: 100, snippets_per_community: 3 };
        let e = user_evidence(&g, &view, &att, 0, &Words, &big).unwrap();
        let names: Vec<&str> = e.items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["film noir", "analog photography", "cats"]);
        assert_eq!(e.items[1].snippets, ["expired film heavy grain", "second thought"]);
        // Budget 9: names take 2 + 4 + 1 = 7 words; "hard shadows" (2) fits, film's do not.
        let small = EvidenceOptions { token_budget: 9, snippets_per_community: 3 };
        let e = user_evidence(&g, &view, &att, 0, &Words, &small).unwrap();
        assert_eq!(e.items.len(), 3);
        assert_eq!(e.items[0].snippets, ["hard shadows"]);
        assert!(e.items[1].snippets.is_empty());
        // Budget 3: only "film noir" (2) and "cats" (1).
        let tiny = EvidenceOptions { token_budget: 3, snippets_per_community: 3 };
        let e = user_evidence(&g, &view, &att, 0, &Words, &tiny).unwrap();
        assert_eq!(e.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["film noir", "cats"]);
        assert!(user_evidence(&g, &view, &att[..2], 0, &Words, &big).is_err());
        assert!(user_evidence(&g, &view, &att, 1, &Words, &big).is_err());
    }
}
