//! "Did you mean …?": pick the closest known word for a misspelt one, in the clap style
//! (Jaro similarity above 0.7, best first).

/// The candidate closest to `word` when it is similar enough to be a likely typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<(f64, &'a str)> = None;
    for candidate in candidates {
        let score = strsim::jaro(word, candidate);
        if score > 0.7 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `help: did you mean `x`?` text, when there is a close candidate.
pub fn did_you_mean_help<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// A list of words in backticks for notes: "`a`, `b` and `c`".
pub fn list_words<'a, I>(words: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    let words: Vec<String> = words.into_iter().map(|w| format!("`{w}`")).collect();
    match words.len() {
        0 => String::new(),
        1 => words[0].clone(),
        n => format!("{} and {}", words[..n - 1].join(", "), words[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_close_words_only() {
        let backends = ["text", "slack", "xmpp", "irc"];
        assert_eq!(did_you_mean("slak", backends), Some("slack"));
        assert_eq!(did_you_mean("xmp", backends), Some("xmpp"));
        assert_eq!(did_you_mean("telegram", backends), None);
        assert_eq!(list_words(["a", "b", "c"]), "`a`, `b` and `c`");
    }
}
