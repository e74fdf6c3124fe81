//! Seconds since 1970 as calendar dates, in UTC, for listings (`bake inspect`) and documents
//! (the SBOM's `created`). Hand-written: bake needs no more calendar than this, and no time zone
//! may ever reach an output.

/// The Gregorian date `days` days after 1970-01-01, as (year, month, day).
///
/// Howard Hinnant's `civil_from_days`: the leap-year rules repeat every 400 years (146,097
/// days), and within an era counted from 1 March the month lengths follow a closed formula.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to the Gregorian date (`year` from 1970, `month` 1..=12, `day`
/// 1..=31): the inverse of [`civil_from_days`].
pub fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DD HH:MM`, as `ls -l` shows a time.
pub fn minutes(seconds: u64) -> String {
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let rest = seconds % 86_400;
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", rest / 3600, rest % 3600 / 60)
}

/// `YYYY-MM-DDThh:mm:ssZ` (ISO 8601, as SPDX and OCI write times). A time after the year 9999,
/// which that form cannot hold, is written as its last second.
pub fn iso8601(seconds: u64) -> String {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let seconds = seconds.min(LAST);
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let time = seconds % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", time / 3600, time / 60 % 60, time % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates_convert_both_ways() {
        for days in [0, 59, 365, 10_956, 11_016, 19_675, 49_710, 50_000] {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days, "{year}-{month}-{day}");
        }
        assert_eq!(days_from_civil(1980, 1, 1), 3_652);
    }

    #[test]
    fn listing_times_are_utc_minutes() {
        assert_eq!(minutes(0), "1970-01-01 00:00");
        assert_eq!(minutes(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(minutes(951_782_400), "2000-02-29 00:00");
        assert_eq!(minutes(u64::from(u32::MAX)), "2106-02-07 06:28");
    }

    #[test]
    fn iso_times_are_utc_and_stop_at_the_year_9999() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(iso8601(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(iso8601(4_294_967_295), "2106-02-07T06:28:15Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso8601(1_767_225_599), "2025-12-31T23:59:59Z");
        assert_eq!(iso8601(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(iso8601(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn civil_dates_agree_with_a_day_by_day_count() {
        // Walks every day from 1970 to 2500 and checks each date follows the one before.
        let mut previous = civil_from_days(0);
        assert_eq!(previous, (1970, 1, 1));
        for days in 1..(530 * 366) {
            let date = civil_from_days(days);
            let (y, m, d) = previous;
            let next_day = (y, m, d + 1);
            let next_month = (y, m + 1, 1);
            let next_year = (y + 1, 1, 1);
            assert!(
                date == next_day || (d >= 28 && date == next_month) || (m == 12 && d == 31 && date == next_year),
                "{days}: {date:?} after {previous:?}"
            );
            if date == next_month {
                let leap = y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
                let length = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
                assert_eq!(d, length, "{y}-{m} ends on {d}");
            }
            previous = date;
        }
    }
}
