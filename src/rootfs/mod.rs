//! Root filesystems: the per-user store, fetching and safe unpacking of archives, the
//! rootless Debian bootstrap, and the Debian archive chain it trusts.

pub mod bootstrap;
pub mod debian;
pub mod fetch;
pub mod store;
pub mod unpack;
