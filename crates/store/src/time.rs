//! Time in storage: unix milliseconds, UTC calendar days, and budget durations.
//!
//! Everything is integer arithmetic on the proleptic Gregorian calendar in UTC; no time-zone
//! database and no date crate is needed for what the store does (days for aggregates, months
//! for `budget_duration = "1mo"`).

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::StoreError;

const MS_PER_DAY: i64 = 86_400_000;

/// The current time in unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 of the civil date `y-m-d` (month 1..=12, day 1..=31).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let m = i64::from(m);
    let d = i64::from(d);
    // Count years from March so that the leap day is the last day of the "year".
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // 0..=399
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // 0..=365
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // 0..=146096
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of `days` since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // 0..=11, March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// A UTC calendar day: the unit of the daily spend aggregates and of spend reports.
/// Displays and parses as `YYYY-MM-DD`, which is also how it is stored (so it sorts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

impl Day {
    /// The day containing the instant `unix_ms`.
    pub fn from_unix_ms(unix_ms: i64) -> Self {
        Self(unix_ms.div_euclid(MS_PER_DAY))
    }

    /// Today (UTC).
    pub fn today() -> Self {
        Self::from_unix_ms(now_ms())
    }

    /// The day `y-m-d`, if it exists.
    pub fn from_ymd(y: i64, m: u32, d: u32) -> Option<Self> {
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return None;
        }
        Some(Self(days_from_civil(y, m, d)))
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i64 {
        self.0
    }

    /// Unix milliseconds at the start (00:00 UTC) of this day.
    pub fn start_ms(self) -> i64 {
        self.0.saturating_mul(MS_PER_DAY)
    }

    /// The day `n` days later (earlier when negative).
    pub fn plus_days(self, n: i64) -> Self {
        Self(self.0 + n)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for Day {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StoreError::Invalid(format!("not a YYYY-MM-DD day: {s:?}"));
        let mut parts = s.splitn(3, '-');
        let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let y: i64 = y.parse().map_err(|_| bad())?;
        let m: u32 = m.parse().map_err(|_| bad())?;
        let d: u32 = d.parse().map_err(|_| bad())?;
        Self::from_ymd(y, m, d).ok_or_else(bad)
    }
}

/// How often a budget resets, parsed from LiteLLM's `budget_duration` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetDuration {
    /// A fixed length, in seconds (`30s`, `10m`, `1h`, `30d`, `2w`).
    Seconds(u64),
    /// Calendar months (`1mo`): the same day of the month, clamped to the month's length.
    Months(u32),
}

/// Parse a budget duration: a positive integer followed by `s` (seconds), `m` (minutes),
/// `h` (hours), `d` (days), `w` (weeks) or `mo` (calendar months); a bare integer is seconds.
/// These are the strings LiteLLM accepts for `budget_duration`.
///
/// ```
/// use llmux_store::{parse_duration, BudgetDuration};
/// assert_eq!(parse_duration("30d").unwrap(), BudgetDuration::Seconds(30 * 86_400));
/// assert_eq!(parse_duration("1mo").unwrap(), BudgetDuration::Months(1));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<BudgetDuration, StoreError> {
    let bad = || {
        StoreError::Invalid(format!(
            "not a duration: {s:?} (expected e.g. 30s, 10m, 1h, 30d, 1w, 1mo)"
        ))
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    let mult: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "mo" => {
            return u32::try_from(n)
                .map(BudgetDuration::Months)
                .map_err(|_| bad());
        }
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .filter(|secs| *secs <= i64::MAX as u64 / 1000)
        .map(BudgetDuration::Seconds)
        .ok_or_else(bad)
}

impl BudgetDuration {
    /// The instant one period after `from_ms`.
    pub fn after(self, from_ms: i64) -> i64 {
        match self {
            Self::Seconds(s) => from_ms.saturating_add((s as i64).saturating_mul(1000)),
            Self::Months(n) => add_months(from_ms, n),
        }
    }

