//! Where the agent's access tokens come from: Application Default
//! Credentials, a service-account key file, or a fixed token. Tokens are
//! gcp_auth's, cached and refreshed by it before they expire; they travel
//! only in the `Authorization` header, never into a message.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{keys, Secret};
use crate::error::{Error, Result};

/// The OAuth scope Cloud Profiler agents ask for.
const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.write";

/// How the agent authenticates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GcpCredentials {
    /// Application Default Credentials, in Google's order: the key file
    /// named by `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
    /// application-default login, the metadata server (GCE, GKE, Cloud Run),
    /// `gcloud auth print-access-token`.
    #[default]
    ApplicationDefault,
    /// A service-account key file (JSON, as the console downloads it).
    ServiceAccountKey(PathBuf),
    /// A fixed access token, sent as it is and never refreshed: for tests
    /// and for proxies that add their own credentials.
    Token(Secret),
}

/// Credentials, resolved as far as can be done without the network.
pub(super) enum Tokens {
    Fixed(Secret),
    /// A key file, read and its key parsed at start.
    Provider(Arc<dyn gcp_auth::TokenProvider>),
    /// Application Default Credentials still to be discovered, which may
    /// take requests (the metadata server); done on the agent's thread.
    Discover,
}

impl Tokens {
    /// Reads a key file now, so a missing or broken one fails the start
    /// with the key (or variable) that named it.
    pub(super) fn resolve(credentials: &GcpCredentials) -> Result<(Tokens, Option<String>)> {
        match credentials {
            GcpCredentials::Token(token) => Ok((Tokens::Fixed(token.clone()), None)),
            GcpCredentials::ServiceAccountKey(path) => {
                key_file(path, keys::GCP_CREDENTIALS_FILE.path)
            }
            GcpCredentials::ApplicationDefault => {
                match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
                    Some(path) => key_file(&PathBuf::from(path), "$GOOGLE_APPLICATION_CREDENTIALS"),
                    None => Ok((Tokens::Discover, None)),
                }
            }
        }
    }

    /// Whether the credentials still have to be discovered.
    pub(super) fn pending(&self) -> bool {
        matches!(self, Tokens::Discover)
    }

    /// Discovers Application Default Credentials; on success, the project
    /// they belong to when they know it.
    pub(super) async fn discover(&mut self) -> std::result::Result<Option<String>, String> {
        let provider = gcp_auth::provider()
            .await
            .map_err(|e| format!("no Google credentials found ({})", describe(&e)))?;
        let project = provider.project_id().await.ok().map(|p| p.to_string());
        *self = Tokens::Provider(provider);
        Ok(project)
    }

    /// A current access token, fetched or refreshed when needed.
    pub(super) async fn token(&self) -> std::result::Result<Secret, String> {
        match self {
            Tokens::Fixed(token) => Ok(token.clone()),
            Tokens::Provider(provider) => provider
                .token(&[SCOPE])
                .await
                .map(|t| Secret::new(t.as_str()))
                .map_err(|e| format!("no access token ({})", describe(&e))),
            Tokens::Discover => Err("the credentials are not discovered yet".to_owned()),
        }
    }
}

fn key_file(path: &std::path::Path, named_by: &str) -> Result<(Tokens, Option<String>)> {
    let account =
        gcp_auth::CustomServiceAccount::from_file(path).map_err(|e| Error::InvalidConfig {
            key: named_by.to_owned(),
            message: format!(
                "{}: not a usable service-account key file ({})",
                path.display(),
                describe(&e)
            ),
        })?;
    let project = account.project_id().map(str::to_owned);
    Ok((Tokens::Provider(Arc::new(account)), project))
}

/// What went wrong, without the library's nested sources: a JSON parse
/// error can quote the file, and a key file's contents are secret.
fn describe(e: &gcp_auth::Error) -> String {
    match e {
        gcp_auth::Error::Io(what, source) => format!("{what}: {}", source.kind()),
        gcp_auth::Error::Json(what, _) => (*what).to_owned(),
        gcp_auth::Error::Http(what, _) | gcp_auth::Error::Other(what, _) => (*what).to_owned(),
        gcp_auth::Error::Str(what) => (*what).to_owned(),
        gcp_auth::Error::NoAuthMethod(..) => {
            "no GOOGLE_APPLICATION_CREDENTIALS, no gcloud application-default login, \
             no metadata server, no gcloud"
                .to_owned()
        }
    }
}
