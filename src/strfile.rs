//! strfile reader (being written)
