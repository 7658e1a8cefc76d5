//! Stop sequences on text that grows piece by piece, shared by the backends: what part of
//! the text so far can be streamed without ever having to take it back.

/// Bytes of `text` that later pieces cannot change: all of it but a trailing U+FFFD (a
/// character whose bytes are not all decoded yet) and the longest suffix that is a proper
/// prefix of a stop sequence.
pub(crate) fn stable_len(text: &str, stop: &[String]) -> usize {
    let mut end = text.len();
    if text.ends_with('\u{FFFD}') {
        end -= '\u{FFFD}'.len_utf8();
    }
    let mut hold = 0;
    for s in stop {
        for (i, _) in s.char_indices().skip(1) {
            if text[..end].ends_with(&s[..i]) {
                hold = hold.max(i);
            }
        }
    }
    end - hold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_text_holds_back_partial_characters_and_stop_prefixes() {
        let stop = vec!["\n\n".to_string(), "END".to_string()];
        assert_eq!(stable_len("abc", &stop), 3);
        assert_eq!(stable_len("abc\n", &stop), 3);
        assert_eq!(stable_len("abcEN", &stop), 3);
        assert_eq!(stable_len("abc\u{FFFD}", &stop), 3);
        assert_eq!(stable_len("abc", &[]), 3);
    }
}
