//! FinOps scalar functions for Apache DataFusion.
#![warn(missing_docs)]
