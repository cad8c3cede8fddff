//! `date` / `time`: the local time in `commands.date_format`.
//!
//! The local time comes from the C library's `localtime_r`, the formatting
//! from chrono's strftime. glibc parses the time zone once, at the
//! [`warm_up`] the parent calls before its first fork, and every child
//! inherits the parsed rules: a child then converts without a system call,
//! an allocation or a look at `TZ`, and still crosses DST changes correctly
//! (the rules are in the data). A change of the system's zone itself takes
//! effect at the next reload, which re-executes and parses it again. A
//! format chrono cannot render would make its `Display` fail mid-reply, so
//! the configuration's [`DateFormat`] is checked when it is loaded and a bad
//! format never reaches a session; the same look at the format finds whether
//! it shows the zone, so a reply does not parse the format again to know.
//! The default format is ctime(3)'s and Perl's `scalar localtime`:
//! `Sat Nov 21 08:40:46 2026`.

use chrono::format::{Fixed as Spec, Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate};

use crate::text::Fixed;

/// A strftime format with what a reply needs to know of it, found once,
/// when the format is made (at configuration load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    text: String,
    valid: bool,
    uses_zone: bool,
}

impl DateFormat {
    /// Parses `text` once: whether chrono can render it and whether it
    /// shows the zone.
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let (mut valid, mut uses_zone) = (true, false);
        for item in StrftimeItems::new(&text) {
            match item {
                Item::Error => valid = false,
                Item::Fixed(spec) if is_zone(&spec) => uses_zone = true,
                _ => {}
            }
        }
        DateFormat {
            text,
            valid,
            uses_zone,
        }
    }

    /// The format as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True if the format prints the zone's offset or name (`%z`, `%Z`, …).
    pub fn uses_zone(&self) -> bool {
        self.uses_zone
    }

    /// An upper bound of the format's output: rendered at a moment whose
    /// names are the longest (a Wednesday in September), with room for the
    /// longest zone names where the format shows the zone.
    pub fn longest(&self) -> usize {
        use chrono::TimeZone as _;
        if !self.valid {
            return 0;
        }
        let Some(t) = chrono::Utc
            .with_ymd_and_hms(2026, 9, 30, 23, 59, 59)
            .single()
        else {
            return 0;
        };
        let zones = StrftimeItems::new(&self.text)
            .filter(|i| matches!(i, Item::Fixed(spec) if is_zone(spec)))
            .count();
        let mut out = String::new();
        let _ = std::fmt::Write::write_fmt(
            &mut out,
            format_args!("{}", t.format_with_items(StrftimeItems::new(&self.text))),
        );
        out.len() + zones * 8
    }

    /// Checks that chrono can render the format.
    pub fn validate(&self) -> Result<(), String> {
        if self.valid {
            Ok(())
        } else {
            Err(format!("{:?} is not a valid strftime format", self.text))
        }
    }
}

impl From<&str> for DateFormat {
    fn from(text: &str) -> Self {
        DateFormat::new(text)
    }
}

impl From<String> for DateFormat {
    fn from(text: String) -> Self {
        DateFormat::new(text)
    }
}

/// Read from the configuration as a string, checked as it is read: chrono
/// must be able to render it, and its longest output must fit the 256
/// bytes a reply gives it (longer output would be cut).
impl<'de> serde::Deserialize<'de> for DateFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = DateFormat::new(String::deserialize(d)?);
        f.validate().map_err(serde::de::Error::custom)?;
        let longest = f.longest();
        if longest > MAX_OUTPUT {
            return Err(serde::de::Error::custom(format!(
                "{:?} can print up to {longest} bytes; at most {MAX_OUTPUT} fit",
                f.text
            )));
        }
        Ok(f)
    }
}

/// Written as the plain string, as it is in the configuration file.
impl serde::Serialize for DateFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

unsafe extern "C" {
    // POSIX tzset(3); the libc crate does not declare it.
    fn tzset();
}

/// Parses the system time zone once (TZ or /etc/localtime) so forked
/// children inherit it.
pub fn warm_up() {
    // SAFETY: tzset only reads the environment and the zone file; the
    // process is single-threaded.
    unsafe { tzset() };
}

/// Unix time `t` as a local date-time with its UTC offset.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn local(t: i64) -> Option<DateTime<FixedOffset>> {
    // SAFETY: tm is plain old data that localtime_r fills in; both pointers
    // are valid for the duration of the call.
    let tm = unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        let tt: nix::libc::time_t = t;
        if nix::libc::localtime_r(&tt, &mut tm).is_null() {
            return None;
        }
        tm
    };
    let offset = FixedOffset::east_opt(i32::try_from(tm.tm_gmtoff).ok()?)?;
    let naive =
        NaiveDate::from_ymd_opt(tm.tm_year + 1900, (tm.tm_mon + 1) as u32, tm.tm_mday as u32)?
            .and_hms_opt(
                tm.tm_hour as u32,
                tm.tm_min as u32,
                tm.tm_sec.min(59) as u32,
            )?;
    naive.and_local_timezone(offset).single()
}

/// Unix time now.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Writes local time `t` in `fmt` into `w`, as chrono renders it (not
/// cleaned). `uses_zone` must say whether `fmt` shows the zone: chrono
/// renders the offset's name into a String whenever it formats a value with
/// a time zone, so the plain date-time is used unless the format asks for
/// the zone, and the common reply then allocates nothing. (A zone format
/// passed with `uses_zone` false renders only up to the zone.)
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn write_local(fmt: &str, uses_zone: bool, t: i64, w: &mut Fixed<'_>) {
    if let Some(dt) = local(t) {
        // Cannot fail for a validated format; if it somehow did, the text is
        // simply shorter, which is better than a dead session.
        let _ = if uses_zone {
            dt.format(fmt).write_to(w)
        } else {
            dt.naive_local().format(fmt).write_to(w)
        };
    }
}

