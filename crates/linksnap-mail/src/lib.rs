//! Mail ingest: links mailed to a mailbox, fetched over POP3, saved to the library exactly
//! once. `config` checks a mailbox's settings, `pop3` speaks the protocol, `message` finds
//! the links and tags in a message, `trust` decides whether a message may add links,
//! `ingest` runs a poll.

pub mod config;
pub mod ingest;
pub mod message;
pub mod pop3;
pub mod trust;

pub use config::{Mailbox, MailboxFile, Secret, TlsMode};
pub use ingest::{PollError, PollReport, poll_loop, poll_once};
