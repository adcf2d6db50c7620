//! The linksnap library: links, tags and snapshot versions in SQLite, snapshot content in a
//! content-addressed blob store.

pub mod blob;
pub mod datadir;
pub mod domain;
