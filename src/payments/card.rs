//! Card data at the edge: parsed, checked and masked. The full number lives only in memory for
//! the duration of the request; `Debug` and `Display` show the last four digits alone.

use std::fmt;

use crate::error::FieldError;
use crate::input::{Pattern, Whole};

/// A card number that passed the Luhn check.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

/// 12 to 19 digits, single spaces or dashes between them allowed (as people type them).
pub static NUMBER: Pattern =
    Pattern::new("^[0-9]([ -]?[0-9]){11,18}$", 37, "must be 12 to 19 digits (a space or dash between digits is fine)");
pub const EXP_MONTH: Whole = Whole::between(1, 12);
/// The year in full...
pub const EXP_YEAR: Whole = Whole::between(2000, 2999);
/// ...or in two digits, as printed on the card.
pub const EXP_YEAR_SHORT: Whole = Whole::between(0, 99);
pub static CVC: Pattern = Pattern::new("^[0-9]{3,4}$", 4, "must be 3 or 4 digits");

impl CardNumber {
    /// Accepts digits with optional spaces or dashes; 12 to 19 digits passing the Luhn check.
    pub fn parse(text: &str) -> Result<CardNumber, String> {
        NUMBER.check(text)?;
        let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !luhn_valid(&digits) {
            return Err("is not a valid card number (Luhn check failed)".into());
        }
        Ok(CardNumber(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    pub fn brand(&self) -> CardBrand {
        CardBrand::of(&self.0)
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(**** {})", self.last4())
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "**** {}", self.last4())
    }
}

pub fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(position, byte)| {
            let digit = u32::from(byte - b'0');
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardBrand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    DinersClub,
    Jcb,
    UnionPay,
    Unknown,
}

impl CardBrand {
    /// By the issuer prefixes of the well-known networks.
    pub fn of(digits: &str) -> CardBrand {
        let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
        match () {
            _ if digits.starts_with('4') => CardBrand::Visa,
            _ if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) => CardBrand::Mastercard,
            _ if matches!(prefix(2), 34 | 37) => CardBrand::Amex,
            _ if prefix(4) == 6011 || prefix(2) == 65 || (644..=649).contains(&prefix(3)) => CardBrand::Discover,
            _ if prefix(2) == 36 || (300..=305).contains(&prefix(3)) => CardBrand::DinersClub,
            _ if (3528..=3589).contains(&prefix(4)) => CardBrand::Jcb,
            _ if prefix(2) == 62 => CardBrand::UnionPay,
            _ => CardBrand::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CardBrand::Visa => "visa",
            CardBrand::Mastercard => "mastercard",
            CardBrand::Amex => "amex",
            CardBrand::Discover => "discover",
            CardBrand::DinersClub => "diners",
            CardBrand::Jcb => "jcb",
            CardBrand::UnionPay => "unionpay",
            CardBrand::Unknown => "unknown",
        }
    }
}

/// A card as submitted for a payment, validated.
#[derive(Clone, Debug)]
pub struct Card {
    pub number: CardNumber,
    pub exp_month: u32,
    /// Four digits.
    pub exp_year: i32,
    cvc: String,
}

impl Card {
    /// Validates every field, reporting every problem under `card.<field>`.
    pub fn parse(number: &str, exp_month: i64, exp_year: i64, cvc: &str) -> Result<Card, Vec<FieldError>> {
        let mut errors = Vec::new();
        let number =
            CardNumber::parse(number).map_err(|message| errors.push(FieldError::new("card.number", message))).ok();
        if let Err(message) = EXP_MONTH.check(exp_month) {
            errors.push(FieldError::new("card.exp_month", message));
        }
        let exp_year = match (EXP_YEAR_SHORT.check(exp_year), EXP_YEAR.check(exp_year)) {
            (Ok(short), _) => 2000 + short,
            (_, Ok(full)) => full,
            _ => {
                errors.push(FieldError::new("card.exp_year", "must be a year such as 2029 (or 29)"));
                0
            }
        };
        if let Err(message) = CVC.check(cvc) {
            errors.push(FieldError::new("card.cvc", message));
        }
        match number {
            Some(number) if errors.is_empty() => {
                Ok(Card { number, exp_month: exp_month as u32, exp_year: exp_year as i32, cvc: cvc.to_owned() })
            }
            _ => Err(errors),
        }
    }

    pub fn cvc_len(&self) -> usize {
        self.cvc.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_luhn_check_accepts_the_test_cards_and_rejects_typos() {
        for number in
            ["4242424242424242", "4000000000000002", "4000000000009995", "4000000000000069", "5555555555554444"]
        {
            assert!(CardNumber::parse(number).is_ok(), "{number}");
        }
        assert!(CardNumber::parse("4242 4242 4242 4242").is_ok());
        assert!(CardNumber::parse("4242424242424241").is_err());
        assert!(CardNumber::parse("4242").is_err());
        assert!(CardNumber::parse("42424242424242ab").is_err());
    }

    #[test]
    fn brands_come_from_the_prefix() {
        assert_eq!(CardBrand::of("4242424242424242"), CardBrand::Visa);
        assert_eq!(CardBrand::of("5555555555554444"), CardBrand::Mastercard);
        assert_eq!(CardBrand::of("2223003122003222"), CardBrand::Mastercard);
        assert_eq!(CardBrand::of("378282246310005"), CardBrand::Amex);
        assert_eq!(CardBrand::of("6011111111111117"), CardBrand::Discover);
        assert_eq!(CardBrand::of("3566002020360505"), CardBrand::Jcb);
        assert_eq!(CardBrand::of("9999999999999995"), CardBrand::Unknown);
    }

    #[test]
    fn debug_output_never_shows_the_full_number() {
        let card = Card::parse("4242424242424242", 12, 2030, "123").unwrap();
        let printed = format!("{card:?} {}", card.number);
        assert!(!printed.contains("4242424242424242"), "{printed}");
        assert!(printed.contains("4242"));
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let errors = Card::parse("1234", 13, 123456, "12").unwrap_err();
        let fields: Vec<_> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(fields, vec!["card.number", "card.exp_month", "card.exp_year", "card.cvc"]);
    }
}
