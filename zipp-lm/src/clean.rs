//! From a model's raw answer to a prompt: reasoning blocks, chat chatter ("Sure! Here is…",
//! "Let me know if…"), labels ("Prompt:"), markdown, wrapping quotes and alternatives after
//! the first are stripped, and each removal is recorded so evidence can show it.

/// A cleaned answer and what was removed from it, in the order it was removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cleaned {
    /// One line of text, whitespace collapsed; empty when nothing usable remained.
    pub text: String,
    /// Human-readable notes, e.g. `"think block (212 chars)"`, `"preamble: Sure! Here is…"`.
    pub stripped: Vec<String>,
}

/// Openings of a line that is chatter, not prompt (compared lower-cased).
const PREAMBLE_OPENINGS: &[&str] = &[
    "sure",
    "certainly",
    "of course",
    "absolutely",
    "okay",
    "ok,",
    "ok!",
    "here is",
    "here's",
    "here are",
    "below is",
    "i've rewritten",
    "i have rewritten",
    "as requested",
];
/// Openings of a line that closes the answer with chatter.
const EPILOGUE_OPENINGS: &[&str] = &[
    "let me know",
    "i hope",
    "hope this",
    "feel free",
    "this prompt",
    "this version",
    "this rewrite",
    "note:",
    "explanation:",
    "(note",
    "in this version",
];
/// Labels a model puts before the prompt itself (compared lower-cased, before a colon).
const LABELS: &[&str] = &[
    "prompt",
    "rewritten prompt",
    "new prompt",
    "final prompt",
    "image prompt",
    "personalized prompt",
    "personalised prompt",
    "rewrite",
    "answer",
    "output",
];

/// Cleans a raw model answer (see the module documentation).
pub fn clean(raw: &str) -> Cleaned {
    let mut stripped = Vec::new();
    let text = strip_think(raw, &mut stripped);
    let mut lines: Vec<String> = Vec::new();
    let mut fences = 0;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fences += 1;
            continue;
        }
        lines.push(line.trim().to_string());
    }
    if fences > 0 {
        stripped.push("code fence".into());
    }
    // Leading blank lines and chatter.
    while let Some(first) = lines.first() {
        if first.is_empty() {
            lines.remove(0);
        } else if is_preamble(first) {
            stripped.push(format!("preamble: {}", shorten(first)));
            lines.remove(0);
        } else {
            break;
        }
    }
    // The first paragraph is the answer; what follows is an alternative or an epilogue.
    let end = lines.iter().position(String::is_empty).unwrap_or(lines.len());
    let rest: Vec<&String> = lines[end..].iter().filter(|l| !l.is_empty()).collect();
    if let Some(first) = rest.first() {
        let what = if is_epilogue(first) { "epilogue" } else { "after the first paragraph" };
        stripped.push(format!("{what}: {}", shorten(first)));
    }
    let mut para: Vec<String> = lines[..end].to_vec();
    while para.last().is_some_and(|l| is_epilogue(l)) {
        let l = para.pop().unwrap_or_default();
        stripped.push(format!("epilogue: {}", shorten(&l)));
    }
    let mut joined = para.join(" ");
    joined = strip_markdown(&joined, &mut stripped);
    joined = strip_label(&joined, &mut stripped);
    joined = strip_quotes(&joined, &mut stripped);
    let mut text = joined.split_whitespace().collect::<Vec<_>>().join(" ");
    text = cut_repetition(&text, &mut stripped);
    text = drop_self_talk(&text, &mut stripped);
    Cleaned { text, stripped }
}

/// Words in a window that, seen twice, mark a degenerate loop (small models repeat
/// themselves under greedy decoding).
const REPEAT_WINDOW: usize = 6;

/// `text` up to the second occurrence of its first repeated run of [`REPEAT_WINDOW`] words.
fn cut_repetition(text: &str, stripped: &mut Vec<String>) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut seen = std::collections::HashMap::new();
    for start in 0..words.len().saturating_sub(REPEAT_WINDOW - 1) {
        let window: Vec<String> = words[start..start + REPEAT_WINDOW].iter().map(|w| w.to_lowercase()).collect();
        if let Some(&first) = seen.get(&window) {
            // Only a repeat that does not overlap its first occurrence is a loop.
            if start >= first + REPEAT_WINDOW {
                stripped.push(format!("repetition ({} words from word {})", words.len() - start, start + 1));
                return words[..start].join(" ").trim_end_matches([',', ';']).to_string();
            }
        } else {
            seen.insert(window, start);
        }
    }
    text.to_string()
}

