//! The rules for what clients may send, each written once and used twice: the server checks a
//! value with it, and the OpenAPI document describes the value from it. A contract fuzzer then
//! finds no value the document allows that the server refuses, nor the other way round.
//!
//! Text never reaches PostgreSQL with a control character in it (a NUL byte would be an encoding
//! error there, a CR or LF in a name a header-injection risk in an e-mail); tab, CR and LF are
//! allowed only in multi-line text.

use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use utoipa::openapi::KnownFormat;
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type};

/// Unicode control characters (category Cc).
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// Control characters but tab, LF and CR.
const CONTROL_BUT_LINE_BREAKS: &str = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F";
/// What trimming removes: Unicode white space (and the BOM, which ECMAScript's `\s` counts). The
/// class is spelled out because regular-expression dialects disagree on `\s`.
const BLANK: &str = r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\uFEFF";

/// What a search box or a text filter takes: one line, possibly empty.
pub const SEARCH: Text = Text::line(254).optional();

/// A text field: its length in characters (as sent, before trimming) and whether it may span lines.
#[derive(Clone, Copy, Debug)]
pub struct Text {
    pub max_chars: usize,
    /// Whether the trimmed text must be non-empty.
    pub required: bool,
    pub multi_line: bool,
}

impl Text {
    /// One line of at most `max_chars` characters, not blank.
    pub const fn line(max_chars: usize) -> Text {
        Text { max_chars, required: true, multi_line: false }
    }

    /// Several lines of at most `max_chars` characters, not blank.
    pub const fn lines(max_chars: usize) -> Text {
        Text { max_chars, required: true, multi_line: true }
    }

    /// May be empty (a search box, a filter).
    pub const fn optional(self) -> Text {
        Text { required: false, ..self }
    }

    /// The trimmed text, or why it is refused.
    pub fn check<'a>(&self, value: &'a str) -> Result<&'a str, String> {
        let allowed_controls: &[char] = if self.multi_line { &['\t', '\n', '\r'] } else { &[] };
        if value.chars().any(|c| c.is_control() && !allowed_controls.contains(&c)) {
            return Err(if self.multi_line {
                "must not contain control characters (tab and line breaks are fine)".into()
            } else {
                "must be one line without control characters".into()
            });
        }
        if value.chars().count() > self.max_chars {
            return Err(format!("must be at most {} characters", self.max_chars));
        }
        let trimmed = value.trim_matches(is_blank);
        if self.required && trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(trimmed)
    }

    /// The same rule as a JSON Schema: a length and a pattern.
    pub fn schema(&self) -> Object {
        let allowed = format!("[^{}]", if self.multi_line { CONTROL_BUT_LINE_BREAKS } else { CONTROL });
        let pattern =
            if self.required { format!("^{allowed}*[^{CONTROL}{BLANK}]{allowed}*$") } else { format!("^{allowed}*$") };
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(usize::from(self.required)))
            .max_length(Some(self.max_chars))
            .pattern(Some(pattern))
            .build()
    }
}

fn is_blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{FEFF}'
}

/// A whole number within a range.
#[derive(Clone, Copy, Debug)]
pub struct Whole {
    pub min: i64,
    pub max: i64,
}

impl Whole {
    pub const fn between(min: i64, max: i64) -> Whole {
        Whole { min, max }
    }

    pub fn check(&self, value: i64) -> Result<i64, String> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(format!("must be between {} and {}", self.min, self.max))
        }
    }

    pub fn schema(&self) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(self.min as f64))
            .maximum(Some(self.max as f64))
            .build()
    }

    /// Either of two ranges, e.g. a stock change that is not zero.
    pub fn either_schema(first: Whole, second: Whole) -> Schema {
        Schema::OneOf(OneOfBuilder::new().item(first.schema()).item(second.schema()).build())
    }
}

/// A text that must match a regular expression in full (an e-mail address, a SKU). The same
/// expression is enforced here and published in the document; it is written in the subset that
/// Rust, Python and ECMAScript read alike (anchored, classes and counted repetition only).
pub struct Pattern {
    pub source: &'static str,
    pub max_chars: usize,
    pub message: &'static str,
    compiled: OnceLock<Regex>,
}

