//! Parts of the `portal` test binary (one binary, so that one server with the default
//! model serves every test).

pub mod hostile;
pub mod support;
