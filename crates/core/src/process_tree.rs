//! Process trees (being written).
