//! Amazing Hand ASL agent (being written).
