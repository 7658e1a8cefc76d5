//! The bipartite users × communities activity graph (SPEC §6).
//!
//! Users and communities are numbered from 0 in the order they were first seen. Edges are
//! stored once, in **user order** (CSR users → communities, columns ascending within a user,
//! one edge per (user, community) pair); a second CSR (communities → users) refers to the
//! same edges by id, so per-edge data (weights, snippets, the train/validation/test split)
//! lives in one array indexed by the edge id of the user-order CSR.
//!
//! ```
//! use zipp_graph::graph::GraphBuilder;
//! let mut b = GraphBuilder::new();
//! let film = b.community("analog photography", "film cameras and darkroom work")?;
//! let alice = b.user("alice")?;
//! b.edge(alice, film, 3.0, Some("expired film, heavy grain"))?;
//! b.edge(alice, film, 1.0, None)?; // merged into the first: weight 4
//! let g = b.build()?;
//! assert_eq!((g.num_users(), g.num_communities(), g.num_edges()), (1, 1, 1));
//! assert_eq!(g.weight(0), 4.0);
//! # Ok::<(), zipp_core::Error>(())
//! ```

use std::collections::HashMap;

use zipp_core::error::{Error, Result};

/// The most characters of a user id or community name.
pub const MAX_ID_CHARS: usize = 300;
/// The most characters of a community description.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// The most characters of one snippet; longer snippets are an error, not cut.
pub const MAX_SNIPPET_CHARS: usize = 2000;
/// The most snippets kept per edge: further ones are counted in the weight only. The
/// evidence budget (SPEC §6) never reads more than a few per community.
pub const MAX_SNIPPETS_PER_EDGE: usize = 16;

/// A community: its unique name and what it is about (the text its features embed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Community {
    /// Unique name ("analog photography", "r/AnalogCommunity", a movie title …).
    pub name: String,
    /// What it is about; may be empty.
    pub description: String,
}

impl Community {
    /// The text the community's features embed: `name`, or `name: description`.
    pub fn text(&self) -> String {
        if self.description.is_empty() {
            self.name.clone()
        } else {
            format!("{}: {}", self.name, self.description)
        }
    }
}

/// A compressed sparse row adjacency: row `r` owns `col[ptr[r]..ptr[r + 1]]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Csr {
    /// Row offsets, `rows + 1` of them, non-decreasing, first 0, last = `col.len()`.
    pub ptr: Vec<usize>,
    /// Column indices.
    pub col: Vec<u32>,
}

impl Csr {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.ptr.len().saturating_sub(1)
    }

    /// The slot range of row `r`.
    pub fn range(&self, r: usize) -> std::ops::Range<usize> {
        self.ptr[r]..self.ptr[r + 1]
    }

    /// The columns of row `r`.
    pub fn row(&self, r: usize) -> &[u32] {
        &self.col[self.range(r)]
    }

    /// The out-degree of row `r`.
    pub fn degree(&self, r: usize) -> usize {
        self.ptr[r + 1] - self.ptr[r]
    }
}

/// The bipartite activity graph: see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct BipartiteGraph {
    users: Vec<String>,
    communities: Vec<Community>,
    /// Users → communities; the slot index is the edge id.
    by_user: Csr,
    /// Communities → users, with `by_community_edge[k]` the edge id of slot `k`.
    by_community: Csr,
    by_community_edge: Vec<u32>,
    weights: Vec<f32>,
    /// Snippets of edge `e`: `snippets[snippet_ptr[e]..snippet_ptr[e + 1]]`; empty
    /// `snippet_ptr` when no edge has any.
    snippet_ptr: Vec<usize>,
    snippets: Vec<Box<str>>,
}

impl BipartiteGraph {
    /// Number of users.
    pub fn num_users(&self) -> usize {
        self.users.len()
    }

    /// Number of communities.
    pub fn num_communities(&self) -> usize {
        self.communities.len()
    }

    /// Number of (user, community) edges.
    pub fn num_edges(&self) -> usize {
        self.weights.len()
    }

    /// User ids, by index.
    pub fn users(&self) -> &[String] {
        &self.users
    }

