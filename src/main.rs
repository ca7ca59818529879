//! The `finops-db` command line.
fn main() {}