impl Pattern {
    pub const fn new(source: &'static str, max_chars: usize, message: &'static str) -> Pattern {
        Pattern { source, max_chars, message, compiled: OnceLock::new() }
    }

    pub fn check<'a>(&self, value: &'a str) -> Result<&'a str, String> {
        let regex = self.compiled.get_or_init(|| Regex::new(self.source).expect("input patterns are valid"));
        if value.chars().count() <= self.max_chars && regex.is_match(value) {
            Ok(value)
        } else {
            Err(self.message.to_owned())
        }
    }

    pub fn schema(&self) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(self.max_chars))
            .pattern(Some(self.source))
            .build()
    }

    /// The expression for an HTML `pattern` attribute. Browsers anchor it themselves and compile
    /// it with ECMAScript's `v` flag, where a dash inside a class must be escaped (`[A-Z0-9-]` is
    /// a syntax error there, and the browser then silently checks nothing).
    pub fn html(&self) -> String {
        let body = self.source.trim_start_matches('^').trim_end_matches('$');
        body.replace("-]", "\\-]")
    }
}

/// A LIKE pattern matching `text` anywhere, taken literally: `%`, `_` and the escape character
/// typed in a search box are searched for as themselves.
pub fn like_containing(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Field messages of a page's form that did not validate, for showing each next to its field
/// when the form is shown again (the admin pages' and the shop's).
#[derive(Debug, Default)]
pub struct FormErrors(pub Vec<crate::error::FieldError>);

impl FormErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|error| error.field == field).map(|error| error.message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(crate::error::FieldError::new(field, message));
    }

    /// The attributes that tie an input to its message for assistive technology, or nothing.
    /// Field names are identifiers chosen by the code, never typed by a user, so the result is
    /// safe to write unescaped.
    pub fn aria(&self, field: &str) -> String {
        if self.get(field).is_some() {
            format!(r#" aria-invalid="true" aria-describedby="{field}-error""#)
        } else {
            String::new()
        }
    }
}

/// The schema of an optional field that also accepts `null` (serde reads both as absent).
pub fn or_null(mut object: Object) -> Object {
    if let SchemaType::Type(single) = object.schema_type {
        object.schema_type = SchemaType::from_iter([single, Type::Null]);
    }
    object
}

/// For a field where `null` says something absence does not (`"category": null` takes a product
/// out of its category, no `category` leaves it there): a present field is `Some`, even `null`,
/// and with `#[serde(default)]` an absent one is `None`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// Serde helpers that accept a JSON number with no fractional part (`-229.0`) as the whole
/// number it is: JSON Schema's `integer` allows it, and so does the document.
pub mod whole_number {
    use super::*;

