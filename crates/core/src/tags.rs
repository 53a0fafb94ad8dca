//! Attribution tags: the one rule for what a tag may be, shared by the request parser, the
//! key store, the config and the spend reports.

/// Most tags one call may carry.
pub const MAX_TAGS: usize = 32;
/// The longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;

/// Why `tag` (already trimmed) is not a valid attribution tag, if it is not: 1 to
/// [`MAX_TAG_LEN`] bytes with no control characters.
pub fn tag_problem(tag: &str) -> Option<String> {
    if tag.is_empty() || tag.len() > MAX_TAG_LEN || tag.chars().any(char::is_control) {
        Some(format!(
            "each tag must be 1 to {MAX_TAG_LEN} printable characters"
        ))
    } else {
        None
    }
}

/// Append `more` to `tags`, skipping repeats and invalid tags, up to [`MAX_TAGS`]: how
/// lower-precedence tag sources (a key's default tags, a model group's tags) join the
/// request's own.
pub fn merge_tags<'a>(tags: &mut Vec<String>, more: impl IntoIterator<Item = &'a String>) {
    for t in more {
        let t = t.trim();
        if tags.len() >= MAX_TAGS {
            break;
        }
        if tag_problem(t).is_none() && !tags.iter().any(|o| o == t) {
            tags.push(t.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_keeps_order_skips_repeats_and_bad_tags_and_stops_at_the_cap() {
        let mut tags = vec!["a".to_owned()];
        let more: Vec<String> = ["a", " b ", "", "c\n", "bad\u{7}", "d"]
            .map(String::from)
            .to_vec();
        merge_tags(&mut tags, &more);
        assert_eq!(tags, ["a", "b", "c", "d"]);
        let many: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        merge_tags(&mut tags, &many);
        assert_eq!(tags.len(), MAX_TAGS);
        assert_eq!(tags[4], "t0");
        assert!(tag_problem(&"x".repeat(MAX_TAG_LEN + 1)).is_some());
        assert!(tag_problem(&"x".repeat(MAX_TAG_LEN)).is_none());
    }
}
