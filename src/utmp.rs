//! utmp reader (being written)
