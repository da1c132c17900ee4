//! Answer extraction and normalisation shared by the environments.
//!
//! Hand-written scanners, bounded in work, that never panic on arbitrary UTF-8. Tags are
//! matched ASCII-case-insensitively. Inputs longer than [`MAX_COMPLETION_CHARS`] bytes
//! are cut there before parsing (the generation cap keeps honest completions far below).

/// Opening answer tag.
pub const SOLUTION_OPEN: &str = "<SOLUTION>";
/// Closing answer tag.
pub const SOLUTION_CLOSE: &str = "</SOLUTION>";
/// Opening reasoning tag.
pub const THINK_OPEN: &str = "<start_working_out>";
/// Closing reasoning tag.
pub const THINK_CLOSE: &str = "</end_working_out>";
/// Longest completion text (bytes) a parser looks at.
pub const MAX_COMPLETION_CHARS: usize = 1 << 20;
/// Longest text (bytes) [`Rational::parse`] reads as a number; anything longer is not a
/// number. Numbers have at most 30 digits a part, so every honest answer is far shorter;
/// the bound keeps the recursion over `a/b` and `\frac{a}{b}` shallow (one level per two
/// bytes at most) and its work small: `1/1/1/…` recursed once per slash, normalising the
/// rest each time (quadratic time and memory, then a stack overflow; docs/reliability.md).
pub const MAX_NUMBER_CHARS: usize = 512;

/// The completion with a trailing end-of-sequence marker removed.
///
/// The reference counted the decoded EOS text (`<|im_end|>`, `</s>`) as trailing text, so
/// an EOS-terminated answer could never be correct; here it is removed first (together
/// with whitespace before it), at most once.
pub fn strip_eos<'a>(completion: &'a str, eos_markers: &[&str]) -> &'a str {
    let text = cut(completion);
    for marker in eos_markers.iter().filter(|m| !m.is_empty()) {
        if let Some(rest) = text.trim_end().strip_suffix(marker) {
            return rest;
        }
    }
    text
}

fn cut(s: &str) -> &str {
    if s.len() <= MAX_COMPLETION_CHARS {
        return s;
    }
    let mut end = MAX_COMPLETION_CHARS;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Byte offsets of every ASCII-case-insensitive occurrence of `needle` in `hay`.
pub fn find_all_ci(hay: &str, needle: &str) -> Vec<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return Vec::new();
    }
    (0..=h.len() - n.len())
        .filter(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
        .collect()
}

/// The parts of a completion the rewards look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged<'a> {
    /// Content of the last `<SOLUTION>…</SOLUTION>` block, if any.
    pub solution: Option<&'a str>,
    /// Number of `<SOLUTION>` and `</SOLUTION>` tags.
    pub open_tags: usize,
    /// Number of closing tags.
    pub close_tags: usize,
    /// Reasoning tags present (closing tag, with the opening one before it if any).
    pub has_thinking: bool,
    /// Non-whitespace characters after the last closing answer tag (all characters of
    /// the text when there is none).
    pub trailing: usize,
}

/// Splits a completion (EOS already stripped) into its answer and tag facts.
pub fn tagged(text: &str) -> Tagged<'_> {
    let text = cut(text);
    let opens = find_all_ci(text, SOLUTION_OPEN);
    let closes = find_all_ci(text, SOLUTION_CLOSE);
    // The last closing tag with an opening tag before it.
    let block = closes.iter().rev().find_map(|&c| {
        opens
            .iter()
            .rev()
            .find(|&&o| o + SOLUTION_OPEN.len() <= c)
            .map(|&o| (o + SOLUTION_OPEN.len(), c))
    });
    let solution = block.map(|(s, e)| &text[s..e]);
    let after = block.map_or(text, |(_, e)| &text[e + SOLUTION_CLOSE.len()..]);
    Tagged {
        solution,
        open_tags: opens.len(),
        close_tags: closes.len(),
        has_thinking: !find_all_ci(text, THINK_CLOSE).is_empty(),
        trailing: after.chars().filter(|c| !c.is_whitespace()).count(),
    }
}

