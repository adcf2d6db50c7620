//! What a command acts on: the data directory's libraries and the one `--as` chose.

use crate::exit::UsageError;

/// What a command acts on: every library of the data directory, and the one chosen by
/// `--as` (else the data directory's own).
pub(crate) struct Scope<'a> {
    pub libs: &'a linksnap_store::Libraries,
    pub library: std::sync::Arc<linksnap_store::Library>,
    pub user: Option<linksnap_store::User>,
}

impl<'a> Scope<'a> {
    /// `user`'s scope (`None`: the data directory's own library).
    pub async fn new(
        libs: &'a linksnap_store::Libraries,
        user: Option<&str>,
    ) -> anyhow::Result<Self> {
        let Some(name) = user else {
            return Ok(Self {
                libs,
                library: libs.main().clone(),
                user: None,
            });
        };
        let found = libs.accounts().user_by_name(name).await?.ok_or_else(|| {
            UsageError(format!("--as: no user named `{name}` (linksnap user list)"))
        })?;
        Ok(Self {
            libs,
            library: libs.of_user(&found).await?,
            user: Some(found),
        })
    }

    /// The data directory's accounts: users, tokens, bans.
    pub fn accounts(&self) -> &linksnap_store::Accounts {
        self.libs.accounts()
    }
}
