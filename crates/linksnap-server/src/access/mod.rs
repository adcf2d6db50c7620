//! Who is asking: sign-in back-off (`signin`), signed snapshot addresses (`snaporigin`),
//! the names the server answers to (`names`), and the principal of a request with its
//! CSRF check (`session`).

pub mod names;
pub mod session;
pub mod signin;
pub mod snaporigin;
