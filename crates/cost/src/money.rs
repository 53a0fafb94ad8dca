//! Integer money: [`Money`] (nano-USD, what a call costs) and [`UnitPrice`] (pico-USD per
//! unit, what a token, image, second or character costs), plus the exact decimal parser both
//! are built from.
//!
//! No `f64` is ever stored or summed. A JSON number reaches us as the `f64` serde_json
//! parsed (correctly rounded: the crate enables serde_json's `float_roundtrip`); it is
//! rendered back to its shortest round-trip decimal, which for any source number of at most
//! 15 significant digits — every price LiteLLM publishes — is exactly the source text, and
//! that decimal text is converted to an integer exactly.

use std::fmt;
use std::iter::Sum;
use std::num::NonZeroU64;
use std::ops::{Add, AddAssign};
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::PriceError;

/// nano-USD in one USD.
pub const NANO_USD_PER_USD: i64 = 1_000_000_000;
/// pico-USD in one USD.
pub const PICO_USD_PER_USD: u64 = 1_000_000_000_000;

/// An amount of money in integer **nano-USD** (1 USD = 10⁹ nano-USD).
///
/// The range of `i64` is ±9.2 billion USD. Arithmetic saturates instead of overflowing.
/// Serialised as the bare integer count of nano-USD.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(i64);

impl Money {
    /// Zero dollars.
    pub const ZERO: Money = Money(0);

    /// `n` nano-USD.
    pub const fn from_nano_usd(n: i64) -> Self {
        Money(n)
    }

    /// The amount in nano-USD.
    pub const fn nano_usd(self) -> i64 {
        self.0
    }

    /// Parse a decimal USD amount (`"0.0025"`, `"2.5e-3"`), exactly; digits beyond the
    /// ninth decimal place are rounded half-up (away from zero for negative amounts).
    pub fn from_usd_str(s: &str) -> Result<Self, PriceError> {
        let n = parse_scaled(s, 9)?;
        i64::try_from(n)
            .map(Money)
            .map_err(|_| PriceError::invalid_number(s, "out of range"))
    }

    /// The amount in USD as an `f64`, for display and metrics only (never sum these).
    pub fn to_usd_f64(self) -> f64 {
        self.0 as f64 / NANO_USD_PER_USD as f64
    }

    /// Sum, or `None` on overflow.
    pub const fn checked_add(self, other: Money) -> Option<Money> {
        match self.0.checked_add(other.0) {
            Some(n) => Some(Money(n)),
            None => None,
        }
    }

    /// Sum, clamped to the `i64` range.
    pub const fn saturating_add(self, other: Money) -> Money {
        Money(self.0.saturating_add(other.0))
    }

    /// True when the amount is exactly zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Round an amount in femto-USD (10⁻¹⁵ USD) half-up to nano-USD (half away from zero
    /// for negative amounts), clamped to the `i64` range. The single rounding step of
    /// every cost computation.
    pub(crate) fn from_femto_usd(femto: i128) -> Money {
        const FEMTO_PER_NANO: i128 = 1_000_000;
        let magnitude = femto
            .unsigned_abs()
            .saturating_add(FEMTO_PER_NANO as u128 / 2)
            / FEMTO_PER_NANO as u128;
        let magnitude = i64::try_from(magnitude).unwrap_or(i64::MAX);
        Money(if femto < 0 { -magnitude } else { magnitude })
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        self.saturating_add(rhs)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = self.saturating_add(rhs);
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Money::saturating_add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

/// Exact decimal USD, without trailing zeros: `0.0075`, `12`, `-0.5`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, self.0 < 0, u128::from(self.0.unsigned_abs()), 9)
    }
}

impl FromStr for Money {
    type Err = PriceError;
    fn from_str(s: &str) -> Result<Self, PriceError> {
        Money::from_usd_str(s)
    }
}

/// A price per unit (token, image, second, character) in integer **pico-USD**
/// (1 USD = 10¹² pico-USD), so `2.5e-6` USD/token is `2_500_000`. Never negative.
///
/// Deserialises from a JSON number or a numeric string (`3e-7`, `"0.0000003"`), exactly;
/// digits beyond the twelfth decimal place (only float artefacts such as
/// `0.0000029999900000000002` and a few repeating fractions in LiteLLM's file) are rounded
/// half-up.
///
/// Stored as pico-USD + 1 in a `NonZeroU64`, so `Option<UnitPrice>` is 8 bytes, not 16:
/// a model's [`crate::Rates`] are 19 optional prices and the embedded table holds ~4,400 of
/// them. The largest price is therefore `u64::MAX - 1` pico-USD (18 million USD per unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitPrice(NonZeroU64);

impl Default for UnitPrice {
    fn default() -> Self {
        UnitPrice::ZERO
    }
}

