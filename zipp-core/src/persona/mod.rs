//! Personas (SPEC §2): one person's conditioning as plain, editable data.
//!
//! A [`Persona`] is an id plus optional parts: natural-language `summary`, `demographics`,
//! `interests`, `traits`, ViPer-style liked/disliked `preferences`, a `memory` of captioned
//! [`Post`]s whose visual `elements` are grouped by category, and `examples` of prompts the
//! person wrote before.
//!
//! ## Format
//! One persona is a JSON object; a collection is JSONL (one object per line, blank lines
//! allowed). Every object carries `schema_version` (this build reads and writes
//! [`SCHEMA_VERSION`]; a missing version is read as the current one).
//!
//! ## Strict by design
//! Loading is **strict**: an unknown field is an error, not ignored. A typo such as
//! `"sumary"` would otherwise load a persona without its summary, which is silent data
//! loss. Every error is located: file, JSONL line, column and field path
//! (`memory[3].caption`). Nothing is dropped or repaired silently: empty captions, empty
//! elements, duplicate persona ids (in a collection) and duplicate post ids are errors.
//!
//! ```
//! use zipp_core::Persona;
//! let p = Persona::from_json_str(r#"{"schema_version": 1, "id": "ana",
//!     "summary": "Street photographer in Lisbon.",
//!     "memory": [{"caption": "Tram at dusk", "elements": {"lighting": ["dusk glow"]}}]}"#)?;
//! assert_eq!(p.memory[0].elements["lighting"], ["dusk glow"]);
//! # Ok::<(), zipp_core::Error>(())
//! ```

mod io;

pub use io::{read_jsonl, write_jsonl, JsonlReader};

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Location, Result};

/// The persona schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

fn current_version() -> u32 {
    SCHEMA_VERSION
}

/// One person's conditioning. Only `id` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    #[serde(default = "current_version")]
    pub schema_version: u32,
    pub id: String,
    /// Natural-language persona text (first or third person).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// Key → value (age band, gender, country, language, profession …). Only what the
    /// source evidences; never invented.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "unique_keys")]
    pub demographics: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interests: Vec<String>,
    /// Affective / personality traits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<String>,
    #[serde(default, skip_serializing_if = "Preferences::is_empty")]
    pub preferences: Preferences,
    /// The person's posts: their gallery described in text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory: Vec<Post>,
    /// Prompts the person wrote before (for few-shot rewriting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// ViPer-style visual preferences.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub liked: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disliked: Vec<String>,
}

/// Reads a JSON object into a map, rejecting a repeated key: serde's own map impl keeps the
/// last value and silently drops the others (`{"lighting": [..], "lighting": [..]}`).
fn unique_keys<'de, D, V>(de: D) -> std::result::Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object with unique keys")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    de.deserialize_map(Unique(std::marker::PhantomData))
}

impl Preferences {
    pub fn is_empty(&self) -> bool {
        self.liked.is_empty() && self.disliked.is_empty()
    }
}

/// One post of a persona's memory: a caption and its visual elements by category.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Post {
    /// Optional stable id (unique within the persona when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub caption: String,
    /// Category name (`foreground`, `lighting`, `palette` …) → elements, in the author's
    /// order. Categories are open: any non-empty name is allowed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "unique_keys")]
    pub elements: BTreeMap<String, Vec<String>>,
}

impl Post {
    /// A post with a caption and no elements.
    pub fn new(caption: impl Into<String>) -> Self {
        Post { caption: caption.into(), ..Post::default() }
    }

    /// Adds `elements` under `category` (builder style).
    pub fn with(mut self, category: &str, elements: &[&str]) -> Self {
        self.elements.entry(category.to_string()).or_default().extend(elements.iter().map(|e| e.to_string()));
        self
    }

    /// Number of elements in `category`.
    pub fn count(&self, category: &str) -> usize {
        self.elements.get(category).map_or(0, Vec::len)
    }
}

impl Persona {
    /// An empty persona with an id.
    pub fn new(id: impl Into<String>) -> Self {
        Persona {
            schema_version: SCHEMA_VERSION,
            id: id.into(),
            summary: String::new(),
            demographics: BTreeMap::new(),
            interests: Vec::new(),
            traits: Vec::new(),
            preferences: Preferences::default(),
            memory: Vec::new(),
            examples: Vec::new(),
        }
    }

