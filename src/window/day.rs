//! Named batch windows (`[windows.NAME]`): when a window opens and closes on a given day, in
//! its time zone. A window that crosses midnight belongs to the day it starts.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};

use crate::config::{Config, ConfigError, KeyPath, WindowConfig};

/// One window on one day.
#[derive(Debug, Clone)]
pub struct WindowDay {
    pub name: String,
    /// The business date the window belongs to (the day it starts), `YYYY-MM-DD`.
    pub date: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `HH:MM-HH:MM`, as `plan --window` takes it.
    pub span: String,
    pub config: WindowConfig,
}

fn hhmm(config: &Config, name: &str, key: &'static str, v: &str) -> Result<NaiveTime, ConfigError> {
    NaiveTime::parse_from_str(v, "%H:%M").map_err(|_| {
        config.at(
            &KeyPath::top("windows").key(name).key(key),
            format!("{v:?} is not a time like \"06:00\""),
        )
    })
}

fn zone(config: &Config, name: &str, w: &WindowConfig) -> Result<chrono_tz::Tz, ConfigError> {
    let tz = w.time_zone.as_deref().unwrap_or("UTC");
    tz.parse::<chrono_tz::Tz>().map_err(|_| {
        config.at(
            &KeyPath::top("windows").key(name).key("time_zone"),
            format!("{tz:?} is not an IANA time zone like \"Europe/Berlin\""),
        )
    })
}

/// The local time on `date` in `tz` as UTC (a time skipped by a DST change moves forward an
/// hour; a repeated one takes its first occurrence).
fn at(tz: chrono_tz::Tz, date: NaiveDate, t: NaiveTime) -> DateTime<Utc> {
    let naive = date.and_time(t);
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(x) => x.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(x, _) => x.with_timezone(&Utc),
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|x| x.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&naive)),
    }
}

/// Checks every window of the config (times, time zones).
pub fn check_all(config: &Config) -> Result<(), ConfigError> {
    for (name, w) in &config.windows {
        hhmm(config, name, "start", &w.start)?;
        hhmm(config, name, "end", &w.end)?;
        zone(config, name, w)?;
        for (key, zero) in [
            ("workers", w.workers == Some(0)),
            ("max_attempts", w.max_attempts == Some(0)),
        ] {
            if zero {
                return Err(config.at(
                    &KeyPath::top("windows").key(name).key(key),
                    "must be at least 1",
                ));
            }
        }
    }
    Ok(())
}

/// Window `name` on `date`, or, without a date, the latest one that has opened by `now`
/// (so a nightly window resumed at 01:00 is the previous day's).
pub fn resolve(
    config: &Config,
    name: &str,
    date: Option<&str>,
    now: DateTime<Utc>,
) -> Result<WindowDay, String> {
    let w = config.windows.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.windows.keys().map(String::as_str).collect();
        format!(
            "no window `{name}` in `{}`; windows there: {}",
            config.source.path.display(),
            if known.is_empty() {
                "none (add a [windows.NAME] table)".to_string()
            } else {
                known.join(", ")
            }
        )
    })?;
    check_all(config).map_err(|e| e.to_string())?;
    let start_t = NaiveTime::parse_from_str(&w.start, "%H:%M").map_err(|e| e.to_string())?;
    let end_t = NaiveTime::parse_from_str(&w.end, "%H:%M").map_err(|e| e.to_string())?;
    let tz = zone(config, name, w).map_err(|e| e.to_string())?;
    let day = match date {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| format!("{d:?} is not a date like 2026-11-29"))?,
        None => {
            let today = now.with_timezone(&tz).date_naive();
            if at(tz, today, start_t) <= now {
                today
            } else {
                today.pred_opt().unwrap_or(today)
            }
        }
    };
    let start = at(tz, day, start_t);
    let end_day = if end_t <= start_t {
        day.succ_opt().unwrap_or(day)
    } else {
        day
    };
    let end = at(tz, end_day, end_t);
    Ok(WindowDay {
        name: name.to_string(),
        date: day.format("%Y-%m-%d").to_string(),
        start,
        end,
        span: format!("{}-{}", w.start, w.end),
        config: w.clone(),
    })
}

/// A window day for tests: `morning` on 2026-12-03, 06:00 to 10:00 UTC.
#[cfg(test)]
pub(crate) fn test_day() -> WindowDay {
    WindowDay {
        name: "morning".into(),
        date: "2026-12-03".into(),
        start: chrono::Utc::now(),
        end: chrono::Utc::now(),
        span: "06:00-10:00".into(),
        config: WindowConfig {
            start: "06:00".into(),
            end: "10:00".into(),
            time_zone: None,
            source: "inbound".into(),
            target: None,
            workers: None,
            max_attempts: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse(
            std::path::Path::new("batchwin.toml"),
            r#"
[windows.morning]
start = "06:00"
end = "10:00"
time_zone = "Europe/Berlin"
source = "/in"

[windows.nightly]
start = "22:00"
end = "02:00"
source = "/in"
"#
            .to_string(),
        )
        .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_are_placed_in_their_time_zone() {
        let c = cfg();
        let w = resolve(&c, "morning", Some("2026-11-29"), Utc::now()).unwrap();
        // Berlin is UTC+1 in November.
        assert_eq!(
            (w.start, w.end),
            (utc("2026-11-29T05:00:00Z"), utc("2026-11-29T09:00:00Z"))
        );
        let w = resolve(&c, "morning", Some("2026-07-01"), Utc::now()).unwrap();
        assert_eq!(w.start, utc("2026-07-01T04:00:00Z"));
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_starts() {
        let c = cfg();
        let w = resolve(&c, "nightly", None, utc("2026-11-30T01:00:00Z")).unwrap();
        assert_eq!(w.date, "2026-11-29");
        assert_eq!(
            (w.start, w.end),
            (utc("2026-11-29T22:00:00Z"), utc("2026-11-30T02:00:00Z"))
        );
        let w = resolve(&c, "nightly", None, utc("2026-11-30T22:30:00Z")).unwrap();
        assert_eq!(w.date, "2026-11-30");
    }

    #[test]
    fn unknown_windows_and_bad_zones_are_explained() {
        let c = cfg();
        let e = resolve(&c, "evening", None, Utc::now()).unwrap_err();
        assert!(
            e.contains("no window `evening`") && e.contains("morning, nightly"),
            "{e}"
        );
        let bad = Config::parse(
            std::path::Path::new("b.toml"),
            "[windows.x]\nstart = \"06:00\"\nend = \"25:00\"\nsource = \"/in\"\n".to_string(),
        )
        .unwrap();
        let e = check_all(&bad).unwrap_err().to_string();
        assert!(e.contains("windows.x.end") && e.contains("line 3"), "{e}");
    }
}