/// First-person words that open a sentence about the speaker ("I'm a paper artist…"): an
/// image prompt never talks about its writer, a roleplaying model that restates its persona
/// does.
const SELF_OPENINGS: &[&str] = &["i", "i'm", "i’m", "im", "i've", "i’ve", "i'd", "i'll", "my", "me", "as"];

/// `text` without its sentences that open with a first-person word ([`SELF_OPENINGS`]; "as"
/// only as "as a/an …", the "As a painter, I…" opening).
fn drop_self_talk(text: &str, stripped: &mut Vec<String>) -> String {
    let mut kept = Vec::new();
    for sentence in text.split_inclusive(['.', '!', '?']) {
        let words: Vec<String> = sentence
            .split_whitespace()
            .take(2)
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != '’').to_lowercase())
            .collect();
        let first = words.first().map(String::as_str).unwrap_or("");
        let second = words.get(1).map(String::as_str).unwrap_or("");
        let is_self = SELF_OPENINGS.contains(&first) && (first != "as" || matches!(second, "a" | "an"));
        if is_self {
            stripped.push(format!("self-description: {}", shorten(sentence.trim())));
        } else {
            kept.push(sentence);
        }
    }
    kept.concat().trim().to_string()
}

/// At most `max_words` whitespace-separated words of `text`, joined by single spaces; a
/// trailing comma or semicolon left by the cut is dropped.
pub fn limit_words(text: &str, max_words: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().take(max_words).collect();
    let out = words.join(" ");
    out.trim_end_matches([',', ';']).to_string()
}

/// `raw` without its `<think>…</think>` blocks (an unterminated one runs to the end).
pub fn clean_think(raw: &str) -> String {
    strip_think(raw, &mut Vec::new())
}

fn strip_think(raw: &str, stripped: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut rest = raw;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(open) = lower.find("<think>") else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..open]);
        match lower[open..].find("</think>") {
            Some(close) => {
                stripped.push(format!("think block ({} chars)", close + "</think>".len()));
                rest = &rest[open + close + "</think>".len()..];
            }
            None => {
                stripped.push(format!("unterminated think block ({} chars)", rest.len() - open));
                break;
            }
        }
    }
    out
}

fn starts_with_any(line: &str, openings: &[&str]) -> bool {
    let lower = line.to_lowercase();
    let lower = lower.trim_start_matches(['*', '#', '>', '_', ' ']);
    openings.iter().any(|o| lower.starts_with(o))
}

fn is_preamble(line: &str) -> bool {
    // "Sure! Here is …" and "Here's a rewritten prompt:" (one short line ending in a colon).
    starts_with_any(line, PREAMBLE_OPENINGS)
        || (line.trim_end_matches(['*', ' ']).ends_with(':') && line.split_whitespace().count() <= 12)
}

fn is_epilogue(line: &str) -> bool {
    starts_with_any(line, EPILOGUE_OPENINGS)
}

fn strip_markdown(text: &str, stripped: &mut Vec<String>) -> String {
    let mut t = text.trim().to_string();
    let before = t.clone();
    // A heading, bullet, number or quote marker in front.
    loop {
        let trimmed = t.trim_start();
        let next = if let Some(r) = trimmed.strip_prefix('#') {
            r.trim_start_matches('#')
        } else if let Some(r) = trimmed.strip_prefix("- ").or_else(|| trimmed.strip_prefix("* ")) {
            r
        } else if let Some(r) = trimmed.strip_prefix('>') {
            r
        } else if let Some(r) = numbered(trimmed) {
            r
        } else {
            break;
        };
        t = next.trim_start().to_string();
    }
    let t = t.replace("**", "").replace("__", "").replace('`', "");
    if t != before {
        stripped.push("markdown".into());
    }
    t
}

/// "1. rest" / "2) rest" → "rest".
fn numbered(s: &str) -> Option<&str> {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits > 3 {
        return None;
    }
    s[digits..].strip_prefix(". ").or_else(|| s[digits..].strip_prefix(") "))
}

fn strip_label(text: &str, stripped: &mut Vec<String>) -> String {
    if let Some((label, rest)) = text.split_once(':') {
        let l = label.trim().trim_matches(['*', '_']).to_lowercase();
        if LABELS.contains(&l.as_str()) && !rest.trim().is_empty() {
            stripped.push(format!("label: {}:", label.trim()));
            return rest.trim().to_string();
        }
    }
    text.to_string()
}

