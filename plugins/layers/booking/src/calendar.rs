//! Booked time and the search for a free discovery-call slot (pure: the day index comes
//! from a loader, so tests run without the host).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strata_sdk::layer::utc::{day_of, weekday, DAY_MS};

pub const MINUTE_MS: i64 = 60_000;
/// Length of an automatically booked discovery call.
pub const CALL_MINUTES: i64 = 30;
/// Business hours (UTC, minutes of the day), Monday to Friday.
pub const OPEN_MIN: i64 = 9 * 60;
pub const CLOSE_MIN: i64 = 17 * 60;
/// Longest booking the webhook accepts (also how far back a booking can reach into a day).
pub const MAX_MINUTES: i64 = 240;
pub const MIN_MINUTES: i64 = 15;
/// How far ahead the slot search looks.
pub const HORIZON_DAYS: i64 = 60;

/// One booking in a day's index (the day its start falls on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// `[a0, a1)` and `[b0, b1)` share time.
pub fn overlaps(a0: i64, a1: i64, b0: i64, b1: i64) -> bool {
    a0 < b1 && b0 < a1
}

/// The days whose index can hold a booking overlapping `[start, end)`: a booking starts
/// at most [`MAX_MINUTES`] before it ends.
pub fn days_touching(start: i64, end: i64) -> std::ops::RangeInclusive<i64> {
    day_of(start - MAX_MINUTES * MINUTE_MS)..=day_of(end - 1)
}

/// The next half hour strictly after `now_ms`.
pub fn next_half_hour(now_ms: i64) -> i64 {
    let step = 30 * MINUTE_MS;
    (now_ms.div_euclid(step) + 1) * step
}

/// Day indices, loaded once per day through `load`.
pub struct Calendar<F> {
    load: F,
    days: BTreeMap<i64, Vec<Entry>>,
}

