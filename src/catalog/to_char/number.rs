//! `to_char(number, pattern)` with Postgres' number template patterns: digits `9` and `0`, the
//! decimal point (`.`, `D`), group separators (`,`, `G`), signs (`S`, `MI`, `PL`, `SG`, `PR`),
//! the currency symbol (`L`), `V` (shift), `TH` (ordinal suffix), `RN` (Roman numerals), `EEEE`
//! (scientific notation), fill mode (`FM`) and quoted text. DataFusion's `to_char` formats only
//! times and dates.
//!
//! Integers and decimals are written from their exact digits and rounded half away from zero,
//! as Postgres rounds `numeric`; floats through Rust's own decimal rendering. A value with more
//! integer digits than the pattern has places is written as `#`s, as Postgres does. The locale
//! is en_US: `D` is `.`, `G` is `,`, `L` is `$`.
//!
//! It owns only the formatting of one value with one compiled pattern.

use datafusion::common::{Result, plan_err};

/// One part of a compiled number pattern.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// `9` (`zero: false`) or `0`: one digit place; `place` counts all places, integer first.
    Digit {
        zero: bool,
        place: usize,
    },
    Point,
    Group,
    Text(String),
    /// `S`, before the digits (`pre`) or after them.
    Sign {
        pre: bool,
    },
    Minus,
    Plus,
    PlusMinus,
    /// `PR`: the closing bracket of a negative value (the opening one goes where the number starts).
    Bracket,
    Currency,
    Ordinal {
        upper: bool,
    },
}

/// A number pattern, compiled once for all the values it formats.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pattern {
    items: Vec<Item>,
    /// Digit places before the decimal point (those after `V` included) and after it.
    pre: usize,
    post: usize,
    /// Digit places after `V`: the value is multiplied by ten to this power.
    shift: usize,
    /// The first `0` place, if any.
    zero_start: Option<usize>,
    /// How many places after the decimal point reach the last `0` among them.
    zero_end_post: usize,
    fill: bool,
    roman: Option<bool>,
    exponent: bool,
}

/// A value to format: its sign and the decimal digits of its magnitude, scaled.
pub(super) struct Value {
    pub negative: bool,
    pub digits: String,
    pub scale: i32,
}

