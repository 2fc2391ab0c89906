//! `LIKE` patterns: `%` matches any run of characters, `_` one character, and the escape
//! character makes the next one literal. Characters compare exactly (the caller only builds
//! patterns for collations where equal means the same characters).

/// One element of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Char(char),
    One,
    Any,
}

/// A compiled `LIKE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LikePattern(Vec<Piece>);

impl LikePattern {
    /// Compiles `pattern` with `escape` (none for `ESCAPE ''`); `None` when the pattern
    /// ends with the escape character.
    pub(crate) fn new(pattern: &str, escape: Option<char>) -> Option<Self> {
        let mut pieces = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            pieces.push(match c {
                c if Some(c) == escape => Piece::Char(chars.next()?),
                '%' => {
                    if pieces.last() == Some(&Piece::Any) {
                        continue;
                    }
                    Piece::Any
                }
                '_' => Piece::One,
                c => Piece::Char(c),
            });
        }
        Some(Self(pieces))
    }

    /// Whether `s` matches the whole pattern.
    pub(crate) fn matches(&self, s: &str) -> bool {
        let text: Vec<char> = s.chars().collect();
        let p = &self.0;
        // Greedy matching with backtracking to the last `%` (linear in practice).
        let (mut ti, mut pi) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            match p.get(pi) {
                Some(Piece::Any) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(Piece::One) => {
                    pi += 1;
                    ti += 1;
                }
                Some(Piece::Char(c)) if *c == text[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|x| *x == Piece::Any)
    }
}
