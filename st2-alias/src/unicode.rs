//! Python's (CPython 3.11, Unicode 14.0) character rules that the matcher must reproduce:
//! `str.isspace()`/`\s`, the class texts used for `\d`, `\s`, `\w`, and the simple case
//! mappings `re` uses for case-insensitive matching (`_sre.unicode_tolower`,
//! `unicode_iscased` and the extra equivalences of `re._casefix`).
//!
//! The category-based classes are written as Unicode property classes, so they follow the
//! Unicode version of the `regex` crate rather than Python's 14.0: characters assigned after
//! Unicode 14 may differ. Everything else is exact.
//!
//! [`lookup_name`] is `unicodedata.lookup` for `\N{name}` escapes, on the `unicode_names2`
//! tables (a newer Unicode than 14.0: names assigned later are accepted where Python 3.11
//! rejects them).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The characters Python's `\s` and `str.isspace()` accept (checked against CPython 3.11):
/// ASCII whitespace, the information separators U+001C–U+001F, U+0085, U+00A0, U+1680,
/// U+2000–U+200A, U+2028, U+2029, U+202F, U+205F and U+3000.
pub(crate) fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Python's `str.strip()` with no argument.
pub(crate) fn py_strip(text: &str) -> &str {
    text.trim_matches(is_py_space)
}

/// Class body (without brackets) for Python's Unicode `\s`.
pub(crate) const SPACE_CLASS: &str = r"\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}";
/// Class body for Python's Unicode `\w`: letters, numbers and `_` (`str.isalnum()` or `_`).
pub(crate) const WORD_CLASS: &str = r"\p{L}\p{N}_";
/// Class body for Python's Unicode `\d`: decimal digits.
pub(crate) const DIGIT_CLASS: &str = r"\p{Nd}";
/// ASCII-mode (`(?a)`) equivalents.
pub(crate) const ASCII_SPACE_CLASS: &str = r"\t-\r ";
pub(crate) const ASCII_WORD_CLASS: &str = r"0-9A-Za-z_";
pub(crate) const ASCII_DIGIT_CLASS: &str = r"0-9";

/// `_sre.unicode_tolower`: the simple lowercase mapping.
pub(crate) fn lower(c: u32) -> u32 {
    let Some(ch) = char::from_u32(c) else {
        return c;
    };
    if ch == '\u{130}' {
        // Full lowercase is "i̇"; the simple mapping Python uses is plain "i".
        return 'i' as u32;
    }
    let mut lowered = ch.to_lowercase();
    match (lowered.next(), lowered.next()) {
        (Some(single), None) => single as u32,
        _ => c,
    }
}

/// `_sre.unicode_iscased`.
pub(crate) fn is_cased(c: u32) -> bool {
    let Some(ch) = char::from_u32(c) else {
        return false;
    };
    if lower(c) != c {
        return true;
    }
    let mut upper = ch.to_uppercase();
    !matches!((upper.next(), upper.next()), (Some(single), None) if single == ch)
}

/// `_sre.ascii_tolower`.
pub(crate) fn ascii_lower(c: u32) -> u32 {
    if (u32::from(b'A')..=u32::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// `_sre.ascii_iscased`.
pub(crate) fn ascii_is_cased(c: u32) -> bool {
    c < 128 && (c as u8).is_ascii_alphabetic()
}

/// `re._casefix._EXTRA_CASES`: lowercase characters that also match other lowercase
/// characters when ignoring case (e.g. `s` and `ſ`), from CPython 3.11.
const EXTRA_CASES: &[(u32, &[u32])] = &[
    (0x69, &[0x131]),
    (0x73, &[0x17f]),
    (0xb5, &[0x3bc]),
    (0x131, &[0x69]),
    (0x17f, &[0x73]),
    (0x345, &[0x3b9, 0x1fbe]),
    (0x390, &[0x1fd3]),
    (0x3b0, &[0x1fe3]),
    (0x3b2, &[0x3d0]),
    (0x3b5, &[0x3f5]),
    (0x3b8, &[0x3d1]),
    (0x3b9, &[0x345, 0x1fbe]),
    (0x3ba, &[0x3f0]),
    (0x3bc, &[0xb5]),
    (0x3c0, &[0x3d6]),
    (0x3c1, &[0x3f1]),
    (0x3c2, &[0x3c3]),
    (0x3c3, &[0x3c2]),
    (0x3c6, &[0x3d5]),
    (0x3d0, &[0x3b2]),
    (0x3d1, &[0x3b8]),
    (0x3d5, &[0x3c6]),
    (0x3d6, &[0x3c0]),
    (0x3f0, &[0x3ba]),
    (0x3f1, &[0x3c1]),
    (0x3f5, &[0x3b5]),
    (0x432, &[0x1c80]),
    (0x434, &[0x1c81]),
    (0x43e, &[0x1c82]),
    (0x441, &[0x1c83]),
    (0x442, &[0x1c84, 0x1c85]),
    (0x44a, &[0x1c86]),
    (0x463, &[0x1c87]),
    (0x1c80, &[0x432]),
    (0x1c81, &[0x434]),
    (0x1c82, &[0x43e]),
    (0x1c83, &[0x441]),
    (0x1c84, &[0x442, 0x1c85]),
    (0x1c85, &[0x442, 0x1c84]),
    (0x1c86, &[0x44a]),
    (0x1c87, &[0x463]),
    (0x1c88, &[0xa64b]),
    (0x1e61, &[0x1e9b]),
    (0x1e9b, &[0x1e61]),
    (0x1fbe, &[0x345, 0x3b9]),
    (0x1fd3, &[0x390]),
    (0x1fe3, &[0x3b0]),
    (0xa64b, &[0x1c88]),
    (0xfb05, &[0xfb06]),
    (0xfb06, &[0xfb05]),
];

fn extra_cases(lowered: u32) -> &'static [u32] {
    EXTRA_CASES
        .binary_search_by_key(&lowered, |(c, _)| *c)
        .map_or(&[], |i| EXTRA_CASES[i].1)
}

/// For each lowercase character, the other characters whose simple lowercase it is.
fn lowercase_sources() -> &'static HashMap<u32, Vec<u32>> {
    static SOURCES: OnceLock<HashMap<u32, Vec<u32>>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        let mut map: HashMap<u32, Vec<u32>> = HashMap::new();
        for ch in (0..=0x10_FFFF_u32).filter_map(char::from_u32) {
            let c = ch as u32;
            let lowered = lower(c);
            if lowered != c {
                map.entry(lowered).or_default().push(c);
            }
        }
        map
    })
}

