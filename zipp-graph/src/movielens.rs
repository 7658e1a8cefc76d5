//! MovieLens 100K as a real activity graph (SPEC §11; feature `movielens`): users ×
//! movies, the rating (1–5 stars) as the edge weight. A movie is a "community" named by its
//! display title (`"The Harbour Lights (1988)"`; a title two movies share gets ` [m<id>]`
//! appended) and described by its genres (`"Genres: Crime, Thriller."`), so its features are
//! the text embedding of title and genres. Users are `ml100k-<id>`, the ids of the MovieLens
//! personas (`zipp_eval::datasets::movielens`). MovieLens has no comment text: edges carry no
//! snippets, and the evidence is the ranked movies alone.
//!
//! The data is fetched and sha256-checked by `scripts/provision-models.sh`, never committed
//! (GroupLens terms: no redistribution).

use std::collections::HashMap;

use zipp_core::error::Result;
use zipp_eval::datasets::movielens::MovieLens;

use crate::graph::{BipartiteGraph, GraphBuilder};

/// The users × movies graph of `data` (module docs).
pub fn graph(data: &MovieLens) -> Result<BipartiteGraph> {
    let mut b = GraphBuilder::new();
    let mut title_count: HashMap<&str, usize> = HashMap::new();
    for m in 0..data.movies() {
        *title_count.entry(data.movie_title(m).unwrap_or("")).or_default() += 1;
    }
    for m in 0..data.movies() {
        let id = data.movie_id(m).unwrap_or_default();
        let name = match data.movie_title(m) {
            Some(t) if title_count[t] == 1 => t.to_string(),
            Some(t) => format!("{t} [m{id}]"),
            None => format!("movie m{id}"),
        };
        let genres = data.movie_genres(m);
        let description = if genres.is_empty() { String::new() } else { format!("Genres: {}.", genres.join(", ")) };
        b.community(&name, &description)?;
    }
    for u in 0..data.users() {
        let user = b.user(&format!("ml100k-{}", data.user_id(u).unwrap_or_default()))?;
        for (movie, stars) in data.rated(u) {
            b.edge(user, movie as u32, stars as f32, None)?;
        }
    }
    b.build()
}