impl UnitPrice {
    /// Free.
    pub const ZERO: UnitPrice = UnitPrice(NonZeroU64::MIN);

    /// `p` pico-USD per unit (`u64::MAX` saturates to `u64::MAX - 1`).
    pub const fn from_pico_usd(p: u64) -> Self {
        match NonZeroU64::new(p.saturating_add(1)) {
            Some(n) => UnitPrice(n),
            None => UnitPrice::ZERO,
        }
    }

    /// The price in pico-USD per unit.
    pub const fn pico_usd(self) -> u64 {
        self.0.get() - 1
    }

    /// Parse a decimal USD price (`"0.0000025"`, `"2.5e-6"`), exactly, rounding half-up at
    /// the twelfth decimal place. Negative prices are rejected.
    pub fn from_usd_str(s: &str) -> Result<Self, PriceError> {
        let n = parse_scaled(s, 12)?;
        if n < 0 {
            return Err(PriceError::invalid_number(s, "negative price"));
        }
        u64::try_from(n)
            .ok()
            .filter(|p| *p < u64::MAX)
            .map(UnitPrice::from_pico_usd)
            .ok_or_else(|| PriceError::invalid_number(s, "out of range"))
    }

    /// The price in USD as an `f64`, for display only.
    pub fn to_usd_f64(self) -> f64 {
        self.pico_usd() as f64 / PICO_USD_PER_USD as f64
    }

    /// The price whose decimal text is the shortest round-trip decimal of `v` (for a parsed
    /// JSON number: its source text), rounded half-up at the twelfth decimal place.
    fn from_f64_exact(v: f64) -> Result<Self, PriceError> {
        if let Some(p) = Self::from_f64_fast(v) {
            return Ok(UnitPrice::from_pico_usd(p));
        }
        Self::from_f64_slow(v)
    }

    /// The common case without formatting: when the decimal `n × 10⁻¹²` (`n` = `v × 10¹²`
    /// rounded) converts back to exactly `v` — one correctly rounded division, `n` and
    /// `10¹²` being exact in `f64` — both it and `v`'s shortest decimal lie within one ULP of
    /// `v`. Below 16 USD one ULP is under 4·10⁻¹⁵, far less than the half pico-USD that
    /// separates `n × 10⁻¹²` from a rounding boundary, so the slow path would give `n` too.
    fn from_f64_fast(v: f64) -> Option<u64> {
        if !(0.0..16.0).contains(&v) {
            return None;
        }
        let n = (v * 1e12).round();
        (n / 1e12 == v).then_some(n as u64)
    }

    /// Format `v` as its shortest round-trip decimal and parse that text exactly.
    fn from_f64_slow(v: f64) -> Result<Self, PriceError> {
        if !v.is_finite() {
            return Err(PriceError::invalid_number(&v.to_string(), "not finite"));
        }
        let mut buf = StackStr::new();
        fmt::Write::write_fmt(&mut buf, format_args!("{v:e}"))
            .map_err(|_| PriceError::invalid_number(&v.to_string(), "too long"))?;
        UnitPrice::from_usd_str(buf.as_str())
    }

    /// A price in whole USD per unit (used for JSON integers such as `0` or `1`).
    fn from_whole_usd(n: u64) -> Option<Self> {
        n.checked_mul(PICO_USD_PER_USD)
            .filter(|p| *p < u64::MAX)
            .map(UnitPrice::from_pico_usd)
    }
}

/// Exact decimal USD per unit, without trailing zeros: `0.0000025`.
impl fmt::Display for UnitPrice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_decimal(f, false, u128::from(self.pico_usd()), 12)
    }
}

impl FromStr for UnitPrice {
    type Err = PriceError;
    fn from_str(s: &str) -> Result<Self, PriceError> {
        UnitPrice::from_usd_str(s)
    }
}

impl<'de> Deserialize<'de> for UnitPrice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnitPriceVisitor)
    }
}

struct UnitPriceVisitor;

