//! hostinfod — placeholder map, being written.
pub mod strfile;
pub mod utmp;
