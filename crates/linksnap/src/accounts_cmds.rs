//! `linksnap token` and `linksnap user`: the accounts kept in the data directory's own
//! library.

use std::io::Write as _;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use linksnap_server::json::rfc3339;
use linksnap_store::Accounts;

use crate::exit::{Code, UsageError};
use crate::library_cmds::Term;

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a token and print it (once: only a hash of it is kept).
    Create {
        /// A name to tell it apart (e.g. the client that uses it); unique per user.
        name: String,
        /// What it may do: read, write, share, admin (repeatable or comma-separated;
        /// default all four). `admin` matters for an administrator's or the operator's
        /// token: network operations and /metrics.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
    },
    /// List tokens (names, first characters, use).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token (the operator's, or with --as, that user's): requests that carry it
    /// fail from now on.
    Revoke { name: String },
}

pub async fn token(
    scope: &crate::scope::Scope<'_>,
    t: &mut Term,
    args: TokenArgs,
) -> anyhow::Result<Code> {
    let library = scope.accounts();
    let user = scope.user.as_ref().map(|u| u.id);
    use linksnap_store::TokenError;
    let usage = |e: TokenError| -> anyhow::Error {
        match e {
            TokenError::Store(e) => e.into(),
            other => UsageError(other.to_string()).into(),
        }
    };
    match args.action {
        TokenAction::Create { name, scopes } => {
            let scopes = if scopes.is_empty() {
                linksnap_store::Scopes::ALL
            } else {
                linksnap_store::Scopes::parse(&scopes.join(",")).map_err(usage)?
            };
            let (token, secret) = library
                .create_token(&name, user, scopes)
                .await
                .map_err(usage)?;
            writeln!(t.out, "{secret}")?;
            writeln!(
                t.err,
                "linksnap: created token `{}` ({}); copy it now, it is not shown again",
                token.name,
                token.scopes.names().join(", ")
            )?;
        }
        TokenAction::List { json } => {
            // With --as, that user's tokens; else all.
            let tokens: Vec<_> = library
                .tokens()
                .await?
                .into_iter()
                .filter(|k| user.is_none() || k.user_id == user)
                .collect();
            let names: std::collections::HashMap<i64, String> = library
                .users()
                .await?
                .into_iter()
                .map(|u| (u.id, u.name))
                .collect();
            let owner =
                |k: &linksnap_store::Token| k.user_id.and_then(|id| names.get(&id).cloned());
            if json {
                let v: Vec<_> = tokens
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "name": k.name, "prefix": k.prefix, "user": owner(k),
                            "scopes": k.scopes.names(),
                            "created_at": rfc3339(k.created_at),
                            "last_used_at": k.last_used_at.map(rfc3339),
                        })
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut t.out, &v)?;
                writeln!(t.out)?;
            } else {
                for k in &tokens {
                    writeln!(
                        t.out,
                        "{:<24} {}…  {}  for {}  created {}  last used {}",
                        k.name,
                        k.prefix,
                        k.scopes.names().join(","),
                        owner(k).unwrap_or_else(|| "the data directory's library".to_owned()),
                        rfc3339(k.created_at),
                        k.last_used_at.map_or_else(|| "never".to_owned(), rfc3339)
                    )?;
                }
            }
        }
        TokenAction::Revoke { name } => {
            library.revoke_token(&name, user).await.map_err(usage)?;
            writeln!(t.err, "linksnap: revoked token `{}`", name.trim())?;
        }
    }
    Ok(Code::Ok)
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    action: UserAction,
}

#[derive(Debug, Subcommand)]
enum UserAction {
    /// Add a user (asks for the password, or reads it from standard input).
    Add {
        name: String,
        /// May manage users.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (their sessions end).
    Passwd {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Also revoke the user's API tokens (their sessions end in any case).
        #[arg(long)]
        revoke_tokens: bool,
    },
    /// List users.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user.
    Remove { name: String },
}

impl UserArgs {
    pub fn reads_stdin(&self) -> bool {
        matches!(
            self.action,
            UserAction::Add {
                password_stdin: true,
                ..
            } | UserAction::Passwd {
                password_stdin: true,
                ..
            }
        )
    }

    /// Asks for the password twice on the terminal, when one is needed and not read from
    /// standard input.
    pub fn prompt(&mut self) -> anyhow::Result<Option<String>> {
        let (UserAction::Add { password_stdin, .. } | UserAction::Passwd { password_stdin, .. }) =
            &mut self.action
        else {
            return Ok(None);
        };
        if *password_stdin {
            return Ok(None);
        }
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            return Err(UsageError(
                "no terminal to ask for the password on: pass it with --password-stdin".into(),
            )
            .into());
        }
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            return Err(UsageError("the passwords differ".into()).into());
        }
        *password_stdin = true;
        Ok(Some(first))
    }
}

fn read_password(t: &mut Term) -> anyhow::Result<String> {
    let mut all = String::new();
    std::io::Read::read_to_string(&mut t.stdin, &mut all).context("reading the password")?;
    Ok(all.lines().next().unwrap_or("").to_owned())
}

pub async fn user(library: &Accounts, t: &mut Term, args: UserArgs) -> anyhow::Result<Code> {
    use linksnap_store::UserError;
    let usage = |e: UserError| -> anyhow::Error {
        match e {
            UserError::Store(e) => e.into(),
            other => UsageError(other.to_string()).into(),
        }
    };
    match args.action {
        UserAction::Add { name, admin, .. } => {
            let password = read_password(t)?;
            let user = library
                .create_user(&name, &password, admin)
                .await
                .map_err(usage)?;
            writeln!(
                t.err,
                "linksnap: added {}user `{}`",
                if user.is_admin { "admin " } else { "" },
                user.name
            )?;
        }
        UserAction::Passwd {
            name,
            revoke_tokens,
            ..
        } => {
            let password = read_password(t)?;
            library
                .set_password(&name, &password)
                .await
                .map_err(usage)?;
            let tokens = if revoke_tokens {
                let id = library
                    .users()
                    .await?
                    .into_iter()
                    .find(|u| u.name == name.trim())
                    .map(|u| u.id);
                let n = match id {
                    Some(id) => library.revoke_tokens_of(id).await?,
                    None => 0,
                };
                format!("{n} API token(s) revoked")
            } else {
                "their API tokens still work (--revoke-tokens ends them too)".to_owned()
            };
            writeln!(
                t.err,
                "linksnap: changed the password of `{}`; their sessions ended; {tokens}",
                name.trim()
            )?;
        }
        UserAction::List { json } => {
            let users = library.users().await?;
            if json {
                let v: Vec<_> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "name": u.name, "admin": u.is_admin,
                            "created_at": rfc3339(u.created_at),
                        })
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut t.out, &v)?;
                writeln!(t.out)?;
            } else {
                for u in &users {
                    writeln!(
                        t.out,
                        "{:<24} {}  added {}",
                        u.name,
                        if u.is_admin { "admin" } else { "user " },
                        rfc3339(u.created_at)
                    )?;
                }
            }
        }
        UserAction::Remove { name } => {
            library.remove_user(&name).await.map_err(usage)?;
            writeln!(t.err, "linksnap: removed user `{}`", name.trim())?;
        }
    }
    Ok(Code::Ok)
}