impl Pattern {
    pub(super) fn compile(pattern: &str) -> Result<Pattern> {
        let mut items = Vec::new();
        let (mut pre, mut post, mut shift) = (0usize, 0usize, 0usize);
        let (mut point, mut shifted, mut fill, mut exponent) = (false, false, false, false);
        let mut roman = None;
        let mut zero_start = None;
        let mut zero_end_post = 0;
        let mut text = String::new();
        let mut rest = pattern;
        let keyword = |rest: &str, word: &str| {
            rest.len() >= word.len()
                && rest.is_char_boundary(word.len())
                && rest[..word.len()].eq_ignore_ascii_case(word)
        };
        while let Some(c) = rest.chars().next() {
            let mut item = None;
            let mut taken = c.len_utf8();
            match c {
                '9' | '0' => {
                    let place = pre + post;
                    if c == '0' {
                        zero_start.get_or_insert(place);
                        if point {
                            zero_end_post = post + 1;
                        }
                    }
                    if point {
                        post += 1;
                    } else {
                        pre += 1;
                        if shifted {
                            shift += 1;
                        }
                    }
                    item = Some(Item::Digit {
                        zero: c == '0',
                        place,
                    });
                }
                '.' | 'D' | 'd' => {
                    if point {
                        return plan_err!("to_char: multiple decimal points in \"{pattern}\"");
                    }
                    if shifted {
                        return plan_err!(
                            "to_char: cannot use \"V\" and decimal point together in \"{pattern}\""
                        );
                    }
                    point = true;
                    item = Some(Item::Point);
                }
                ',' | 'G' | 'g' => item = Some(Item::Group),
                'V' | 'v' => {
                    if point {
                        return plan_err!(
                            "to_char: cannot use \"V\" and decimal point together in \"{pattern}\""
                        );
                    }
                    shifted = true;
                    taken = 1;
                }
                'L' | 'l' => item = Some(Item::Currency),
                '"' => taken = super::quoted(rest, &mut text),
                _ if keyword(rest, "FM") => {
                    fill = true;
                    taken = 2;
                }
                _ if keyword(rest, "EEEE") => {
                    exponent = true;
                    taken = 4;
                }
                _ if keyword(rest, "RN") => {
                    roman = Some(rest.as_bytes()[0] == b'R');
                    taken = 2;
                }
                _ if keyword(rest, "TH") => {
                    item = Some(Item::Ordinal {
                        upper: rest.as_bytes()[0] == b'T',
                    });
                    taken = 2;
                }
                _ if keyword(rest, "PR") => {
                    item = Some(Item::Bracket);
                    taken = 2;
                }
                _ if keyword(rest, "MI") => {
                    item = Some(Item::Minus);
                    taken = 2;
                }
                _ if keyword(rest, "PL") => {
                    item = Some(Item::Plus);
                    taken = 2;
                }
                _ if keyword(rest, "SG") => {
                    item = Some(Item::PlusMinus);
                    taken = 2;
                }
                'S' | 's' => {
                    item = Some(Item::Sign {
                        pre: pre + post == 0,
                    })
                }
                '\\' if rest.starts_with("\\\"") => {
                    text.push('"');
                    taken = 2;
                }
                other => text.push(other),
            }
            if let Some(item) = item {
                if !text.is_empty() {
                    items.push(Item::Text(std::mem::take(&mut text)));
                }
                items.push(item);
            }
            rest = &rest[taken..];
        }
        if !text.is_empty() {
            items.push(Item::Text(text));
        }
        Ok(Pattern {
            items,
            pre,
            post,
            shift,
            zero_start,
            zero_end_post,
            fill,
            roman,
            exponent,
        })
    }

    /// Digit places after the decimal point: what a float is rounded to before [`Self::write`].
    pub(super) fn post(&self) -> usize {
        self.post
    }

    /// Digit places after `V`.
    pub(super) fn shift(&self) -> usize {
        self.shift
    }

    /// Whether the pattern writes scientific notation (a float's exponent form is its own).
    pub(super) fn exponent(&self) -> bool {
        self.exponent
    }