impl Visitor<'_> for UnitPriceVisitor {
    type Value = UnitPrice;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative price in USD (number or numeric string)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<UnitPrice, E> {
        UnitPrice::from_whole_usd(v).ok_or_else(|| E::custom(format!("price {v} out of range")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<UnitPrice, E> {
        let v = u64::try_from(v).map_err(|_| E::custom(format!("negative price {v}")))?;
        self.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<UnitPrice, E> {
        UnitPrice::from_f64_exact(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<UnitPrice, E> {
        UnitPrice::from_usd_str(v).map_err(E::custom)
    }
}

/// A fixed-size text buffer for formatting one `f64` without allocating.
struct StackStr {
    buf: [u8; 48],
    len: usize,
}

impl StackStr {
    fn new() -> Self {
        StackStr {
            buf: [0; 48],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        // Only `write_str` fills the buffer, with whole `&str`s: always valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Write `magnitude × 10^-scale` as an exact decimal without trailing zeros.
fn write_decimal(
    f: &mut fmt::Formatter<'_>,
    negative: bool,
    magnitude: u128,
    scale: u32,
) -> fmt::Result {
    let unit = 10u128.pow(scale);
    let (whole, mut frac) = (magnitude / unit, magnitude % unit);
    if negative && magnitude != 0 {
        f.write_str("-")?;
    }
    write!(f, "{whole}")?;
    if frac != 0 {
        let mut width = scale as usize;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        write!(f, ".{frac:0width$}")?;
    }
    Ok(())
}

/// Parse a decimal number (`12`, `-0.5`, `2.5e-6`, `1E+3`) to an integer count of
/// `10^-scale` units, exactly, rounding half-up on the magnitude (half away from zero).
pub(crate) fn parse_scaled(text: &str, scale: u32) -> Result<i128, PriceError> {
    let s = text.trim();
    let bad = |reason: &'static str| PriceError::invalid_number(text, reason);
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("malformed exponent"));
            }
            // Anything past ±100000 is zero or an overflow either way.
            let clamped = if digits.len() > 6 { "100000" } else { digits };
            let n: i64 = clamped.parse().map_err(|_| bad("malformed exponent"))?;
            if e.starts_with('-') { -n } else { n }
        }
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(bad("not a decimal number"));
    }

    // value = D × 10^shift, D being all mantissa digits read as one integer.
    let digits = int_part.bytes().chain(frac_part.bytes()).map(|b| b - b'0');
    let n_digits = (int_part.len() + frac_part.len()) as i64;
    let shift = exponent + i64::from(scale) - frac_part.len() as i64;

    let overflow = || bad("out of range");
    let mut acc: i128 = 0;
    if shift >= 0 {
        for d in digits {
            acc = acc
                .checked_mul(10)
                .and_then(|a| a.checked_add(i128::from(d)))
                .ok_or_else(overflow)?;
        }
        if acc != 0 {
            let shift = u32::try_from(shift).map_err(|_| overflow())?;
            let factor = 10i128.checked_pow(shift).ok_or_else(overflow)?;
            acc = acc.checked_mul(factor).ok_or_else(overflow)?;
        }
    } else {
        // Keep the first `keep` digits; the next one decides the rounding.
        let keep = n_digits + shift;
        let mut round_up = false;
        for (i, d) in digits.enumerate() {
            let i = i as i64;
            if i < keep {
                acc = acc
                    .checked_mul(10)
                    .and_then(|a| a.checked_add(i128::from(d)))
                    .ok_or_else(overflow)?;
            } else {
                round_up = i == keep && d >= 5;
                break;
            }
        }
        if round_up {
            acc = acc.checked_add(1).ok_or_else(overflow)?;
        }
    }
    Ok(if negative { -acc } else { acc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimals_exactly() {
        let cases: &[(&str, u32, i128)] = &[
            ("2.5e-6", 12, 2_500_000),
            ("0.0000025", 12, 2_500_000),
            ("2.5E-06", 12, 2_500_000),
            ("1e-08", 12, 10_000),
            ("0", 12, 0),
            ("0.0", 12, 0),
            ("1", 12, 1_000_000_000_000),
            ("1.5552", 12, 1_555_200_000_000),
            ("+3e-7", 12, 300_000),
            ("-0.5", 9, -500_000_000),
            (".5", 9, 500_000_000),
            ("5.", 9, 5_000_000_000),
            ("1E+3", 9, 1_000_000_000_000),
            // Float artefacts and repeating fractions round half-up at the 12th place.
            ("0.0000029999900000000002", 12, 2_999_990),
            ("3.0001999999999996E-7", 12, 300_020),
            ("3.59375E-8", 12, 35_938),
            ("0.0002833333333333333", 12, 283_333_333),
            ("1e-13", 12, 0),
            ("5e-13", 12, 1),
            ("4.9e-13", 12, 0),
            ("1e-100000000", 12, 0),
            ("0e100000000", 12, 0),
        ];
        for (text, scale, want) in cases {
            assert_eq!(parse_scaled(text, *scale).unwrap(), *want, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_numbers() {
        for text in [
            "", ".", "-", "abc", "1e", "1e+", "1.2.3", "1,5", "0x10", "1e5x", "--1",
        ] {
            assert!(parse_scaled(text, 12).is_err(), "{text:?}");
        }
        assert!(parse_scaled("1e100", 12).is_err());
        assert!(UnitPrice::from_usd_str("-1e-6").is_err());
    }

    #[test]
    fn money_display_is_exact() {
        assert_eq!(Money::from_nano_usd(7_500_000).to_string(), "0.0075");
        assert_eq!(
            Money::from_nano_usd(12 * NANO_USD_PER_USD).to_string(),
            "12"
        );
        assert_eq!(Money::from_nano_usd(1).to_string(), "0.000000001");
        assert_eq!(Money::from_nano_usd(-500_000_000).to_string(), "-0.5");
        assert_eq!(Money::ZERO.to_string(), "0");
        assert_eq!(
            Money::from_nano_usd(i64::MIN).to_string(),
            "-9223372036.854775808"
        );
        assert_eq!("0.0075".parse::<Money>().unwrap().nano_usd(), 7_500_000);
        assert_eq!(UnitPrice::from_pico_usd(2_500_000).to_string(), "0.0000025");
        assert_eq!(Money::from_nano_usd(7_500_000).to_usd_f64(), 0.0075);
    }

    #[test]
    fn money_serde_is_the_integer() {
        let m = Money::from_nano_usd(1_234);
        assert_eq!(serde_json::to_string(&m).unwrap(), "1234");
        assert_eq!(serde_json::from_str::<Money>("1234").unwrap(), m);
    }

    #[test]
    fn money_adds_and_saturates() {
        let a = Money::from_nano_usd(5);
        assert_eq!(a + a, Money::from_nano_usd(10));
        assert_eq!([a, a, a].iter().sum::<Money>(), Money::from_nano_usd(15));
        assert_eq!(
            Money::from_nano_usd(i64::MAX) + a,
            Money::from_nano_usd(i64::MAX)
        );
        assert_eq!(Money::from_nano_usd(i64::MAX).checked_add(a), None);
    }

    #[test]
    fn femto_rounds_half_up_once() {
        assert_eq!(Money::from_femto_usd(2_499_999).nano_usd(), 2);
        assert_eq!(Money::from_femto_usd(2_500_000).nano_usd(), 3);
        assert_eq!(Money::from_femto_usd(-2_500_000).nano_usd(), -3);
        assert_eq!(Money::from_femto_usd(i128::MAX).nano_usd(), i64::MAX);
    }

    #[test]
    fn fast_f64_path_agrees_with_formatting() {
        // Every number in the embedded table, plus awkward ones.
        let mut values = vec![
            0.0,
            1e-12,
            5e-13,
            4.9e-13,
            2.5e-6,
            3.59375e-8,
            0.0002833333333333333,
            15.999,
            16.0,
            1.5552,
            1e-300,
            123_456.789,
        ];
        let table: serde_json::Value = serde_json::from_str(crate::EMBEDDED_PRICES_JSON).unwrap();
        fn collect(v: &serde_json::Value, out: &mut Vec<f64>) {
            match v {
                serde_json::Value::Number(n) => out.extend(n.as_f64()),
                serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
                serde_json::Value::Object(o) => o.values().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        collect(&table, &mut values);
        assert!(values.len() > 15_000);
        let mut fast = 0;
        for v in values {
            let slow = UnitPrice::from_f64_slow(v).unwrap();
            if let Some(p) = UnitPrice::from_f64_fast(v) {
                assert_eq!(p, slow.pico_usd(), "{v:e}");
                fast += 1;
            }
            assert_eq!(UnitPrice::from_f64_exact(v).unwrap(), slow, "{v:e}");
        }
        assert!(fast > 10_000);
    }

    #[test]
    fn unit_price_deserialises_numbers_and_strings() {
        let p: Vec<UnitPrice> =
            serde_json::from_str(r#"[2.5e-6, 0.0000025, "3e-7", 0, 1, 3.59375E-8]"#).unwrap();
        let pico: Vec<u64> = p.iter().map(|p| p.pico_usd()).collect();
        assert_eq!(
            pico,
            [2_500_000, 2_500_000, 300_000, 0, 1_000_000_000_000, 35_938]
        );
        assert!(serde_json::from_str::<UnitPrice>("-1e-6").is_err());
        assert!(serde_json::from_str::<UnitPrice>("true").is_err());
        assert!(serde_json::from_str::<UnitPrice>(r#""cheap""#).is_err());
    }

    #[test]
    fn an_optional_unit_price_is_one_word_and_keeps_every_value() {
        assert_eq!(std::mem::size_of::<Option<UnitPrice>>(), 8);
        for p in [0, 1, 2_500_000, u64::MAX - 1] {
            assert_eq!(UnitPrice::from_pico_usd(p).pico_usd(), p);
        }
        assert_eq!(UnitPrice::from_pico_usd(u64::MAX).pico_usd(), u64::MAX - 1);
        assert_eq!(UnitPrice::default(), UnitPrice::ZERO);
        assert_eq!(UnitPrice::ZERO.pico_usd(), 0);
        assert!(UnitPrice::from_pico_usd(1) < UnitPrice::from_pico_usd(2));
        assert_eq!(
            "0.000002".parse::<UnitPrice>().unwrap().pico_usd(),
            2_000_000
        );
        assert!("18446744073709551615e-12".parse::<UnitPrice>().is_err());
    }
}