impl<F, E> Calendar<F>
where
    F: FnMut(i64) -> Result<Vec<Entry>, E>,
{
    pub fn new(load: F) -> Self {
        Self {
            load,
            days: BTreeMap::new(),
        }
    }

    /// The index of `day`.
    pub fn day(&mut self, day: i64) -> Result<&Vec<Entry>, E> {
        if !self.days.contains_key(&day) {
            let entries = (self.load)(day)?;
            self.days.insert(day, entries);
        }
        Ok(&self.days[&day])
    }

    /// The first booking overlapping `[start, end)`, if any.
    pub fn conflict(&mut self, start: i64, end: i64) -> Result<Option<Entry>, E> {
        for d in days_touching(start, end) {
            if let Some(e) = self
                .day(d)?
                .iter()
                .find(|e| overlaps(start, end, e.start_ms, e.end_ms))
            {
                return Ok(Some(e.clone()));
            }
        }
        Ok(None)
    }

    /// Adds a booking to its day's index; returns that day and its new index.
    pub fn add(&mut self, entry: Entry) -> Result<(i64, Vec<Entry>), E> {
        let day = day_of(entry.start_ms);
        self.day(day)?;
        let list = self.days.get_mut(&day).expect("loaded above");
        list.push(entry);
        list.sort_by_key(|e| e.start_ms);
        Ok((day, list.clone()))
    }

    /// The start of the first free 30-minute business slot (Mon–Fri 09:00–17:00 UTC,
    /// 30-minute grid) from the next half hour after `now_ms`, within [`HORIZON_DAYS`].
    pub fn next_free_slot(&mut self, now_ms: i64) -> Result<Option<i64>, E> {
        let len = CALL_MINUTES * MINUTE_MS;
        let limit = now_ms + HORIZON_DAYS * DAY_MS;
        let mut t = next_half_hour(now_ms);
        while t < limit {
            let day = day_of(t);
            let minute = (t - day * DAY_MS) / MINUTE_MS;
            if weekday(day) >= 5 || minute + CALL_MINUTES > CLOSE_MIN {
                t = (day + 1) * DAY_MS + OPEN_MIN * MINUTE_MS;
            } else if minute < OPEN_MIN {
                t = day * DAY_MS + OPEN_MIN * MINUTE_MS;
            } else if self.conflict(t, t + len)?.is_some() {
                t += len;
            } else {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use strata_sdk::layer::utc::{parse_rfc3339, rfc3339};

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    fn cal(entries: Vec<Entry>) -> Calendar<impl FnMut(i64) -> Result<Vec<Entry>, Infallible>> {
        Calendar::new(move |day| {
            Ok(entries
                .iter()
                .filter(|e| day_of(e.start_ms) == day)
                .cloned()
                .collect())
        })
    }

    fn entry(id: &str, start: &str, minutes: i64) -> Entry {
        let s = t(start);
        Entry {
            id: id.into(),
            start_ms: s,
            end_ms: s + minutes * MINUTE_MS,
        }
    }

    fn slot(
        c: &mut Calendar<impl FnMut(i64) -> Result<Vec<Entry>, Infallible>>,
        now: &str,
    ) -> String {
        rfc3339(c.next_free_slot(t(now)).unwrap().unwrap())
    }

    #[test]
    fn overlap_is_half_open() {
        assert!(overlaps(0, 10, 5, 15));
        assert!(overlaps(5, 15, 0, 10));
        assert!(overlaps(0, 10, 2, 3));
        assert!(!overlaps(0, 10, 10, 20), "back to back is fine");
        assert!(!overlaps(10, 20, 0, 10));
    }

    #[test]
    fn next_half_hour_is_strictly_after() {
        assert_eq!(
            rfc3339(next_half_hour(t("2026-11-23T10:00:00Z"))),
            "2026-11-23T10:30:00Z"
        );
        assert_eq!(
            rfc3339(next_half_hour(t("2026-11-23T10:10:00Z"))),
            "2026-11-23T10:30:00Z"
        );
        assert_eq!(
            rfc3339(next_half_hour(t("2026-11-23T10:29:59Z"))),
            "2026-11-23T10:30:00Z"
        );
    }

    #[test]
    fn slot_search_in_business_hours() {
        let mut c = cal(vec![]);
        // Monday 2026-11-23.
        assert_eq!(slot(&mut c, "2026-11-23T10:10:00Z"), "2026-11-23T10:30:00Z");
        assert_eq!(slot(&mut c, "2026-11-23T06:00:00Z"), "2026-11-23T09:00:00Z");
        assert_eq!(slot(&mut c, "2026-11-23T16:29:00Z"), "2026-11-23T16:30:00Z");
        assert_eq!(slot(&mut c, "2026-11-23T16:30:00Z"), "2026-11-24T09:00:00Z");
        assert_eq!(slot(&mut c, "2026-11-23T23:59:00Z"), "2026-11-24T09:00:00Z");
    }

    #[test]
    fn weekends_are_skipped() {
        let mut c = cal(vec![]);
        // Friday after hours → Monday; Saturday and Sunday → Monday.
        assert_eq!(slot(&mut c, "2026-11-27T16:45:00Z"), "2026-11-30T09:00:00Z");
        assert_eq!(slot(&mut c, "2026-11-28T12:00:00Z"), "2026-11-30T09:00:00Z");
        assert_eq!(slot(&mut c, "2026-11-29T08:00:00Z"), "2026-11-30T09:00:00Z");
    }

    #[test]
    fn booked_slots_are_skipped() {
        let mut c = cal(vec![
            entry("a", "2026-11-23T10:30:00Z", 30),
            // An odd webhook booking blocks both grid slots it touches.
            entry("b", "2026-11-23T11:15:00Z", 30),
            // A long booking from the previous day's evening reaching into nothing.
            entry("c", "2026-11-22T22:00:00Z", 240),
        ]);
        assert_eq!(slot(&mut c, "2026-11-23T10:10:00Z"), "2026-11-23T12:00:00Z");
        assert_eq!(
            c.conflict(t("2026-11-23T11:00:00Z"), t("2026-11-23T11:30:00Z"))
                .unwrap()
                .unwrap()
                .id,
            "b"
        );
        assert_eq!(
            c.conflict(t("2026-11-23T01:00:00Z"), t("2026-11-23T01:30:00Z"))
                .unwrap()
                .unwrap()
                .id,
            "c",
            "a booking spilling over midnight is seen"
        );
        assert!(c
            .conflict(t("2026-11-23T11:45:00Z"), t("2026-11-23T12:00:00Z"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_full_day_moves_to_the_next_business_day() {
        let full: Vec<Entry> = (0..16)
            .map(|i| {
                let s = t("2026-11-27T09:00:00Z") + i * 30 * MINUTE_MS;
                Entry {
                    id: format!("f{i}"),
                    start_ms: s,
                    end_ms: s + 30 * MINUTE_MS,
                }
            })
            .collect();
        let mut c = cal(full);
        assert_eq!(slot(&mut c, "2026-11-27T07:00:00Z"), "2026-11-30T09:00:00Z");
        let (day, list) = c.add(entry("n", "2026-11-30T09:00:00Z", 30)).unwrap();
        assert_eq!(day, day_of(t("2026-11-30T00:00:00Z")));
        assert_eq!(list.len(), 1);
        assert_eq!(slot(&mut c, "2026-11-27T07:00:00Z"), "2026-11-30T09:30:00Z");
    }
}