    /// `value` written into `out`.
    pub(super) fn write(&self, value: &Value, out: &mut String) {
        if let Some(upper) = self.roman {
            self.write_roman(value, upper, out);
            return;
        }
        if self.exponent {
            self.write_exponent(value, out);
            return;
        }
        let (int, frac) = rounded(value, self.shift, self.post);
        let zero = int.bytes().all(|b| b == b'0') && frac.bytes().all(|b| b == b'0');
        let negative = value.negative && !zero;
        // More integer digits than places: every place is a `#`.
        let int_zero = int == "0";
        let (int, frac, overflow) = if int.len() > self.pre && !(int_zero && self.pre == 0) {
            ("#".repeat(self.pre), "#".repeat(self.post), true)
        } else if int_zero && self.pre == 0 {
            (String::new(), frac, false)
        } else {
            (int, frac, false)
        };
        let int = int.as_bytes();
        let frac = frac.as_bytes();
        let pre_spaces = self.pre - int.len();
        let has_zero = self.zero_start.is_some();
        let zero_start = self.zero_start.unwrap_or(usize::MAX);
        // A zero integer part is a blank before a fraction, unless a `0` place asks for zeros.
        let blank_zero = !has_zero && !overflow && int == b"0" && self.post > 0;
        // In fill mode trailing zeros of the fraction go, down to the last `0` place.
        let kept = if self.fill {
            let significant = frac.iter().rposition(|&b| b != b'0').map_or(0, |i| i + 1);
            significant.max(self.zero_end_post)
        } else {
            self.post
        };
        let point_only = self.fill && kept == 0 && self.post > 0;
        let explicit_sign = self.items.iter().any(|item| {
            matches!(
                item,
                Item::Sign { .. } | Item::Minus | Item::PlusMinus | Item::Bracket
            )
        });
        let plus_item = self.items.contains(&Item::Plus);
        let mut sign_written = false;
        let mut digits_in = false;
        let start = |out: &mut String, sign_written: &mut bool| {
            if *sign_written {
                return;
            }
            *sign_written = true;
            for item in &self.items {
                match item {
                    Item::Sign { pre: true } => {
                        out.push(if negative { '-' } else { '+' });
                        return;
                    }
                    Item::Bracket => {
                        if negative {
                            out.push('<');
                        } else if !self.fill {
                            out.push(' ');
                        }
                        return;
                    }
                    _ => {}
                }
            }
            if explicit_sign {
                return;
            }
            if negative {
                out.push('-');
            } else if !self.fill && !plus_item {
                out.push(' ');
            }
        };
        for item in &self.items {
            match item {
                Item::Digit { zero, place } if *place < self.pre => {
                    let place = *place;
                    if place < pre_spaces {
                        if has_zero && zero_start <= place {
                            start(out, &mut sign_written);
                            out.push('0');
                            digits_in = true;
                        } else if !self.fill {
                            out.push(' ');
                        }
                        continue;
                    }
                    let digit = int[place - pre_spaces];
                    if blank_zero && place + 1 == self.pre && !*zero {
                        if point_only {
                            start(out, &mut sign_written);
                            out.push('0');
                        } else if !self.fill {
                            out.push(' ');
                        }
                        continue;
                    }
                    start(out, &mut sign_written);
                    out.push(char::from(digit));
                    digits_in = true;
                }
                Item::Digit { zero, place } => {
                    let index = place - self.pre;
                    if index >= kept && !*zero {
                        continue;
                    }
                    out.push(char::from(frac[index]));
                }
                Item::Point => {
                    start(out, &mut sign_written);
                    out.push('.');
                }
                Item::Group => {
                    if digits_in {
                        out.push(',');
                    } else if !self.fill {
                        out.push(' ');
                    }
                }
                Item::Text(text) => out.push_str(text),
                Item::Sign { pre: true } => {}
                Item::Sign { pre: false } | Item::PlusMinus => {
                    out.push(if negative { '-' } else { '+' });
                }
                Item::Minus => {
                    if negative {
                        out.push('-');
                    } else if !self.fill {
                        out.push(' ');
                    }
                }
                Item::Plus => {
                    if !negative {
                        out.push('+');
                    } else if !self.fill {
                        out.push(' ');
                    }
                }
                Item::Bracket => {
                    if negative {
                        out.push('>');
                    } else if !self.fill {
                        out.push(' ');
                    }
                }
                Item::Currency => out.push('$'),
                Item::Ordinal { upper } => {
                    if !negative && !overflow {
                        let last_two = int
                            .iter()
                            .rev()
                            .take(2)
                            .rev()
                            .fold(0u32, |n, &b| n * 10 + u32::from(b - b'0'));
                        let suffix = super::ordinal(i64::from(last_two));
                        out.push_str(&if *upper {
                            suffix.to_ascii_uppercase()
                        } else {
                            suffix.to_string()
                        });
                    }
                }
            }
        }
    }

    /// `RN`: the value rounded to an integer in Roman numerals (1 to 3999), right-aligned in 15
    /// places unless in fill mode; any other value is 15 `#`s.
    fn write_roman(&self, value: &Value, upper: bool, out: &mut String) {
        let (int, _) = rounded(value, 0, 0);
        let n = if value.negative || int.len() > 4 {
            0
        } else {
            int.parse::<u32>().unwrap_or(0)
        };
        if !(1..=3999).contains(&n) {
            out.push_str(&"#".repeat(15));
            return;
        }
        const NUMERALS: [(u32, &str); 13] = [
            (1000, "M"),
            (900, "CM"),
            (500, "D"),
            (400, "CD"),
            (100, "C"),
            (90, "XC"),
            (50, "L"),
            (40, "XL"),
            (10, "X"),
            (9, "IX"),
            (5, "V"),
            (4, "IV"),
            (1, "I"),
        ];
        let mut rest = n;
        let mut text = String::new();
        for (worth, numeral) in NUMERALS {
            while rest >= worth {
                text.push_str(numeral);
                rest -= worth;
            }
        }
        if !upper {
            text.make_ascii_lowercase();
        }
        if self.fill {
            out.push_str(&text);
        } else {
            out.push_str(&format!("{text:>15}"));
        }
    }