    /// A JSON number.
    pub fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        deserializer.deserialize_any(WholeNumber { from_text: false })
    }

    pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        deserializer.deserialize_option(OptionalWholeNumber)
    }

    /// A query parameter, where every value is text.
    pub fn optional_in_query<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| WholeNumber { from_text: true }.visit_str(&text))
            .transpose()
    }

    struct WholeNumber {
        /// JSON text is not a number (`"12"` is refused); query text always is.
        from_text: bool,
    }

    impl Visitor<'_> for WholeNumber {
        type Value = i64;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a whole number")
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
            Ok(value)
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
            i64::try_from(value).map_err(|_| E::custom("the number is too large"))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<i64, E> {
            // 2^63 is exactly representable; anything at or beyond it does not fit.
            if value.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&value) {
                Ok(value as i64)
            } else {
                Err(E::custom("expected a whole number"))
            }
        }

        /// Query strings carry numbers as text.
        fn visit_str<E: de::Error>(self, value: &str) -> Result<i64, E> {
            if !self.from_text {
                return Err(E::invalid_type(de::Unexpected::Str(value), &self));
            }
            match value.parse::<i64>() {
                Ok(number) => Ok(number),
                Err(_) => value.parse::<f64>().map_err(|_| E::custom("expected a whole number")).and_then(|number| {
                    if number.is_finite() { self.visit_f64(number) } else { Err(E::custom("expected a whole number")) }
                }),
            }
        }
    }

    struct OptionalWholeNumber;

    impl<'de> Visitor<'de> for OptionalWholeNumber {
        type Value = Option<i64>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a whole number or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<i64>, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<i64>, D::Error> {
            required(deserializer).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    #[test]
    fn like_wildcards_typed_in_a_search_are_taken_literally() {
        assert_eq!(like_containing("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_containing("ada@example.com"), "%ada@example.com%");
    }

    #[test]
    fn html_patterns_are_valid_with_the_v_flag() {
        let sku = Pattern::new("^[A-Z0-9-]{3,32}$", 32, "");
        assert_eq!(sku.html(), r"[A-Z0-9\-]{3,32}");
        // The escaped form still means the same to the Rust engine the server checks with.
        let anchored = Regex::new(&format!("^{}$", sku.html())).unwrap();
        assert!(anchored.is_match("MUG-001") && !anchored.is_match("mug-001") && !anchored.is_match("AB"));
    }

    #[test]
    fn text_rules_refuse_control_characters_and_count_characters_as_sent() {
        let name = Text::line(5);
        assert_eq!(name.check(" Mug "), Ok("Mug"));
        assert!(name.check("a\u{0}b").is_err());
        assert!(name.check("a\nb").is_err());
        assert!(name.check("\u{85}").is_err(), "C1 controls too");
        assert!(name.check(" \u{feff} ").is_err(), "blank");
        assert!(name.check("abcdef").is_err());
        assert!(name.check("  abcd").is_err(), "the length is of the text as sent");
        let reason = Text::lines(50);
        assert_eq!(reason.check("one\r\n\ttwo\n"), Ok("one\r\n\ttwo"));
        assert!(reason.check("nul\u{0}").is_err());
        assert_eq!(Text::line(5).optional().check(""), Ok(""));
    }

    #[test]
    fn the_published_pattern_says_what_the_check_does() {
        let samples = ["Mug", "  Mug", "", " ", "\u{feff}", "a\u{0}", "a\tb", "a\r\nb", "\u{3000}x", "ß", "a\u{9f}"];
        for rule in [Text::line(20), Text::lines(20), Text::line(20).optional()] {
            let pattern = rule.schema().pattern.unwrap();
            let regex = Regex::new(&pattern).unwrap();
            for sample in samples {
                assert_eq!(regex.is_match(sample), rule.check(sample).is_ok(), "{rule:?} {sample:?} against {pattern}");
            }
        }
    }

    #[derive(serde::Deserialize)]
    struct Patch {
        #[serde(default, deserialize_with = "present")]
        category: Option<Option<String>>,
    }

    #[test]
    fn a_present_null_is_told_apart_from_an_absent_field() {
        let parse = |json: &str| serde_json::from_str::<Patch>(json).unwrap().category;
        assert_eq!(parse(r#"{}"#), None);
        assert_eq!(parse(r#"{"category": null}"#), Some(None));
        assert_eq!(parse(r#"{"category": "desk"}"#), Some(Some("desk".to_owned())));
    }

    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(deserialize_with = "whole_number::required")]
        n: i64,
    }

    #[test]
    fn whole_floats_are_whole_numbers_and_text_is_not_a_number() {
        let parse = |json: &str| serde_json::from_str::<Body>(json).map(|body| body.n);
        assert_eq!(parse(r#"{"n": -229.0}"#).unwrap(), -229);
        assert_eq!(parse(r#"{"n": 12}"#).unwrap(), 12);
        assert!(parse(r#"{"n": 12.5}"#).is_err());
        assert!(parse(r#"{"n": "12"}"#).is_err());
        assert!(parse(r#"{"n": 1e19}"#).is_err());
        assert!(parse(r#"{"n": 18446744073709551615}"#).is_err());
    }
}