/// Adds to `out` every character `x` with `lower(x) == lowered`.
fn push_with_lowercase(lowered: u32, out: &mut Vec<u32>) {
    if lower(lowered) == lowered {
        out.push(lowered);
    }
    if let Some(sources) = lowercase_sources().get(&lowered) {
        out.extend(sources);
    }
}

/// The characters a case-insensitive Python pattern accepts for a set whose members lower to
/// `lowered` (Unicode mode): every `x` whose lowercase is in `lowered` or is one of their
/// `_casefix` equivalents.
pub(crate) fn case_insensitive_closure(lowered: impl IntoIterator<Item = u32>) -> Vec<u32> {
    let mut targets: Vec<u32> = Vec::new();
    for c in lowered {
        targets.push(c);
        targets.extend(extra_cases(c));
    }
    targets.sort_unstable();
    targets.dedup();
    let mut out = Vec::new();
    for target in targets {
        push_with_lowercase(target, &mut out);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_whitespace_includes_information_separators() {
        for c in [
            '\u{1c}', '\u{1f}', '\u{a0}', '\u{2028}', '\u{3000}', '\t', ' ',
        ] {
            assert!(is_py_space(c), "{c:?}");
        }
        for c in ['\u{200b}', '\u{180e}', 'a', '\u{feff}'] {
            assert!(!is_py_space(c), "{c:?}");
        }
    }

    #[test]
    fn case_mappings_follow_python() {
        assert_eq!(lower('İ' as u32), 'i' as u32);
        assert!(is_cased('ß' as u32));
        assert!(!is_cased('1' as u32));
        let closure = case_insensitive_closure([lower('s' as u32)]);
        assert_eq!(closure, vec!['S' as u32, 's' as u32, 'ſ' as u32]);
        let closure = case_insensitive_closure([lower('K' as u32)]);
        assert!(closure.contains(&0x212a), "Kelvin sign lowers to k");
    }
}

/// `unicodedata.lookup(name)` as `re` uses it for `\N{name}`: a character name, an
/// algorithmic name (`CJK UNIFIED IDEOGRAPH-4E00`, `HANGUL SYLLABLE GAG`) or a name alias
/// (`LINE FEED`, `NBSP`), in any ASCII case. `unicode_names2` also accepts loose spellings
/// (`em_dash`, `EMDASH`) that Python rejects; a result is kept only if the name, upper-cased,
/// is the character's own name, or (for aliases, which that crate cannot list) is written in
/// the strict form Unicode names have: words of `A`–`Z`, `0`–`9` and inner hyphens separated
/// by single spaces. Named sequences are not characters and give `None`, as in `re`.
pub(crate) fn lookup_name(name: &str) -> Option<char> {
    // No name starts with a hyphen, and unicode_names2 4.0 subtracts past zero on one
    // (`normalise_name` looks at the byte before it): found by the `alias_format` fuzz target.
    if name.starts_with('-') {
        return None;
    }
    let c = unicode_names2::character(name)?;
    let upper = name.to_ascii_uppercase();
    if unicode_names2::name(c).is_some_and(|n| n.to_string() == upper) {
        return Some(c);
    }
    let strict = upper.split(' ').all(|word| {
        !word.is_empty()
            && !word.starts_with('-')
            && !word.ends_with('-')
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
    });
    strict.then_some(c)
}

#[cfg(test)]
mod name_tests {
    use super::lookup_name;

    /// Found by fuzzing (`\N{-2 DA-2}` in a format): a leading hyphen is no name, and
    /// never reaches the crate's overflowing subtraction.
    #[test]
    fn a_leading_hyphen_is_no_name() {
        assert_eq!(lookup_name("-2 DA-2"), None);
        assert_eq!(lookup_name("-"), None);
        assert_eq!(lookup_name("-EM DASH"), None);
    }

    #[test]
    fn names_aliases_and_case_like_python() {
        assert_eq!(lookup_name("EM DASH"), Some('\u{2014}'));
        assert_eq!(lookup_name("em dash"), Some('\u{2014}'));
        assert_eq!(lookup_name("LINE FEED"), Some('\n'));
        assert_eq!(lookup_name("NBSP"), Some('\u{a0}'));
        assert_eq!(lookup_name("CJK UNIFIED IDEOGRAPH-4E00"), Some('\u{4e00}'));
        assert_eq!(lookup_name("HANGUL SYLLABLE GAG"), Some('\u{ac01}'));
        // Loose spellings and named sequences are Python errors.
        assert_eq!(lookup_name("EM  DASH"), None);
        assert_eq!(lookup_name("EM_DASH"), None);
        assert_eq!(lookup_name(" EM DASH"), None);
        assert_eq!(
            lookup_name("LATIN CAPITAL LETTER A WITH MACRON AND GRAVE"),
            None
        );
        assert_eq!(lookup_name("NOT A CHARACTER NAME"), None);
    }
}