    /// Communities, by index.
    pub fn communities(&self) -> &[Community] {
        &self.communities
    }

    /// Users → communities CSR; its slot index is the edge id.
    pub fn by_user(&self) -> &Csr {
        &self.by_user
    }

    /// Communities → users CSR.
    pub fn by_community(&self) -> &Csr {
        &self.by_community
    }

    /// The edge id of each slot of [`BipartiteGraph::by_community`].
    pub fn by_community_edges(&self) -> &[u32] {
        &self.by_community_edge
    }

    /// The weight (count, rating …) of edge `e`.
    pub fn weight(&self, e: usize) -> f32 {
        self.weights[e]
    }

    /// All edge weights, by edge id.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The user of each edge, by edge id.
    pub fn edge_users(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.num_edges());
        for u in 0..self.num_users() {
            out.extend(std::iter::repeat_n(u as u32, self.by_user.degree(u)));
        }
        out
    }

    /// The snippets (what the user wrote there) of edge `e`, in input order.
    pub fn snippets(&self, e: usize) -> &[Box<str>] {
        if self.snippet_ptr.is_empty() {
            &[]
        } else {
            &self.snippets[self.snippet_ptr[e]..self.snippet_ptr[e + 1]]
        }
    }

    /// Whether any edge has a snippet.
    pub fn has_snippets(&self) -> bool {
        !self.snippets.is_empty()
    }

    /// The index of the user with this id (a linear scan: build a map for many lookups).
    pub fn user_index(&self, id: &str) -> Option<usize> {
        self.users.iter().position(|u| u == id)
    }

    /// The index of the community with this name (a linear scan).
    pub fn community_index(&self, name: &str) -> Option<usize> {
        self.communities.iter().position(|c| c.name == name)
    }

    /// The edge id of (user, community), if they are linked.
    pub fn edge_id(&self, user: usize, community: usize) -> Option<usize> {
        let row = self.by_user.row(user);
        row.binary_search(&(community as u32)).ok().map(|k| self.by_user.ptr[user] + k)
    }

    /// Assembles a graph from parts already in CSR form (the loaders' second pass): edges in
    /// user order with ascending, unique communities per user. Everything is checked.
    pub fn from_parts(
        users: Vec<String>,
        communities: Vec<Community>,
        by_user: Csr,
        weights: Vec<f32>,
        snippet_ptr: Vec<usize>,
        snippets: Vec<Box<str>>,
    ) -> Result<BipartiteGraph> {
        let bad = |m: String| Err(Error::InvalidInput(format!("graph: {m}")));
        let edges = by_user.col.len();
        if by_user.ptr.len() != users.len() + 1 || by_user.ptr.first() != Some(&0) || by_user.ptr.last() != Some(&edges)
        {
            return bad(format!("the user offsets do not describe {} users and {edges} edges", users.len()));
        }
        if edges > u32::MAX as usize {
            return bad(format!("{edges} edges: at most {} are supported", u32::MAX));
        }
        if communities.len() > u32::MAX as usize || users.len() > u32::MAX as usize {
            return bad("more than 2^32 - 1 users or communities".into());
        }
        if weights.len() != edges {
            return bad(format!("{} weights for {edges} edges", weights.len()));
        }
        for (u, id) in users.iter().enumerate() {
            if by_user.ptr[u] > by_user.ptr[u + 1] {
                return bad(format!("user offsets decrease at user {u}"));
            }
            let row = by_user.row(u);
            if let Some(w) = row.windows(2).find(|w| w[0] >= w[1]) {
                return bad(format!("user {id:?}: communities not ascending and unique ({} then {})", w[0], w[1]));
            }
            if let Some(&c) = row.last() {
                if c as usize >= communities.len() {
                    return bad(format!("user {id:?}: community index {c} out of range"));
                }
            }
        }
        if let Some(e) = weights.iter().position(|w| !w.is_finite() || *w <= 0.0) {
            return bad(format!("edge {e}: weight {} is not finite and positive", weights[e]));
        }
        if !snippet_ptr.is_empty()
            && (snippet_ptr.len() != edges + 1
                || snippet_ptr[0] != 0
                || snippet_ptr.last() != Some(&snippets.len())
                || snippet_ptr.windows(2).any(|w| w[0] > w[1]))
        {
            return bad("snippet offsets do not match the edges".into());
        }
        let mut seen = HashMap::with_capacity(users.len());
        for (i, u) in users.iter().enumerate() {
            check_name("user id", u, MAX_ID_CHARS)?;
            if let Some(j) = seen.insert(u.as_str(), i) {
                return bad(format!("user id {u:?} appears twice (users {j} and {i})"));
            }
        }
        let mut seen = HashMap::with_capacity(communities.len());
        for (i, c) in communities.iter().enumerate() {
            check_name("community name", &c.name, MAX_ID_CHARS)?;
            check_text("community description", &c.description, MAX_DESCRIPTION_CHARS)?;
            if let Some(j) = seen.insert(c.name.as_str(), i) {
                return bad(format!("community {:?} appears twice (communities {j} and {i})", c.name));
            }
        }
        for s in &snippets {
            check_text("snippet", s, MAX_SNIPPET_CHARS)?;
        }

        // Counting sort of the edges by community: stable, so users ascend in each row.
        let mut ptr = vec![0usize; communities.len() + 1];
        for &c in &by_user.col {
            ptr[c as usize + 1] += 1;
        }
        for i in 0..communities.len() {
            ptr[i + 1] += ptr[i];
        }
        let mut next = ptr.clone();
        let mut col = vec![0u32; edges];
        let mut edge = vec![0u32; edges];
        for u in 0..users.len() {
            for e in by_user.range(u) {
                let c = by_user.col[e] as usize;
                col[next[c]] = u as u32;
                edge[next[c]] = e as u32;
                next[c] += 1;
            }
        }
        Ok(BipartiteGraph {
            users,
            communities,
            by_user,
            by_community: Csr { ptr, col },
            by_community_edge: edge,
            weights,
            snippet_ptr,
            snippets,
        })
    }
}

