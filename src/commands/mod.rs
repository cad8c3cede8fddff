//! One module per command whose reply comes from the system: the clock,
//! utmp, fortune files and motd files. Each exposes
//! `reply(source, eol, out)`, reads what it needs at the moment it is asked
//! (in the session's child, never in the parent), and writes clean text.

pub mod cookie;
pub mod date;
pub mod motd;
pub mod who;