/// Content of the last `\boxed{…}` (or `\fbox{…}`) with balanced braces.
pub fn last_boxed(text: &str) -> Option<&str> {
    let text = cut(text);
    let starts: Vec<usize> = find_all_ci(text, "\\boxed{")
        .into_iter()
        .map(|i| i + "\\boxed{".len())
        .chain(
            find_all_ci(text, "\\fbox{")
                .into_iter()
                .map(|i| i + "\\fbox{".len()),
        )
        .collect();
    let start = *starts.iter().max()?;
    let mut depth = 1usize;
    for (i, b) in text.as_bytes()[start..].iter().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..start + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The last number in the text (`-?digits[,digits][.digits]`, or `a/b`), commas removed.
pub fn last_number(text: &str) -> Option<String> {
    let b = cut(text).as_bytes();
    let mut end = b.len();
    while end > 0 && !b[end - 1].is_ascii_digit() {
        end -= 1;
    }
    if end == 0 {
        return None;
    }
    let mut start = end;
    while start > 0 && (b[start - 1].is_ascii_digit() || matches!(b[start - 1], b',' | b'.' | b'/'))
    {
        start -= 1;
    }
    while start < end && !b[start].is_ascii_digit() {
        start += 1;
    }
    if start > 0 && b[start - 1] == b'-' {
        start -= 1;
    }
    let s: String = b[start..end]
        .iter()
        .map(|&c| c as char)
        .filter(|&c| c != ',')
        .collect();
    Some(s)
}

/// An exact rational number `num/den` in lowest terms, `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    /// Numerator.
    pub num: i128,
    /// Denominator (positive).
    pub den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

impl Rational {
    /// `num/den` reduced; `None` when `den = 0` or on overflow.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        let sign = if den < 0 { -1 } else { 1 };
        Some(Self {
            num: num.checked_div(g)?.checked_mul(sign)?,
            den: den.checked_div(g)?.checked_abs()?,
        })
    }

    /// An integer.
    pub fn int(n: i128) -> Self {
        Self { num: n, den: 1 }
    }

    /// `self + o`.
    pub fn checked_add(self, o: Self) -> Option<Self> {
        Self::new(
            self.num
                .checked_mul(o.den)?
                .checked_add(o.num.checked_mul(self.den)?)?,
            self.den.checked_mul(o.den)?,
        )
    }

    /// `self − o`.
    pub fn checked_sub(self, o: Self) -> Option<Self> {
        self.checked_add(Self::new(o.num.checked_neg()?, o.den)?)
    }

    /// `self × o`.
    pub fn checked_mul(self, o: Self) -> Option<Self> {
        Self::new(self.num.checked_mul(o.num)?, self.den.checked_mul(o.den)?)
    }

    /// `self ÷ o` (`None` for division by zero).
    pub fn checked_div(self, o: Self) -> Option<Self> {
        Self::new(self.num.checked_mul(o.den)?, self.den.checked_mul(o.num)?)
    }

    /// Parses `12`, `-3`, `0.25`, `1,234`, `3/4`, `\frac{3}{4}`, `-\frac34`-free forms.
    /// Text longer than [`MAX_NUMBER_CHARS`] bytes is not a number.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() > MAX_NUMBER_CHARS {
            return None;
        }
        let s = normalize(s);
        let s = s.strip_suffix('.').unwrap_or(&s);
        if let Some(rest) = s.strip_prefix("\\frac{") {
            let (a, rest) = rest.split_once("}{")?;
            let b = rest.strip_suffix('}')?;
            return Self::parse(a)?.checked_div(Self::parse(b)?);
        }
        if let Some(rest) = s.strip_prefix("-\\frac{") {
            let v = Self::parse(&format!("\\frac{{{rest}"))?;
            return Self::new(-v.num, v.den);
        }
        if let Some((a, b)) = s.split_once('/') {
            return Self::parse(a)?.checked_div(Self::parse(b)?);
        }
        let (neg, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || int.len() + frac.len() > 30
        {
            return None;
        }
        let num: i128 = format!("{int}{frac}").parse().ok()?;
        let den = 10i128.checked_pow(frac.len() as u32)?;
        Self::new(if neg { -num } else { num }, den)
    }
}