/// Checks a one-line name: non-blank, no control characters, at most `max` characters.
pub(crate) fn check_name(what: &str, s: &str, max: usize) -> Result<()> {
    if s.trim().is_empty() {
        return Err(Error::InvalidInput(format!("{what} is empty")));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!("{what} {s:?} contains a control character")));
    }
    check_len(what, s, max)
}

/// Checks a free text: at most `max` characters.
pub(crate) fn check_text(what: &str, s: &str, max: usize) -> Result<()> {
    check_len(what, s, max)
}

fn check_len(what: &str, s: &str, max: usize) -> Result<()> {
    let n = s.chars().count();
    if n > max {
        let head: String = s.chars().take(40).collect();
        return Err(Error::InvalidInput(format!("{what} {head:?}… has {n} characters, more than {max}")));
    }
    Ok(())
}

/// Builds a [`BipartiteGraph`] in memory from edges in any order: duplicate (user,
/// community) pairs are merged (weights summed, snippets concatenated up to
/// [`MAX_SNIPPETS_PER_EDGE`]). Memory: the id maps plus 16 bytes per edge added, so the
/// edge-file loaders ([`crate::io`]) use two passes instead for large files.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    users: Vec<String>,
    user_index: HashMap<String, u32>,
    communities: Vec<Community>,
    community_index: HashMap<String, u32>,
    /// (user, community, weight, snippet id or u32::MAX)
    edges: Vec<(u32, u32, f32, u32)>,
    snippets: Vec<Box<str>>,
}

impl GraphBuilder {
    /// An empty builder.
    pub fn new() -> GraphBuilder {
        GraphBuilder::default()
    }

