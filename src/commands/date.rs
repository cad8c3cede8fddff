//! `date` / `time`: the local time in `commands.date_format`.
//!
//! chrono renders strftime formats; a format chrono cannot render would make
//! its `Display` fail mid-reply, so [`validate_format`] runs at configuration
//! load and a bad format never reaches a session. The default format is that
//! of ctime(3) and Perl's `scalar localtime`: `Sat Nov 21 08:40:46 2026`.

use std::fmt::Write as _;

use chrono::Local;
use chrono::format::{Item, StrftimeItems};

/// Checks that chrono can render `fmt`.
pub fn validate_format(fmt: &str) -> Result<(), String> {
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        Err(format!("{fmt:?} is not a valid strftime format"))
    } else {
        Ok(())
    }
}

/// Appends the current local time and `eol`.
pub fn reply(fmt: &str, eol: &[u8], out: &mut Vec<u8>) {
    let mut s = String::with_capacity(64);
    // Cannot fail for a validated format; if it somehow did, the line is
    // simply shorter, which is better than a dead session.
    let _ = write!(s, "{}", Local::now().format(fmt));
    crate::text::push_clean(out, s.as_bytes());
    out.extend_from_slice(eol);
}

/// Warms chrono's cache of the local time zone, so that forked children
/// inherit it instead of each reading /etc/localtime again.
pub fn warm_up() {
    let _ = Local::now();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format_looks_like_ctime() {
        let mut out = Vec::new();
        reply("%a %b %e %H:%M:%S %Y", b"\r\n", &mut out);
        let s = String::from_utf8(out).expect("ascii");
        assert!(s.ends_with("\r\n"));
        let fields: Vec<&str> = s.split_whitespace().collect();
        assert_eq!(fields.len(), 5, "{s:?}");
        assert_eq!(s.trim_end().len(), 24, "ctime width: {s:?}");
    }

    #[test]
    fn formats_are_validated() {
        assert!(validate_format("%Y-%m-%d %H:%M").is_ok());
        assert!(validate_format("plain text").is_ok());
        assert!(validate_format("%Q").is_err());
        assert!(validate_format("%").is_err());
    }
}
