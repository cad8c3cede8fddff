//! The status file: what the daemon is and how its last reload went.
//!
//! Kept beside the pidfile, with its extension replaced by `.status`
//! (`hostinfod.status` for the default pidfile), written atomically (a
//! temporary file renamed over the old one) at start, after every reload and
//! after every rejected reload, and from the poll loop at most once a second
//! while the live sessions or the counters have changed (never by the
//! accept or reaping path itself). `-s status` prints it, or turns it into
//! JSON ([`to_json`]); `-s reload` watches it to learn whether the reload it
//! asked for took effect or why not. The format is `key=value` lines; values
//! never contain a newline; the counters are `counters.NAME=N`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::counters::{self, Counters};

/// How the last reload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadResult {
    /// No reload yet.
    None,
    /// The new generation serves.
    Ok,
    /// The configuration was refused; the old one still serves.
    Rejected(String),
}

/// The daemon's state as published in the status file.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The daemon's pid.
    pub pid: u32,
    /// Successful reloads so far (0 for the first image).
    pub generation: u64,
    /// SIGHUPs acted upon so far, successful or not.
    pub reload_seq: u64,
    /// Unix time of the first start.
    pub started: i64,
    /// Unix time of the last reload attempt (0: none).
    pub last_reload: i64,
    /// Result of the last reload attempt.
    pub result: ReloadResult,
    /// Milliseconds from SIGHUP to serving, for the last successful reload.
    pub last_reload_ms: Option<f64>,
    /// The addresses served.
    pub listeners: Vec<String>,
    /// Live sessions when written.
    pub sessions: usize,
    /// The counters when written.
    pub counters: Counters,
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

impl Status {
    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "pid={}", self.pid);
        let _ = writeln!(s, "generation={}", self.generation);
        let _ = writeln!(s, "reload_seq={}", self.reload_seq);
        let _ = writeln!(s, "started={}", self.started);
        let _ = writeln!(s, "started_at={}", human_time(self.started));
        let _ = writeln!(s, "last_reload={}", self.last_reload);
        if self.last_reload > 0 {
            let _ = writeln!(s, "last_reload_at={}", human_time(self.last_reload));
        }
        let (result, error) = match &self.result {
            ReloadResult::None => ("none", None),
            ReloadResult::Ok => ("ok", None),
            ReloadResult::Rejected(e) => ("rejected", Some(e)),
        };
        let _ = writeln!(s, "last_reload_result={result}");
        if let Some(e) = error {
            let _ = writeln!(s, "last_reload_error={}", one_line(e));
        }
        if let Some(ms) = self.last_reload_ms {
            let _ = writeln!(s, "last_reload_ms={ms:.3}");
        }
        let _ = writeln!(s, "listeners={}", self.listeners.join(", "));
        let _ = writeln!(s, "sessions={}", self.sessions);
        for (name, v) in self.counters.iter() {
            let _ = writeln!(s, "counters.{name}={v}");
        }
        s
    }

    /// Writes the file atomically, in a checked runtime directory, through
    /// a fresh temporary file that is renamed over it (see
    /// [`crate::runtime::write_atomic`]): a symlink planted at the file or
    /// at any temporary name is never followed.
    pub fn write(&self, path: &Path) -> crate::error::Result<()> {
        crate::runtime::write_atomic(path, self.render().as_bytes(), 0o644)
    }
}