    /// The index of community `name`, adding it with `description` if it is new; a known
    /// community with an empty description takes this one.
    pub fn community(&mut self, name: &str, description: &str) -> Result<u32> {
        if let Some(&i) = self.community_index.get(name) {
            let c = &mut self.communities[i as usize];
            if c.description.is_empty() && !description.is_empty() {
                check_text("community description", description, MAX_DESCRIPTION_CHARS)?;
                c.description = description.to_string();
            }
            return Ok(i);
        }
        check_name("community name", name, MAX_ID_CHARS)?;
        check_text("community description", description, MAX_DESCRIPTION_CHARS)?;
        let i = u32::try_from(self.communities.len())
            .map_err(|_| Error::InvalidInput("graph: more than 2^32 - 1 communities".into()))?;
        self.communities.push(Community { name: name.to_string(), description: description.to_string() });
        self.community_index.insert(name.to_string(), i);
        Ok(i)
    }

    /// The index of user `id`, adding it if it is new.
    pub fn user(&mut self, id: &str) -> Result<u32> {
        if let Some(&i) = self.user_index.get(id) {
            return Ok(i);
        }
        check_name("user id", id, MAX_ID_CHARS)?;
        let i = u32::try_from(self.users.len())
            .map_err(|_| Error::InvalidInput("graph: more than 2^32 - 1 users".into()))?;
        self.users.push(id.to_string());
        self.user_index.insert(id.to_string(), i);
        Ok(i)
    }

    /// Adds an interaction of `weight` (finite, > 0) between a user and a community (indices
    /// returned by [`GraphBuilder::user`] and [`GraphBuilder::community`]), with an optional
    /// snippet of what the user wrote.
    pub fn edge(&mut self, user: u32, community: u32, weight: f32, snippet: Option<&str>) -> Result<()> {
        if user as usize >= self.users.len() || community as usize >= self.communities.len() {
            return Err(Error::InvalidInput(format!("graph: edge ({user}, {community}) names an unknown node")));
        }
        if !weight.is_finite() || weight <= 0.0 {
            return Err(Error::InvalidInput(format!(
                "graph: edge ({:?}, {:?}) has weight {weight}: it must be finite and positive",
                self.users[user as usize], self.communities[community as usize].name
            )));
        }
        let s = match snippet {
            Some(s) if !s.trim().is_empty() => {
                check_text("snippet", s, MAX_SNIPPET_CHARS)?;
                self.snippets.push(s.into());
                (self.snippets.len() - 1) as u32
            }
            _ => u32::MAX,
        };
        self.edges.push((user, community, weight, s));
        Ok(())
    }

    /// Number of users so far.
    pub fn num_users(&self) -> usize {
        self.users.len()
    }

    /// Number of communities so far.
    pub fn num_communities(&self) -> usize {
        self.communities.len()
    }