    /// `EEEE`: one digit, the places after the point, `e` and a signed exponent of at least two
    /// digits (`9.99EEEE` writes 0.0004859 as ` 4.86e-04`).
    fn write_exponent(&self, value: &Value, out: &mut String) {
        let digits = value.digits.trim_start_matches('0');
        let (mantissa, exponent) = if digits.is_empty() {
            (
                Value {
                    negative: false,
                    digits: "0".into(),
                    scale: 0,
                },
                0,
            )
        } else {
            // The magnitude as d.ddd × 10^exponent.
            let exponent = digits.len() as i32 - 1 - value.scale;
            let mantissa = Value {
                negative: false,
                digits: digits.to_string(),
                scale: digits.len() as i32 - 1,
            };
            (mantissa, exponent)
        };
        let (mut int, mut frac) = rounded(&mantissa, 0, self.post);
        let mut exponent = exponent;
        if int == "10" {
            // 9.996 to two places is 10.00: one more power of ten.
            int = "1".into();
            frac = format!("0{}", &frac[..frac.len().saturating_sub(1)]);
            exponent += 1;
        }
        if value.negative && !digits.is_empty() {
            out.push('-');
        } else if !self.fill {
            out.push(' ');
        }
        out.push_str(&int);
        if self.post > 0 {
            out.push('.');
            out.push_str(&frac);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.unsigned_abs()
        ));
    }
}

