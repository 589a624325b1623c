//! placeholder
pub(crate) mod pyre;
pub(crate) mod unicode;