    /// Parses and validates one persona from a JSON object.
    pub fn from_json_str(json: &str) -> Result<Persona> {
        io::parse_one(json, &Location::default())
    }

    /// Reads one persona from a `.json` file.
    pub fn from_json_file(path: impl AsRef<std::path::Path>) -> Result<Persona> {
        let path = path.as_ref();
        let text = io::read_to_string(path)?;
        io::parse_one(&text, &Location { file: Some(path.to_path_buf()), ..Location::default() })
    }

    /// Serialises to JSON after validating (an invalid persona is never written).
    pub fn to_json_string(&self, pretty: bool) -> Result<String> {
        self.validate()?;
        let out = if pretty { serde_json::to_string_pretty(self) } else { serde_json::to_string(self) };
        // Serialising plain strings, maps and vectors cannot fail.
        Ok(out.expect("persona serialisation is infallible"))
    }

    /// Writes one persona to a `.json` file (pretty-printed).
    pub fn save_json(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let path = path.as_ref();
        let text = self.to_json_string(true)?;
        std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
    }

    /// Checks the invariants loading enforces; call it after editing a persona by hand.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: String, msg: &str| Err(Error::schema(Location::field(field), msg));
        if self.schema_version != SCHEMA_VERSION {
            return Err(Error::schema(
                Location::field("schema_version"),
                format!(
                    "unsupported schema version {} (this build reads version {SCHEMA_VERSION})",
                    self.schema_version
                ),
            ));
        }
        if self.id.trim().is_empty() {
            return bad("id".into(), "persona id must not be empty");
        }
        for (k, v) in &self.demographics {
            if k.trim().is_empty() {
                return bad("demographics".into(), "demographic keys must not be empty");
            }
            if v.trim().is_empty() {
                return bad(format!("demographics.{k}"), "demographic values must not be empty");
            }
        }
        for (name, list) in [
            ("interests", &self.interests),
            ("traits", &self.traits),
            ("preferences.liked", &self.preferences.liked),
            ("preferences.disliked", &self.preferences.disliked),
            ("examples", &self.examples),
        ] {
            if let Some(i) = list.iter().position(|s| s.trim().is_empty()) {
                return bad(format!("{name}[{i}]"), "entries must not be empty");
            }
        }
        let mut post_ids = HashSet::new();
        for (i, post) in self.memory.iter().enumerate() {
            if post.caption.trim().is_empty() {
                return bad(format!("memory[{i}].caption"), "caption must not be empty");
            }
            if let Some(id) = &post.id {
                if id.trim().is_empty() {
                    return bad(format!("memory[{i}].id"), "post id must not be empty when given");
                }
                if !post_ids.insert(id.as_str()) {
                    return bad(format!("memory[{i}].id"), &format!("duplicate post id `{id}`"));
                }
            }
            for (cat, elems) in &post.elements {
                if cat.trim().is_empty() {
                    return bad(format!("memory[{i}].elements"), "category names must not be empty");
                }
                if let Some(j) = elems.iter().position(|e| e.trim().is_empty()) {
                    return bad(format!("memory[{i}].elements.{cat}[{j}]"), "elements must not be empty");
                }
            }
        }
        Ok(())
    }

    /// The persona as one piece of text: summary, then demographics, then interests.
    /// This is what `PersonaOnly` appends and what the VPTT PA score embeds (SPEC §4).
    pub fn persona_text(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if !self.summary.trim().is_empty() {
            parts.push(self.summary.trim().to_string());
        }
        if !self.demographics.is_empty() {
            let d: Vec<String> =
                self.demographics.iter().map(|(k, v)| format!("{}: {}", k.replace('_', " "), v)).collect();
            parts.push(d.join(", "));
        }
        if !self.interests.is_empty() {
            parts.push(format!("interests: {}", self.interests.join(", ")));
        }
        parts.join("; ")
    }

    /// Every category that occurs in the memory, sorted.
    pub fn categories(&self) -> Vec<&str> {
        let mut set: Vec<&str> = self.memory.iter().flat_map(|p| p.elements.keys().map(String::as_str)).collect();
        set.sort_unstable();
        set.dedup();
        set
    }
}

#[cfg(test)]
mod tests;