fn strip_quotes(text: &str, stripped: &mut Vec<String>) -> String {
    let mut t = text.trim();
    let mut any = false;
    for (open, close) in [('"', '"'), ('“', '”'), ('\'', '\''), ('‘', '’'), ('«', '»')] {
        if t.chars().count() >= 2 && t.starts_with(open) && t.ends_with(close) {
            let inner = &t[open.len_utf8()..t.len() - close.len_utf8()];
            // Only quotes that wrap the whole text: no quote of the same kind inside.
            if !inner.contains(open) && !inner.contains(close) {
                t = inner.trim();
                any = true;
            }
        }
    }
    if any {
        stripped.push("wrapping quotes".into());
    }
    t.to_string()
}

fn shorten(line: &str) -> String {
    const MAX: usize = 40;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(raw: &str) -> String {
        clean(raw).text
    }

    #[test]
    fn a_clean_answer_is_left_alone() {
        let c = clean("a teal door in Lisbon, morning light, film grain");
        assert_eq!(c.text, "a teal door in Lisbon, morning light, film grain");
        assert!(c.stripped.is_empty());
    }

    #[test]
    fn chatter_labels_quotes_and_markdown_go() {
        let raw = "Sure! Here is the rewritten prompt:\n\n**\"A teal door in Lisbon, warm morning light\"**\n\nLet me know if you want changes.";
        let c = clean(raw);
        assert_eq!(c.text, "A teal door in Lisbon, warm morning light");
        assert_eq!(
            c.stripped,
            [
                "preamble: Sure! Here is the rewritten prompt:",
                "epilogue: Let me know if you want changes.",
                "markdown",
                "wrapping quotes"
            ]
        );
        assert_eq!(text("Prompt: a red bicycle at dusk"), "a red bicycle at dusk");
        assert_eq!(text("Here's my version:\n“paper clouds over origami birds”"), "paper clouds over origami birds");
        assert_eq!(text("```\na cat on a mat\n```"), "a cat on a mat");
        assert_eq!(text("1. a cat on a mat\n\n2. a dog on a log"), "a cat on a mat");
        assert_eq!(text("# A cat\non a mat"), "A cat on a mat");
    }

    #[test]
    fn think_blocks_go_even_unterminated() {
        let c = clean("<think>The user wants a door.\nOk.</think>\na teal door");
        assert_eq!(c.text, "a teal door");
        assert!(c.stripped[0].starts_with("think block"), "{:?}", c.stripped);
        assert_eq!(text("a door <THINK>hmm"), "a door");
        assert_eq!(text("<think>only thoughts</think>"), "");
    }

    #[test]
    fn quotes_inside_the_prompt_stay() {
        assert_eq!(text("a sign that says \"open\""), "a sign that says \"open\"");
        assert_eq!(text("\"open\" and \"closed\" signs"), "\"open\" and \"closed\" signs");
        assert_eq!(text("the artist's studio"), "the artist's studio");
    }

    #[test]
    fn a_colon_inside_a_prompt_is_not_a_label() {
        assert_eq!(text("ratio 3:2, a quiet harbour"), "ratio 3:2, a quiet harbour");
        assert_eq!(text("mood: calm, a quiet harbour"), "mood: calm, a quiet harbour");
    }

    #[test]
    fn loops_are_cut_and_self_talk_dropped() {
        let looped = "I'm a paper artist in Kyoto. I love pastel light, quiet harbours and film grain. I'm a paper artist in Kyoto. I love";
        let c = clean(looped);
        assert_eq!(c.text, "");
        assert_eq!(c.stripped[0], "repetition (8 words from word 16)");
        assert!(c.stripped[1].starts_with("self-description: I'm a paper artist"), "{:?}", c.stripped);
        assert_eq!(
            text("A teal door, soft light. I love this. As a painter, I add grain. As dusk falls, gulls circle."),
            "A teal door, soft light. As dusk falls, gulls circle."
        );
        // A repeated phrase shorter than the window, or overlapping itself, is not a loop.
        assert_eq!(text("red red red red red red red red"), "red red red red red red red red");
        assert_eq!(text("rain, rain, soft rain on paper clouds"), "rain, rain, soft rain on paper clouds");
        assert_eq!(text("a b c d e f x a b c d e f y"), "a b c d e f x");
    }

    #[test]
    fn words_are_limited() {
        assert_eq!(limit_words("a b, c d", 2), "a b");
        assert_eq!(limit_words("  a   b ", 5), "a b");
        assert_eq!(limit_words("a b", 0), "");
    }
}
