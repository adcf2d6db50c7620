//! The seed's socket layer, knowing nothing of links: listening sockets and their options
//! (`listen`), the address rules (`guard`), the accept loop and the connection table
//! (`conn`), statistics like `ss` (`netstat`).

pub mod conn;
pub mod guard;
pub mod listen;
pub mod netstat;
