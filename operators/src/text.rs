//! Text helpers for the data path.

use std::str::SplitWhitespace;

/// The words of `line`: exactly the tokens of [`str::split_whitespace`], found byte by byte when
/// the line is ASCII, which is several times faster than decoding characters.
///
/// ```
/// use snapflow_operators::text::words;
///
/// assert_eq!(words(" to\tbe\u{b}or  ").collect::<Vec<_>>(), ["to", "be", "or"]);
/// assert_eq!(words("non\u{a0}breaking").collect::<Vec<_>>(), ["non", "breaking"]);
/// ```
pub fn words(line: &str) -> Words<'_> {
    Words(if line.is_ascii() {
        Scan::Ascii { line, at: 0 }
    } else {
        Scan::Unicode(line.split_whitespace())
    })
}

/// The iterator of [`words`].
pub struct Words<'a>(Scan<'a>);

enum Scan<'a> {
    /// An ASCII line, scanned from byte `at` on.
    Ascii { line: &'a str, at: usize },
    /// A line with non-ASCII characters, some of which may be whitespace.
    Unicode(SplitWhitespace<'a>),
}

/// Whether an ASCII byte is whitespace for `char::is_whitespace`: space and `\t` through `\r`
/// (which, unlike `u8::is_ascii_whitespace`, includes the vertical tab). One comparison and
/// one bit test, since this runs for every byte of the input.
#[inline]
fn is_space(byte: u8) -> bool {
    const SPACES: u64 = 1 << b' ' | 1 << b'\t' | 1 << b'\n' | 1 << 0x0b | 1 << 0x0c | 1 << b'\r';
    byte <= b' ' && SPACES & (1 << byte) != 0
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        match &mut self.0 {
            Scan::Ascii { line, at } => {
                let bytes = line.as_bytes();
                let mut start = *at;
                while start < bytes.len() && is_space(bytes[start]) {
                    start += 1;
                }
                if start == bytes.len() {
                    *at = start;
                    return None;
                }
                let mut end = start + 1;
                while end < bytes.len() && !is_space(bytes[end]) {
                    end += 1;
                }
                *at = end;
                // On character boundaries: the line is ASCII.
                line.get(start..end)
            }
            Scan::Unicode(split) => split.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn same_tokens_as_split_whitespace(line in "[ a-c\t\n\u{b}\u{c}\r\u{85}\u{a0}\u{3000}é]{0,40}") {
            let expected: Vec<&str> = line.split_whitespace().collect();
            prop_assert_eq!(words(&line).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn ascii_lines_take_the_bytewise_path_with_the_same_tokens(line in "[ a-c\t\n\u{b}\u{c}\r\u{1}\u{1f}!~\u{7f}]{0,60}") {
            let bytewise = matches!(words(&line).0, Scan::Ascii { .. });
            prop_assert!(bytewise);
            let expected: Vec<&str> = line.split_whitespace().collect();
            prop_assert_eq!(words(&line).collect::<Vec<_>>(), expected);
        }
    }

    #[test]
    fn ascii_control_characters_other_than_whitespace_are_word_characters() {
        assert_eq!(
            words("a\u{1}b \u{1f}").collect::<Vec<_>>(),
            ["a\u{1}b", "\u{1f}"]
        );
    }
}
