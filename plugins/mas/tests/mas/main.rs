//! MAS's integration tests, one binary: the weight function against eqs. 6–13 by hand, and
//! properties.

mod properties;
mod weight_function;
