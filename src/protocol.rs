//! The line protocol: one input line in, the reply bytes out.
//!
//! [`parse`] takes the first word of a line, case-insensitively, with blanks
//! around it ignored; [`respond`] appends the reply for that command to the
//! session's output buffer, using the session's line end (CRLF on TCP, LF on
//! Unix sockets) and says whether the session goes on. Neither does I/O of its
//! own beyond what a command needs to read its files, so the whole exchange is
//! testable without a socket.
//!
//! [`parse`]: crate::protocol::parse
//! [`respond`]: crate::protocol::respond

use crate::commands;
use crate::config::Commands;
use crate::text;

/// The reply to `help` and the second line of the reply to an unknown word.
pub const HELP: &[u8] = b"Commands: quit date who cookie motd help";
/// The reply to `quit`.
pub const GOODBYE: &[u8] = b"Goodbye.";
/// Sent when a session is closed for being idle or too old.
pub const TIMEOUT: &[u8] = b"Timeout, goodbye.";
/// Sent to every client when the daemon stops.
pub const SHUTTING_DOWN: &[u8] = b"Server shutting down.";

/// A parsed input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `date`, `time`
    Date,
    /// `who`
    Who,
    /// `cookie`, `fortune`
    Cookie,
    /// `motd`
    Motd,
    /// `help`, `?`
    Help,
    /// `quit`, `exit`
    Quit,
    /// A line of nothing but blanks.
    Blank,
    /// Any other first word.
    Unknown(&'a [u8]),
}

/// Whether the session continues after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send the prompt and read the next line.
    Continue,
    /// Close the connection.
    Close,
}

/// Blanks that separate words: space, TAB, VT, FF and NUL (a NUL is what
/// some clients pad with, and it should not make `date` unrecognisable).
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == 0 || b == b'\x0b' || b == b'\x0c'
}

/// The command named by the first word of `line`.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn parse(line: &[u8]) -> Command<'_> {
    let start = line.iter().position(|&b| !is_blank(b));
    let Some(start) = start else {
        return Command::Blank;
    };
    let rest = &line[start..];
    let word = &rest[..rest.iter().position(|&b| is_blank(b)).unwrap_or(rest.len())];
    const TABLE: &[(&[u8], Command<'static>)] = &[
        (b"date", Command::Date),
        (b"time", Command::Date),
        (b"who", Command::Who),
        (b"cookie", Command::Cookie),
        (b"fortune", Command::Cookie),
        (b"motd", Command::Motd),
        (b"help", Command::Help),
        (b"?", Command::Help),
        (b"quit", Command::Quit),
        (b"exit", Command::Quit),
    ];
    TABLE
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map_or(Command::Unknown(word), |&(_, c)| c)
}

/// Appends the reply to `cmd` to `out`, lines ended with `eol`.
#[unsafe(link_section = ".text.hot.hostinfod")]
pub fn respond(cmd: Command<'_>, cfg: &Commands, eol: &[u8], out: &mut Vec<u8>) -> Outcome {
    match cmd {
        Command::Date => commands::date::reply(&cfg.date_format, eol, out),
        Command::Who => commands::who::reply(cfg, eol, out),
        Command::Cookie => commands::cookie::reply(&cfg.fortune_paths, eol, out),
        Command::Motd => commands::motd::reply(&cfg.motd_files, eol, out),
        Command::Help => text::push_line(out, HELP, eol),
        Command::Quit => {
            text::push_line(out, GOODBYE, eol);
            return Outcome::Close;
        }
        Command::Blank => {}
        Command::Unknown(word) => {
            out.extend_from_slice(b"Unknown command \"");
            // The word is the client's own bytes; echo it without control
            // characters so it cannot drive the client's terminal either.
            text::push_clean(out, word);
            out.extend_from_slice(b"\".");
            out.extend_from_slice(eol);
            text::push_line(out, HELP, eol);
        }
    }
    Outcome::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_word_case_insensitive() {
        assert_eq!(parse(b"date"), Command::Date);
        assert_eq!(parse(b"  DaTe  now"), Command::Date);
        assert_eq!(parse(b"\tTIME"), Command::Date);
        assert_eq!(parse(b"Fortune"), Command::Cookie);
        assert_eq!(parse(b"?"), Command::Help);
        assert_eq!(parse(b"EXIT"), Command::Quit);
        assert_eq!(parse(b"date\0"), Command::Date);
    }

    #[test]
    fn blank_and_unknown() {
        assert_eq!(parse(b""), Command::Blank);
        assert_eq!(parse(b" \t "), Command::Blank);
        assert_eq!(parse(b"dates x"), Command::Unknown(b"dates"));
        assert_eq!(parse(b"\xff\xfe"), Command::Unknown(b"\xff\xfe"));
    }

    fn cfg() -> Commands {
        Commands {
            date_format: "%Y".into(),
            utmp_file: "/nonexistent/utmp".into(),
            who_source: crate::config::WhoSource::Utmp,
            motd_files: vec!["/nonexistent/motd".into()],
            fortune_paths: vec![],
        }
    }

    #[test]
    fn unknown_word_is_echoed_clean() {
        let mut out = Vec::new();
        let o = respond(parse(b"\x1b[2Jfoo bar"), &cfg(), b"\r\n", &mut out);
        assert_eq!(o, Outcome::Continue);
        assert_eq!(
            out,
            b"Unknown command \"[2Jfoo\".\r\nCommands: quit date who cookie motd help\r\n"
        );
    }

    #[test]
    fn quit_closes() {
        let mut out = Vec::new();
        assert_eq!(
            respond(Command::Quit, &cfg(), b"\n", &mut out),
            Outcome::Close
        );
        assert_eq!(out, b"Goodbye.\n");
    }

    #[test]
    fn blank_is_silent_and_missing_files_are_quiet() {
        let mut out = Vec::new();
        respond(Command::Blank, &cfg(), b"\n", &mut out);
        assert!(out.is_empty());
        respond(Command::Who, &cfg(), b"\n", &mut out);
        assert!(out.is_empty(), "missing utmp means nobody logged in");
        respond(Command::Motd, &cfg(), b"\n", &mut out);
        assert_eq!(out, b"No message of the day.\n");
    }
}
