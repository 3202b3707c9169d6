//! Calendar dates as day numbers, and the age threshold the circuit checks.
//!
//! A date is an `i32` count of days since 1970-01-01 (proleptic Gregorian, UTC), negative before
//! 1970 so that birth dates of people born before the epoch are representable. Inside the circuit
//! a day number `d` is the 32-bit integer `d + 2^31` ([`date_to_circuit`]), so every date is range
//! checked to 32 bits and compared without field wrap-around.

use crate::field::Fr;

/// The bias added to a day number to make it a non-negative 32-bit circuit value.
pub const DATE_BIAS: i64 = 1 << 31;

/// The circuit value of a day number: `days + 2^31`, always in `[0, 2^32)`.
pub fn date_to_circuit(days: i32) -> Fr {
    Fr::from(date_to_u32(days))
}

/// `days + 2^31` as an integer.
pub fn date_to_u32(days: i32) -> u32 {
    // In range by construction: i32::MIN + 2^31 = 0 and i32::MAX + 2^31 = 2^32 - 1.
    (i64::from(days) + DATE_BIAS) as u32
}

/// Day number of a Gregorian date, or `None` when the date does not exist (for example 2023-02-29)
/// or falls outside the `i32` day range.
pub fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i32> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // Howard Hinnant's days_from_civil, in i64 so no intermediate overflows.
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    i32::try_from(era * 146_097 + doe - 719_468).ok()
}

/// The Gregorian `(year, month, day)` of a day number.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = y + i64::from(m <= 2);
    // |days| < 2^31 keeps the year within about ±5.9 million, far inside i32.
    (year as i32, m, d)
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// The latest birth date at which a person is at least `min_age_years` old on `today`.
///
/// A person born on `(y, m, d)` reaches age `n` on the date `(y + n, m, d)`; someone born on
/// 29 February reaches it on 1 March in a common year. So the answer is `today` moved back
/// `min_age_years` years, or 28 February when that lands on a 29 February that does not exist.
/// Someone born on day `b` is old enough exactly when `b <= max_birth_date(today, n)`, which is
/// the comparison the circuit makes. Returns `None` if the result leaves the `i32` day range.
pub fn max_birth_date(today: i32, min_age_years: u8) -> Option<i32> {
    let (year, month, day) = civil_from_days(today);
    let year = year.checked_sub(i32::from(min_age_years))?;
    days_from_civil(year, month, day).or_else(|| days_from_civil(year, month, day - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(1969, 12, 31), Some(-1));
        assert_eq!(days_from_civil(2023, 2, 29), None);
        assert_eq!(days_from_civil(2024, 13, 1), None);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
    }

    #[test]
    fn age_threshold() {
        let today = days_from_civil(2026, 6, 15).unwrap();
        assert_eq!(max_birth_date(today, 18), days_from_civil(2008, 6, 15));
        // Leap day: on 2026-02-28 someone born 2008-02-29 is still 17.
        let feb28 = days_from_civil(2026, 2, 28).unwrap();
        let leap_birth = days_from_civil(2008, 2, 29).unwrap();
        assert!(leap_birth > max_birth_date(feb28, 18).unwrap());
        let mar1 = days_from_civil(2026, 3, 1).unwrap();
        assert!(leap_birth <= max_birth_date(mar1, 18).unwrap());
        // Today is a leap day and the target year is not a leap year.
        let leap_today = days_from_civil(2028, 2, 29).unwrap();
        assert_eq!(max_birth_date(leap_today, 18), days_from_civil(2010, 2, 28));
        // Birth dates before 1970 are negative and still compare correctly.
        let old = days_from_civil(1950, 1, 1).unwrap();
        assert!(old < 0 && old <= max_birth_date(today, 18).unwrap());
    }

    #[test]
    fn circuit_encoding_is_monotonic() {
        assert_eq!(date_to_u32(i32::MIN), 0);
        assert_eq!(date_to_u32(i32::MAX), u32::MAX);
        assert!(date_to_u32(-1) < date_to_u32(0));
    }
}