/// Appends local time `t` in `fmt` (control characters removed) to `out`;
/// at most 256 bytes of it. For a one-off format: `fmt` is parsed here to
/// know whether it shows the zone.
pub fn push_formatted(fmt: &str, t: i64, out: &mut Vec<u8>) {
    push_local(fmt, uses_zone(fmt), t, out);
}

/// The most bytes of formatted time a reply holds.
pub const MAX_OUTPUT: usize = 256;

#[unsafe(link_section = ".text.hot.hostinfod")]
fn push_local(fmt: &str, uses_zone: bool, t: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; MAX_OUTPUT];
    let mut w = Fixed::new(&mut buf);
    write_local(fmt, uses_zone, t, &mut w);
    crate::text::push_clean(out, w.as_bytes());
}

/// True if `fmt` prints the zone's offset or name (`%z`, `%:z`, `%Z`, …).
fn uses_zone(fmt: &str) -> bool {
    StrftimeItems::new(fmt).any(|i| matches!(i, Item::Fixed(spec) if is_zone(&spec)))
}

fn is_zone(spec: &Spec) -> bool {
    matches!(
        spec,
        Spec::TimezoneName
            | Spec::TimezoneOffset
            | Spec::TimezoneOffsetColon
            | Spec::TimezoneOffsetDoubleColon
            | Spec::TimezoneOffsetTripleColon
            | Spec::TimezoneOffsetColonZ
            | Spec::TimezoneOffsetZ
            | Spec::RFC2822
            | Spec::RFC3339
    )
}

/// Appends the current local time in `fmt` and `eol`.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn reply(fmt: &DateFormat, eol: &[u8], out: &mut Vec<u8>) {
    push_local(fmt.as_str(), fmt.uses_zone(), now(), out);
    out.extend_from_slice(eol);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format_looks_like_ctime() {
        warm_up();
        let mut out = Vec::new();
        reply(&"%a %b %e %H:%M:%S %Y".into(), b"\r\n", &mut out);
        let s = String::from_utf8(out).expect("ascii");
        assert!(s.ends_with("\r\n"));
        let fields: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(fields.len(), 5, "{s:?}");
        assert_eq!(s.trim_end().len(), 24, "ctime width: {s:?}");
    }

    #[test]
    fn known_instant_in_the_process_zone() {
        warm_up();
        let mut out = Vec::new();
        push_formatted("%Y-%m-%d", 0, &mut out);
        // 1970-01-01 or 1969-12-31 depending on the zone tests run in.
        let s = String::from_utf8(out).expect("ascii");
        assert!(s == "1970-01-01" || s == "1969-12-31", "{s}");
        let dt = local(86_400 * 365).expect("valid");
        assert_eq!(dt.timestamp(), 86_400 * 365);
    }

    #[test]
    fn zone_formats_still_render() {
        assert!(uses_zone("%H %z"));
        assert!(!uses_zone("%a %b %e %H:%M:%S %Y"));
        let mut out = Vec::new();
        push_formatted("%z", 0, &mut out);
        assert_eq!(out.len(), 5, "{out:?}");
    }

    #[test]
    fn long_output_is_cut_not_panicking() {
        let mut out = Vec::new();
        push_formatted(&"%Y".repeat(200), 0, &mut out);
        assert_eq!(out.len(), 256);
    }

    #[test]
    fn the_zone_flag_is_found_once_and_matches() {
        for (fmt, zone) in [
            ("%a %b %e %H:%M:%S %Y", false),
            ("%Y-%m-%d %H:%M", false),
            ("%H %z", true),
            ("%:z", true),
            ("%Z", true),
            ("%c", false),
            ("%+", true),
            ("plain", false),
            ("%Q %z", true),
        ] {
            let f = DateFormat::new(fmt);
            assert_eq!(f.uses_zone(), zone, "{fmt}");
            assert_eq!(uses_zone(fmt), zone, "{fmt}");
            assert_eq!(f.as_str(), fmt);
        }
        assert_eq!(DateFormat::from("%Y"), DateFormat::new(String::from("%Y")));
    }

    #[test]
    fn reply_renders_the_zone_when_asked() {
        warm_up();
        let mut out = Vec::new();
        reply(&"%z".into(), b"\n", &mut out);
        assert_eq!(out.len(), 6, "{out:?}");
        let mut plain = Vec::new();
        reply(&"%Y".into(), b"\n", &mut plain);
        assert_eq!(plain.len(), 5, "{plain:?}");
    }

    #[test]
    fn formats_are_validated() {
        assert!(DateFormat::new("%Y").validate().is_ok());
        let e = DateFormat::new("%Q").validate().expect_err("bad");
        assert_eq!(e, "\"%Q\" is not a valid strftime format");
        for fmt in ["%Y-%m-%d %H:%M", "plain text", "%z %c"] {
            assert!(DateFormat::new(fmt).validate().is_ok(), "{fmt}");
        }
        for fmt in ["%Q", "%", "%Y %Q %z"] {
            assert!(DateFormat::new(fmt).validate().is_err(), "{fmt}");
        }
    }
}
