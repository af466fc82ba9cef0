//! Money is an integer count of minor units (cents for EUR) of the shop's one currency.
//! Nothing here ever uses floating point.

use std::fmt::Write;

/// An amount in minor units, by value or behind any number of references. Sums of many
/// amounts are `i128`: a shop's revenue may outgrow an `i64` that any one order fits in.
/// A whole number handed over by value or by reference (templates pass references): an amount
/// in minor units, or a count.
pub trait Whole {
    fn whole(&self) -> i128;
}

macro_rules! whole_from {
    ($($integer:ty),+) => {$(
        impl Whole for $integer {
            fn whole(&self) -> i128 {
                i128::from(*self)
            }
        }
    )+};
}

whole_from!(i32, i64, i128, u32);

impl Whole for usize {
    fn whole(&self) -> i128 {
        i128::try_from(*self).unwrap_or(i128::MAX)
    }
}

impl<T: Whole + ?Sized> Whole for &T {
    fn whole(&self) -> i128 {
        (**self).whole()
    }
}

/// An ISO 4217 currency the shop can trade in, with the number of decimals of its minor unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    exponent: u32,
    symbol: Option<&'static str>,
}

/// The currencies Agora knows how to format. Extending the list is safe: orders record the code.
const CURRENCIES: &[Currency] = &[
    Currency { code: "EUR", exponent: 2, symbol: Some("€") },
    Currency { code: "USD", exponent: 2, symbol: Some("$") },
    Currency { code: "GBP", exponent: 2, symbol: Some("£") },
    Currency { code: "CHF", exponent: 2, symbol: None },
    Currency { code: "SEK", exponent: 2, symbol: None },
    Currency { code: "NOK", exponent: 2, symbol: None },
    Currency { code: "DKK", exponent: 2, symbol: None },
    Currency { code: "PLN", exponent: 2, symbol: None },
    Currency { code: "CZK", exponent: 2, symbol: None },
    Currency { code: "CAD", exponent: 2, symbol: None },
    Currency { code: "AUD", exponent: 2, symbol: None },
    Currency { code: "JPY", exponent: 0, symbol: Some("¥") },
    Currency { code: "KRW", exponent: 0, symbol: None },
    Currency { code: "BHD", exponent: 3, symbol: None },
    Currency { code: "KWD", exponent: 3, symbol: None },
];

impl Currency {
    pub fn parse(code: &str) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|currency| currency.code == code)
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// `1234` EUR -> `€12.34`; `20302460` EUR -> `€203,024.60`; `1234` CHF -> `CHF 12.34`; `-50` EUR -> `-€0.50`.
    /// Takes the amount by value or by reference (templates pass references).
    pub fn format(&self, amount_minor: impl Whole) -> String {
        let amount_minor = amount_minor.whole();
        let mut out = String::new();
        if amount_minor < 0 {
            out.push('-');
        }
        match self.symbol {
            Some(symbol) => out.push_str(symbol),
            None => {
                out.push_str(self.code);
                out.push(' ');
            }
        }
        let magnitude = amount_minor.unsigned_abs();
        let scale = 10u128.pow(self.exponent);
        push_grouped(&mut out, magnitude / scale);
        if self.exponent > 0 {
            let _ = write!(out, ".{:0width$}", magnitude % scale, width = self.exponent as usize);
        }
        out
    }

    /// Parses a decimal amount typed by a person (`12.5`, `12.50`, `12`) into minor units.
    pub fn parse_amount(&self, text: &str) -> Option<i64> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || fraction.len() > self.exponent as usize
        {
            return None;
        }
        let scale = 10i64.pow(self.exponent);
        let whole: i64 = whole.parse().ok()?;
        let fraction_minor: i64 = if fraction.is_empty() {
            0
        } else {
            format!("{fraction:0<width$}", width = self.exponent as usize).parse().ok()?
        };
        whole.checked_mul(scale)?.checked_add(fraction_minor)
    }

    /// The plain decimal form of an amount, as an input field shows it (`1234` -> `12.34`).
    pub fn to_decimal(&self, amount_minor: i64) -> String {
        let scale = 10i64.pow(self.exponent);
        if self.exponent == 0 {
            return amount_minor.to_string();
        }
        format!(
            "{}{}.{:0width$}",
            if amount_minor < 0 { "-" } else { "" },
            amount_minor.unsigned_abs() / scale as u64,
            amount_minor.unsigned_abs() % scale as u64,
            width = self.exponent as usize
        )
    }
}

/// Writes `1234567` as `1,234,567`: thousands grouped, as an operator reads money.
fn push_grouped(out: &mut String, whole: u128) {
    let digits = whole.to_string();
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
}

/// A count with thousands grouped (`12,345`), for figures on the admin pages.
pub fn grouped(count: impl Whole) -> String {
    let count = count.whole();
    let mut out = String::new();
    if count < 0 {
        out.push('-');
    }
    push_grouped(&mut out, count.unsigned_abs());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_amounts_with_the_currency_exponent() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(eur.format(1234_i64), "€12.34");
        assert_eq!(eur.format(5_i64), "€0.05");
        assert_eq!(eur.format(-50_i64), "-€0.50");
        assert_eq!(Currency::parse("JPY").unwrap().format(1500_i64), "¥1,500");
        assert_eq!(eur.format(20_302_460_i64), "€203,024.60");
        assert_eq!(eur.format(-100_000_000_i64), "-€1,000,000.00");
        assert_eq!(grouped(999_i64), "999");
        assert_eq!(grouped(1_000_i64), "1,000");
        assert_eq!(Currency::parse("KWD").unwrap().format(12345_i64), "KWD 12.345");
        assert_eq!(Currency::parse("CHF").unwrap().format(100_i64), "CHF 1.00");
        // A sum beyond i64, as a revenue figure over many orders may be.
        assert_eq!(eur.format(i128::from(i64::MAX) * 2), "€184,467,440,737,095,516.14");
    }

    #[test]
    fn parses_decimal_amounts_without_floats() {
        let eur = Currency::parse("EUR").unwrap();
        assert_eq!(eur.parse_amount("12.5"), Some(1250));
        assert_eq!(eur.parse_amount("12.05"), Some(1205));
        assert_eq!(eur.parse_amount("12"), Some(1200));
        assert_eq!(eur.parse_amount("0.1"), Some(10));
        assert_eq!(eur.parse_amount("12.345"), None);
        assert_eq!(eur.parse_amount("-1"), None);
        assert_eq!(eur.parse_amount("1e3"), None);
        assert_eq!(eur.parse_amount(""), None);
        assert_eq!(eur.to_decimal(1205), "12.05");
        assert_eq!(Currency::parse("JPY").unwrap().parse_amount("1.5"), None);
    }

    #[test]
    fn unknown_codes_are_refused() {
        assert!(Currency::parse("ZZZ").is_none());
        assert!(Currency::parse("eur").is_none());
    }
}