    /// The first reset instant strictly after `now_ms` on the schedule anchored at
    /// `anchor_ms` (the previous reset instant): `anchor + k·period` for the smallest such k ≥ 1.
    /// A gateway that was down for several periods resets once, onto the original schedule.
    pub fn next_reset(self, anchor_ms: i64, now_ms: i64) -> i64 {
        match self {
            Self::Seconds(s) => {
                let p = (s as i64).saturating_mul(1000).max(1);
                if now_ms < anchor_ms {
                    return anchor_ms.saturating_add(p);
                }
                let k = (now_ms - anchor_ms) / p + 1;
                anchor_ms.saturating_add(k.saturating_mul(p))
            }
            Self::Months(n) => {
                // Always count from the anchor so that a clamped month (Jan 31 → Feb 28)
                // does not shift the schedule (→ Mar 31, not Mar 28). Bounded to 100 years.
                let mut k: u32 = 1;
                let mut next = add_months(anchor_ms, n);
                while next <= now_ms && k < 1200 {
                    k += 1;
                    next = add_months(anchor_ms, n.saturating_mul(k));
                }
                if next <= now_ms {
                    self.after(now_ms)
                } else {
                    next
                }
            }
        }
    }
}

fn add_months(from_ms: i64, n: u32) -> i64 {
    let day = from_ms.div_euclid(MS_PER_DAY);
    let time_of_day = from_ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(day);
    let total = y * 12 + i64::from(m - 1) + i64::from(n);
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let nd = d.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd) * MS_PER_DAY + time_of_day
}

impl fmt::Display for BudgetDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Months(n) => write!(f, "{n}mo"),
            Self::Seconds(s) if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            Self::Seconds(s) if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            Self::Seconds(s) if s % 60 == 0 => write!(f, "{}m", s / 60),
            Self::Seconds(s) => write!(f, "{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_over_four_centuries() {
        for days in (-200_000..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(Day::from_unix_ms(0).to_string(), "1970-01-01");
        assert_eq!(Day::from_unix_ms(-1).to_string(), "1969-12-31");
        // 2024-02-29T12:00:00Z
        assert_eq!(
            Day::from_unix_ms(1_709_208_000_000).to_string(),
            "2024-02-29"
        );
        assert_eq!(
            "2000-02-29".parse::<Day>().unwrap().to_string(),
            "2000-02-29"
        );
        assert!("1900-02-29".parse::<Day>().is_err());
        assert!("2024-13-01".parse::<Day>().is_err());
        assert!("2024-1-01".parse::<Day>().is_err());
        let d: Day = "2025-03-01".parse().unwrap();
        assert_eq!(d.plus_days(-1).to_string(), "2025-02-28");
        assert_eq!(Day::from_unix_ms(d.start_ms()), d);
    }

    #[test]
    fn durations_parse_like_litellm() {
        let cases = [
            ("30s", Some(BudgetDuration::Seconds(30))),
            ("45", Some(BudgetDuration::Seconds(45))),
            ("10m", Some(BudgetDuration::Seconds(600))),
            ("1h", Some(BudgetDuration::Seconds(3600))),
            ("1d", Some(BudgetDuration::Seconds(86_400))),
            ("30d", Some(BudgetDuration::Seconds(2_592_000))),
            ("2w", Some(BudgetDuration::Seconds(1_209_600))),
            ("1mo", Some(BudgetDuration::Months(1))),
            (" 7d ", Some(BudgetDuration::Seconds(604_800))),
            ("0d", None),
            ("", None),
            ("d", None),
            ("1y", None),
            ("-1d", None),
            ("1.5h", None),
            ("99999999999999999999d", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s).ok(), want, "{s:?}");
        }
        for s in ["30s", "10m", "1h", "30d", "1mo"] {
            assert_eq!(parse_duration(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn resets_follow_the_schedule() {
        let day = BudgetDuration::Seconds(86_400);
        let anchor = 1_000 * 86_400_000;
        assert_eq!(day.next_reset(anchor, anchor), anchor + 86_400_000);
        assert_eq!(day.next_reset(anchor, anchor + 1), anchor + 86_400_000);
        // Down for three and a half days: one reset, back on the daily schedule.
        assert_eq!(
            day.next_reset(anchor, anchor + 3 * 86_400_000 + 5),
            anchor + 4 * 86_400_000
        );
        let jan31: Day = "2025-01-31".parse().unwrap();
        let mo = BudgetDuration::Months(1);
        let feb = Day::from_unix_ms(mo.after(jan31.start_ms()));
        assert_eq!(feb.to_string(), "2025-02-28");
        let next = mo.next_reset(jan31.start_ms(), jan31.start_ms() + 40 * 86_400_000);
        assert_eq!(Day::from_unix_ms(next).to_string(), "2025-03-31");
    }
}