/// The magnitude of `value` × 10^`shift`, rounded half away from zero to `post` places: its
/// integer digits (`"0"` when zero) and exactly `post` fraction digits.
fn rounded(value: &Value, shift: usize, post: usize) -> (String, String) {
    let mut digits = value.digits.clone();
    let mut scale = value.scale - shift as i32;
    if scale < 0 {
        digits.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        scale = 0;
    }
    let scale = scale as usize;
    // At least one integer digit.
    if digits.len() <= scale {
        digits.insert_str(0, &"0".repeat(scale + 1 - digits.len()));
    }
    let mut kept: Vec<u8> = if scale <= post {
        let mut kept = digits.into_bytes();
        kept.extend(std::iter::repeat_n(b'0', post - scale));
        kept
    } else {
        let cut = digits.len() - (scale - post);
        let round_up = digits.as_bytes()[cut] >= b'5';
        let mut kept = digits.as_bytes()[..cut].to_vec();
        if round_up {
            let mut i = kept.len();
            loop {
                if i == 0 {
                    kept.insert(0, b'1');
                    break;
                }
                i -= 1;
                if kept[i] == b'9' {
                    kept[i] = b'0';
                } else {
                    kept[i] += 1;
                    break;
                }
            }
        }
        kept
    };
    let frac = kept.split_off(kept.len() - post);
    let first = kept.iter().position(|&b| b != b'0').unwrap_or(kept.len());
    let int = if first == kept.len() {
        "0".to_string()
    } else {
        String::from_utf8_lossy(&kept[first..]).into_owned()
    };
    (int, String::from_utf8_lossy(&frac).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `value` as Postgres' `numeric` literal would give it.
    fn numeric(value: &str) -> Value {
        let negative = value.starts_with('-');
        let value = value.trim_start_matches('-');
        let (int, frac) = value.split_once('.').unwrap_or((value, ""));
        Value {
            negative,
            digits: format!("{int}{frac}"),
            scale: frac.len() as i32,
        }
    }

    fn to_char(value: &str, pattern: &str) -> String {
        let mut out = String::new();
        Pattern::compile(pattern)
            .expect("pattern")
            .write(&numeric(value), &mut out);
        out
    }

    #[test]
    fn patterns_write_what_postgres_writes() {
        // The examples of Postgres 16's documentation (table 9.29), in the en_US locale.
        let cases = [
            ("-0.1", "99.99", "  -.10"),
            ("-0.1", "FM9.99", "-.1"),
            ("-0.1", "FM90.99", "-0.1"),
            ("0.1", "0.9", " 0.1"),
            ("12", "9990999.9", "    0012.0"),
            ("12", "FM9990999.9", "0012."),
            ("485", "999", " 485"),
            ("-485", "999", "-485"),
            ("485", "9 9 9", " 4 8 5"),
            ("1485", "9,999", " 1,485"),
            ("1485", "9G999", " 1,485"),
            ("148.5", "999.999", " 148.500"),
            ("148.5", "FM999.999", "148.5"),
            ("148.5", "FM999.990", "148.500"),
            ("148.5", "999D999", " 148.500"),
            ("3148.5", "9G999D999", " 3,148.500"),
            ("-485", "999S", "485-"),
            ("-485", "999MI", "485-"),
            ("485", "999MI", "485 "),
            ("485", "FM999MI", "485"),
            ("485", "PL999", "+485"),
            ("485", "SG999", "+485"),
            ("-485", "SG999", "-485"),
            ("-485", "9SG99", "4-85"),
            ("-485", "999PR", "<485>"),
            ("485", "L999", "$ 485"),
            ("485", "RN", "        CDLXXXV"),
            ("485", "FMRN", "CDLXXXV"),
            ("5.2", "FMRN", "V"),
            ("482", "999th", " 482nd"),
            ("485", "\"Good number:\"999", "Good number: 485"),
            ("485.8", "\"Pre:\"999\" Post:\" .999", "Pre: 485 Post: .800"),
            ("12", "99V999", " 12000"),
            ("12.4", "99V999", " 12400"),
            ("12.45", "99V9", " 125"),
            ("0.0004859", "9.99EEEE", " 4.86e-04"),
        ];
        for (value, pattern, expected) in cases {
            assert_eq!(to_char(value, pattern), expected, "{value} {pattern}");
        }
    }

    #[test]
    fn money_rounds_half_away_from_zero_and_overflows_to_hashes() {
        assert_eq!(to_char("1234567.125", "FM$999,999,990.00"), "$1,234,567.13");
        assert_eq!(to_char("-0.125", "FM$999,990.00"), "$-0.13");
        assert_eq!(to_char("0.004", "FM990.00"), "0.00");
        assert_eq!(to_char("-0.004", "990.00"), "   0.00");
        assert_eq!(to_char("999.995", "999.99"), " ###.##");
        assert_eq!(to_char("1234", "99"), " ##");
        assert_eq!(to_char("0", "999"), "   0");
        assert_eq!(to_char("0", "FM9.9"), "0.");
        assert_eq!(to_char("0.5", ".99"), " .50");
        assert_eq!(to_char("9.996", "9.99EEEE"), " 1.00e+01");
        assert_eq!(to_char("0", "9.99EEEE"), " 0.00e+00");
        assert_eq!(to_char("-1234.5", "FM9.9EEEE"), "-1.2e+03");
        assert_eq!(to_char("4000", "RN"), "###############");
        assert_eq!(to_char("1994", "FMrn"), "mcmxciv");
        assert_eq!(to_char("11", "FM99th"), "11th");
        assert_eq!(to_char("-5", "999PR"), "  <5>");
        assert_eq!(to_char("5", "999PR"), "   5 ");
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(Pattern::compile("9.9.9").is_err());
        assert!(Pattern::compile("99V9.9").is_err());
        assert!(Pattern::compile("9.9V9").is_err());
    }
}