/// The file as a map, for the control commands; never read through a
/// symbolic link, and only a regular file.
pub fn read(path: &Path) -> Option<BTreeMap<String, String>> {
    let text = read_text(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The file's text, opened without following a symbolic link.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    (&mut f).take(1 << 16).read_to_string(&mut text)?;
    Ok(text)
}

/// The status file's map as `-s status --json` prints it: one object with
/// `pid`, `generation`, `started`, `last_reload` (RFC 3339 or null),
/// `last_reload_result` ("ok", "rejected: REASON" or null), `listeners`,
/// `sessions` (`live`, counted by the caller) and `counters`.
pub fn to_json(map: &BTreeMap<String, String>, live: usize) -> String {
    let num = |k: &str| map.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let time = |k: &str| match num(k) {
        0 => "null".to_string(),
        t => rfc3339(t as i64).map_or_else(|| "null".to_string(), |s| json_str(&s)),
    };
    let result = match map.get("last_reload_result").map(String::as_str) {
        Some("ok") => json_str("ok"),
        Some("rejected") => json_str(&format!(
            "rejected: {}",
            map.get("last_reload_error").map_or("", String::as_str)
        )),
        _ => "null".to_string(),
    };
    let listeners: Vec<String> = map
        .get("listeners")
        .map(|l| {
            l.split(", ")
                .filter(|s| !s.is_empty())
                .map(json_str)
                .collect()
        })
        .unwrap_or_default();
    let counters: Vec<String> = counters::ALL
        .iter()
        .map(|c| {
            let k = c.name();
            format!("{}:{}", json_str(k), num(&format!("counters.{k}")))
        })
        .collect();
    format!(
        "{{\"pid\":{},\"generation\":{},\"started\":{},\"last_reload\":{},\
         \"last_reload_result\":{result},\"listeners\":[{}],\"sessions\":{live},\
         \"counters\":{{{}}}}}",
        num("pid"),
        num("generation"),
        time("started"),
        time("last_reload"),
        listeners.join(","),
        counters.join(",")
    )
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Unix time `t` in RFC 3339, in local time with its offset.
fn rfc3339(t: i64) -> Option<String> {
    crate::commands::date::local(t).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
}

fn human_time(t: i64) -> String {
    let mut out = Vec::new();
    crate::commands::date::push_formatted("%Y-%m-%d %H:%M:%S %z", t, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_read_back() {
        let st = Status {
            pid: 42,
            generation: 3,
            reload_seq: 5,
            started: 1_700_000_000,
            last_reload: 1_700_000_100,
            result: ReloadResult::Rejected("/x.toml:2:1: bad\nthing".into()),
            last_reload_ms: None,
            listeners: vec!["tcp 127.0.0.1:2345".into(), "unix /tmp/s".into()],
            sessions: 2,
            counters: Counters {
                values: std::array::from_fn(|i| i as u64),
            },
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("h.status");
        st.write(&p).expect("write");
        let m = read(&p).expect("read");
        assert_eq!(m["generation"], "3");
        assert_eq!(m["last_reload_result"], "rejected");
        assert_eq!(m["last_reload_error"], "/x.toml:2:1: bad thing");
        assert_eq!(m["listeners"], "tcp 127.0.0.1:2345, unix /tmp/s");
        assert_eq!(m["counters.refused_busy"], "1");
        let j = to_json(&m, 5);
        assert!(
            j.starts_with("{\"pid\":42,\"generation\":3,\"started\":\"20"),
            "{j}"
        );
        assert!(
            j.contains("\"last_reload_result\":\"rejected: /x.toml:2:1: bad thing\""),
            "{j}"
        );
        assert!(
            j.contains("\"listeners\":[\"tcp 127.0.0.1:2345\",\"unix /tmp/s\"],\"sessions\":5,"),
            "{j}"
        );
        assert!(
            j.ends_with("\"fork_failures\":11,\"reloads\":12,\"reloads_rejected\":13}}"),
            "{j}"
        );
    }

    #[test]
    fn json_nulls_and_escapes() {
        let mut m = BTreeMap::new();
        m.insert("pid".to_string(), "7".to_string());
        m.insert("last_reload".to_string(), "0".to_string());
        m.insert("last_reload_result".to_string(), "none".to_string());
        let j = to_json(&m, 0);
        assert!(
            j.contains("\"last_reload\":null,\"last_reload_result\":null,"),
            "{j}"
        );
        assert_eq!(json_str("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }
}
