//! Which words of a base prompt a rewrite must keep (SPEC §5): ViPer's critique of LLM
//! rewriting is that "paper clouds, brown origami birds" came back without "paper" and
//! "origami". Without a part-of-speech tagger, every content word counts: the prompt's words
//! less English function words, compared by a light stem (lower case, plural endings off), so
//! "birds" is kept by "bird" and "cities" by "city". Over-strict by design: a rewrite may
//! drop a word the user did not care about, and is then repaired or falls back, never the
//! reverse.

/// English function words: articles, prepositions, conjunctions, pronouns, auxiliaries.
pub(crate) const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "of", "in", "on", "at", "to", "for", "with", "and", "or", "but", "nor", "by", "from", "into",
    "onto", "over", "under", "as", "is", "are", "was", "were", "be", "been", "being", "am", "this", "that", "these",
    "those", "it", "its", "their", "his", "her", "my", "your", "our", "some", "any", "very", "while", "near", "up",
    "down", "out", "off", "about", "above", "below", "between", "through", "during", "without", "within", "across",
    "behind", "beside", "against", "around", "among", "along", "so", "too", "than", "then", "there", "here", "who",
    "whom", "which", "what", "where", "when", "how", "he", "she", "they", "them", "we", "us", "i", "me", "you", "has",
    "have", "had", "do", "does", "did", "not", "no", "just", "also", "only", "each", "every", "all", "both", "either",
    "neither", "one's", "s",
];

/// The content words of `prompt`, lower-cased, distinct (by stem), in order of appearance.
pub fn subjects(prompt: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    words(prompt)
        .filter(|w| !FUNCTION_WORDS.contains(&w.as_str()) && w.chars().count() > 1)
        .filter(|w| seen.insert(stem(w)))
        .collect()
}

/// The subjects of `base` (see [`subjects`]) that `rewrite` does not contain, by stem.
pub fn missing(base: &str, rewrite: &str) -> Vec<String> {
    let have: std::collections::HashSet<String> = words(rewrite).map(|w| stem(&w)).collect();
    subjects(base).into_iter().filter(|w| !have.contains(&stem(w))).collect()
}

/// The content words of `rewrite` (see [`subjects`]) that `base` does not contain, by stem:
/// what a rewrite added. Empty when the model only echoed or trimmed the prompt.
pub fn added(base: &str, rewrite: &str) -> Vec<String> {
    let have: std::collections::HashSet<String> = words(base).map(|w| stem(&w)).collect();
    subjects(rewrite).into_iter().filter(|w| !have.contains(&stem(w))).collect()
}

/// Lower-cased words: runs of letters, digits and inner apostrophes ("artist's").
pub(crate) fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|w| w.trim_matches(['\'', '’']).to_lowercase().replace('’', "'"))
        .filter(|w| !w.is_empty())
}

/// A light English stem: possessive and plural endings off ("birds", "bird's" → "bird";
/// "cities" → "city"; "boxes", "churches" → "box", "church"; "glass" stays).
pub(crate) fn stem(word: &str) -> String {
    let w = word.strip_suffix("'s").unwrap_or(word);
    if let Some(base) = w.strip_suffix("ies").filter(|b| b.len() >= 2) {
        return format!("{base}y");
    }
    for suffix in ["sses", "shes", "ches", "xes", "zes"] {
        if let Some(base) = w.strip_suffix(suffix) {
            return format!("{base}{}", &suffix[..suffix.len() - 2]);
        }
    }
    match w.strip_suffix('s') {
        Some(base) if base.len() >= 2 && !base.ends_with('s') && !base.ends_with('u') && !base.ends_with('i') => {
            base.to_string()
        }
        _ => w.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vipers_example_is_caught() {
        let base = "paper clouds, brown origami birds";
        assert_eq!(subjects(base), ["paper", "clouds", "brown", "origami", "birds"]);
        assert_eq!(missing(base, "soft clouds and brown birds drifting at dusk"), ["paper", "origami"]);
        assert!(missing(base, "Brown origami BIRD under paper cloud, pastel light").is_empty());
        assert_eq!(added(base, "Brown origami BIRD under paper cloud, pastel light"), ["pastel", "light"]);
        assert!(added(base, "Paper cloud, brown origami bird.").is_empty(), "an echo adds nothing");
    }

    #[test]
    fn function_words_and_duplicates_do_not_count() {
        assert_eq!(subjects("a cat on the mat with a cat's toy"), ["cat", "mat", "toy"]);
        assert!(subjects("a the of in").is_empty());
        assert!(missing("", "anything").is_empty());
    }

    #[test]
    fn stems_match_plurals_not_other_words() {
        for (a, b) in [
            ("birds", "bird"),
            ("cities", "city"),
            ("boxes", "box"),
            ("churches", "church"),
            ("glasses", "glass"),
            ("bird's", "bird"),
        ] {
            assert_eq!(stem(a), stem(b), "{a} ~ {b}");
        }
        for w in ["glass", "bus", "octopus", "taxi"] {
            assert_eq!(stem(w), w, "{w} keeps its s");
        }
        assert_ne!(stem("car"), stem("card"));
        assert_eq!(missing("a red car", "a red card"), ["car"]);
    }

    #[test]
    fn unicode_and_numbers_are_words() {
        assert_eq!(subjects("Café in Zürich, 1920s"), ["café", "zürich", "1920s"]);
        assert!(missing("Café in Zürich", "zürich café at noon").is_empty());
    }
}
