//! DTSS's integration tests, one binary: properties with hand-derived expectations, and proptests.

mod properties;
mod proptests;