impl std::fmt::Display for Rational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Normalises an answer string: removes whitespace, `$`, `\left`/`\right`, LaTeX spacing
/// (`\,` `\!` `\;` `\:`), `\text{…}` wrappers and thousands commas between digits;
/// `\dfrac`/`\tfrac` become `\frac`; a trailing `.` goes; lowercase.
pub fn normalize(s: &str) -> String {
    let mut t: String = cut(s)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '$')
        .collect();
    for (from, to) in [
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\left", ""),
        ("\\right", ""),
        ("\\,", ""),
        ("\\!", ""),
        ("\\;", ""),
        ("\\:", ""),
        ("\\text{", "{"),
        ("\\mbox{", "{"),
    ] {
        t = t.replace(from, to);
    }
    // Unwrap a whole-answer brace group left by \text{…}.
    while t.starts_with('{') && t.ends_with('}') && t.len() >= 2 {
        t = t[1..t.len() - 1].to_string();
    }
    let b = t.as_bytes();
    let mut out = String::with_capacity(t.len());
    for (i, c) in t.char_indices() {
        let between_digits = c == ','
            && i > 0
            && b[i - 1].is_ascii_digit()
            && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if !between_digits {
            out.push(c);
        }
    }
    while out.ends_with('.') {
        out.pop();
    }
    out.to_lowercase()
}

/// A math answer: exact when it parses as a number, else a normalised string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A number, compared by value.
    Number(Rational),
    /// Anything else, compared after [`normalize`].
    Text(String),
}

impl Answer {
    /// Reads an answer string.
    pub fn parse(s: &str) -> Self {
        match Rational::parse(s) {
            Some(r) => Answer::Number(r),
            None => Answer::Text(normalize(s)),
        }
    }

    /// Whether `candidate` equals this answer (by value for numbers).
    pub fn matches(&self, candidate: &str) -> bool {
        match self {
            Answer::Number(r) => Rational::parse(candidate) == Some(*r),
            Answer::Text(t) => !t.is_empty() && normalize(candidate) == *t,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Number(r) => r.fmt(f),
            Answer::Text(t) => f.write_str(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eos_marker_is_not_trailing_text() {
        let c = "<start_working_out>x</end_working_out><SOLUTION>1 0</SOLUTION><|im_end|>";
        let t = tagged(strip_eos(c, &["<|im_end|>", "</s>"]));
        assert_eq!(t.trailing, 0);
        assert_eq!(t.solution, Some("1 0"));
        assert!(t.has_thinking);
        // Without stripping, the marker is trailing text.
        assert_eq!(tagged(c).trailing, 10);
    }

    #[test]
    fn boxed_with_nested_braces() {
        assert_eq!(
            last_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}} c"),
            Some("\\frac{1}{2}")
        );
        assert_eq!(last_boxed("\\boxed{unclosed"), None);
        assert_eq!(last_boxed("none"), None);
    }

    #[test]
    fn numbers_and_rationals() {
        assert_eq!(last_number("so 1,234 apples."), Some("1234".into()));
        assert_eq!(last_number("it is -7"), Some("-7".into()));
        assert_eq!(last_number("3/4 of it"), Some("3/4".into()));
        assert_eq!(last_number("nothing"), None);
        let half = Rational::new(1, 2).unwrap();
        for s in [
            "0.5",
            "1/2",
            "\\frac{1}{2}",
            "\\dfrac{1}{2}",
            " 2/4 ",
            "0.50.",
        ] {
            assert_eq!(Rational::parse(s), Some(half), "{s}");
        }
        assert_eq!(Rational::parse("1,000"), Some(Rational::int(1000)));
        assert_eq!(
            Rational::parse("-\\frac{3}{6}"),
            Some(Rational::new(-1, 2).unwrap())
        );
        assert_eq!(Rational::parse("1/0"), None);
        assert_eq!(Rational::parse("abc"), None);
        assert!(Answer::parse("72").matches("72.0"));
        assert!(Answer::parse("x+1").matches(" X + 1 "));
    }
}