    /// Sorts and merges the edges into a [`BipartiteGraph`].
    pub fn build(self) -> Result<BipartiteGraph> {
        let GraphBuilder { users, communities, mut edges, snippets, .. } = self;
        // Stable: a pair's snippets keep their input order.
        edges.sort_by_key(|&(u, c, _, _)| (u, c));
        let mut ptr = vec![0usize; users.len() + 1];
        let mut col = Vec::with_capacity(edges.len());
        let mut weights: Vec<f32> = Vec::with_capacity(edges.len());
        let any_snippet = !snippets.is_empty();
        let mut snippet_ptr = if any_snippet { vec![0usize] } else { Vec::new() };
        let mut kept: Vec<Box<str>> = Vec::new();
        let mut slots: Vec<Option<Box<str>>> = snippets.into_iter().map(Some).collect();
        let mut i = 0;
        while i < edges.len() {
            let (u, c, _, _) = edges[i];
            let mut w = 0f32;
            let mut count = 0;
            while i < edges.len() && edges[i].0 == u && edges[i].1 == c {
                w += edges[i].2;
                let s = edges[i].3;
                if s != u32::MAX && count < MAX_SNIPPETS_PER_EDGE {
                    if let Some(text) = slots[s as usize].take() {
                        kept.push(text);
                        count += 1;
                    }
                }
                i += 1;
            }
            if !w.is_finite() {
                return Err(Error::InvalidInput(format!(
                    "graph: the weights of ({:?}, {:?}) sum to {w}",
                    users[u as usize], communities[c as usize].name
                )));
            }
            col.push(c);
            weights.push(w);
            ptr[u as usize + 1] += 1;
            if any_snippet {
                snippet_ptr.push(kept.len());
            }
        }
        for k in 0..users.len() {
            ptr[k + 1] += ptr[k];
        }
        BipartiteGraph::from_parts(users, communities, Csr { ptr, col }, weights, snippet_ptr, kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_merges_sorts_and_indexes_both_directions() {
        let mut b = GraphBuilder::new();
        let c0 = b.community("c0", "").unwrap();
        let c1 = b.community("c1", "about c1").unwrap();
        let c2 = b.community("c2", "").unwrap();
        let u0 = b.user("u0").unwrap();
        let u1 = b.user("u1").unwrap();
        let u2 = b.user("u2").unwrap(); // no edges
        b.edge(u1, c2, 1.0, Some("late")).unwrap();
        b.edge(u0, c1, 2.0, Some("first")).unwrap();
        b.edge(u1, c0, 1.5, None).unwrap();
        b.edge(u0, c1, 0.5, Some("second")).unwrap();
        b.edge(u1, c2, 2.0, None).unwrap();
        let g = b.build().unwrap();
        assert_eq!(g.num_edges(), 3);
        assert_eq!(g.by_user().row(u0 as usize), &[1]);
        assert_eq!(g.by_user().row(u1 as usize), &[0, 2]);
        assert_eq!(g.by_user().row(u2 as usize), &[] as &[u32]);
        assert_eq!(g.weights(), &[2.5, 1.5, 3.0]);
        assert_eq!(g.snippets(0).iter().map(|s| &**s).collect::<Vec<_>>(), ["first", "second"]);
        assert!(g.snippets(1).is_empty());
        assert_eq!(&*g.snippets(2)[0], "late");
        assert_eq!(g.by_community().row(2), &[1]);
        assert_eq!(g.by_community_edges()[g.by_community().range(2)][0], 2);
        assert_eq!(g.edge_id(1, 2), Some(2));
        assert_eq!(g.edge_id(0, 0), None);
        assert_eq!(g.edge_users(), vec![0, 1, 1]);
        assert_eq!(g.communities()[1].text(), "c1: about c1");
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let mut b = GraphBuilder::new();
        let c = b.community("c", "").unwrap();
        let u = b.user("u").unwrap();
        for w in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            let e = b.edge(u, c, w, None).unwrap_err();
            assert!(e.to_string().contains("finite and positive"), "{e}");
        }
        assert!(b.edge(u, 7, 1.0, None).is_err());
        assert!(b.user("  ").is_err());
        assert!(b.user("a\nb").is_err());
        assert!(b.community(&"x".repeat(MAX_ID_CHARS + 1), "").is_err());
        assert!(b.edge(u, c, 1.0, Some(&"y".repeat(MAX_SNIPPET_CHARS + 1))).is_err());
        let mut b = GraphBuilder::new();
        let c = b.community("c", "").unwrap();
        let u = b.user("u").unwrap();
        b.edge(u, c, f32::MAX, None).unwrap();
        b.edge(u, c, f32::MAX, None).unwrap();
        assert!(b.build().unwrap_err().to_string().contains("sum to"));
    }

    #[test]
    fn from_parts_checks_the_csr() {
        let users = vec!["a".to_string()];
        let comms = vec![Community { name: "c".into(), description: String::new() }];
        let ok = Csr { ptr: vec![0, 1], col: vec![0] };
        assert!(BipartiteGraph::from_parts(users.clone(), comms.clone(), ok, vec![1.0], vec![], vec![]).is_ok());
        let out_of_range = Csr { ptr: vec![0, 1], col: vec![3] };
        assert!(
            BipartiteGraph::from_parts(users.clone(), comms.clone(), out_of_range, vec![1.0], vec![], vec![]).is_err()
        );
        let short = Csr { ptr: vec![0, 2], col: vec![0] };
        assert!(BipartiteGraph::from_parts(users.clone(), comms.clone(), short, vec![1.0], vec![], vec![]).is_err());
        let dup = Csr { ptr: vec![0, 2], col: vec![0, 0] };
        assert!(BipartiteGraph::from_parts(users, comms, dup, vec![1.0, 1.0], vec![], vec![]).is_err());
    }
}
