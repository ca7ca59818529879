//! Configuration: built-in defaults < TOML file < environment < command-line flags, validated once.
//!
//! Owns the shape of the config file and the rules that make a configuration unsafe to start with
//! (a non-loopback bind without users, unreadable TLS files, plain-text passwords). It must not
//! open sockets or data directories.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5433";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./finops-data";
/// The database name clients connect to.
pub const DATABASE: &str = "finops";
/// User created when no users are configured (loopback only).
pub const DEFAULT_USER: &str = "finops";
/// Password of [`DEFAULT_USER`].
pub const DEFAULT_PASSWORD: &str = "finops";

/// The effective configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory: a local path or an object-store URL (`file://`, `s3://`, `gs://`, `az://`).
    pub data_dir: String,
    /// Address the server listens on.
    pub listen: String,
    /// Connection and query limits.
    pub limits: Limits,
    /// TLS certificate and key; when set, plain-text connections are refused.
    pub tls: Option<TlsConfig>,
    /// Users allowed to log in; empty means the default `finops` user on loopback only.
    pub users: Vec<UserConfig>,
    /// FinOps settings.
    pub finops: FinopsSettings,
}

/// Connection and query limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Maximum concurrent connections; 0 means unlimited.
    pub max_connections: usize,
    /// Default statement timeout in milliseconds; 0 means none.
    pub statement_timeout_ms: u64,
    /// Memory a single query may use, in bytes; 0 means unlimited.
    pub query_memory_bytes: usize,
    /// Memory kept for parsed provider-export files between queries, in bytes; 0 keeps none.
    pub provider_cache_bytes: usize,
}

/// TLS files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8).
    pub key: PathBuf,
}

/// What a user may do.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Ingest only (INSERT/COPY into usage tables) plus reads.
    Writer,
    /// Read all (or, with `teams`, only those teams' rows).
    Reader,
}

/// One configured user.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// `SCRAM-SHA-256$<iterations>:<salt b64>$<salted password b64>`, as printed by
    /// `finops-db hash-password`. Plain-text passwords are never accepted.
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// For scoped readers: the teams whose rows they see.
    #[serde(default)]
    pub teams: Vec<String>,
}

impl std::fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("teams", &self.teams)
            .finish()
    }
}

/// FinOps settings, also the defaults of the `finops.*` session options.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FinopsSettings {
    /// Currency of every money column.
    pub currency: String,
    /// Time zone used for budget periods.
    pub timezone: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: DEFAULT_DATA_DIR.to_string(),
            listen: DEFAULT_LISTEN.to_string(),
            limits: Limits::default(),
            tls: None,
            users: Vec::new(),
            finops: FinopsSettings::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 100,
            statement_timeout_ms: 0,
            query_memory_bytes: 4 << 30,
            provider_cache_bytes: crate::providers::DEFAULT_CACHE_BYTES,
        }
    }
}

impl Default for FinopsSettings {
    fn default() -> Self {
        FinopsSettings {
            currency: "USD".to_string(),
            timezone: "UTC".to_string(),
        }
    }
}

/// Overrides that come from the environment or flags (later ones win).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data-dir` / `FINOPS_DATA_DIR`.
    pub data_dir: Option<String>,
    /// `--listen` / `FINOPS_LISTEN`.
    pub listen: Option<String>,
}

impl Config {
    /// Parse a TOML document.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config> {
        toml::from_str(text).map_err(|e| Error::Config(format!("{origin}: {e}")))
    }

    /// Load: defaults, then the TOML file if any, then `overrides` in order. Validates the result.
    pub fn load(file: Option<&std::path::Path>, overrides: &[Overrides]) -> Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
                Config::from_toml(&text, &path.display().to_string())?
            }
            None => Config::default(),
        };
        for o in overrides {
            if let Some(d) = &o.data_dir {
                config.data_dir = d.clone();
            }
            if let Some(l) = &o.listen {
                config.listen = l.clone();
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen
            .parse()
            .map_err(|e| Error::Config(format!("listen address {:?}: {e}", self.listen)))
    }

    /// Refuse configurations that are unsafe or cannot work.
    pub fn validate(&self) -> Result<()> {
        let addr = self.listen_addr()?;
        if self.users.is_empty() && !addr.ip().is_loopback() {
            return Err(Error::Config(format!(
                "refusing to listen on {addr} without configured users: the default \
                 {DEFAULT_USER}/{DEFAULT_PASSWORD} login is only allowed on a loopback address"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for user in &self.users {
            if !seen.insert(user.name.as_str()) {
                return Err(Error::Config(format!(
                    "user {:?} is defined twice",
                    user.name
                )));
            }
            crate::server::auth::parse_password_hash(&user.password_hash)
                .map_err(|e| Error::Config(format!("user {:?}: password_hash: {e}", user.name)))?;
            if !user.teams.is_empty() && user.role != Role::Reader {
                return Err(Error::Config(format!(
                    "user {:?}: only readers can be scoped to teams",
                    user.name
                )));
            }
        }
        if let Some(tls) = &self.tls {
            for (what, path) in [("cert", &tls.cert), ("key", &tls.key)] {
                if !path.is_file() {
                    return Err(Error::Config(format!(
                        "tls.{what} {} is not a readable file",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The configuration as TOML with secrets replaced, for `--print-config`.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        for user in &mut shown.users {
            user.password_hash = "<redacted>".to_string();
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback() {
        let config = Config::load(None, &[]).expect("defaults are valid");
        assert!(config.listen_addr().expect("addr").ip().is_loopback());
        assert_eq!(config.data_dir, DEFAULT_DATA_DIR);
    }

    #[test]
    fn non_loopback_without_users_refuses_to_start() {
        let err = Config::load(
            None,
            &[Overrides {
                listen: Some("0.0.0.0:5433".into()),
                ..Overrides::default()
            }],
        )
        .expect_err("must refuse");
        assert!(
            err.to_string().contains("without configured users"),
            "{err}"
        );
    }

    #[test]
    fn later_overrides_win() {
        let env = Overrides {
            data_dir: Some("/env".into()),
            listen: Some("127.0.0.1:1".into()),
        };
        let flags = Overrides {
            data_dir: Some("/flag".into()),
            listen: None,
        };
        let config = Config::load(None, &[env, flags]).expect("valid");
        assert_eq!(config.data_dir, "/flag");
        assert_eq!(config.listen, "127.0.0.1:1");
    }

    #[test]
    fn plain_text_password_is_rejected() {
        let text = r#"
            [[users]]
            name = "alice"
            password_hash = "secret"
            role = "admin"
        "#;
        let config = Config::from_toml(text, "test").expect("parses");
        let err = config.validate().expect_err("plain text rejected");
        assert!(err.to_string().contains("alice"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::from_toml("lisen = \"x\"", "test").expect_err("typo caught");
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn print_config_hides_secrets() {
        let mut config = Config::default();
        config.users.push(UserConfig {
            name: "a".into(),
            password_hash: crate::server::auth::hash_password("pw"),
            role: Role::Admin,
            teams: vec![],
        });
        let shown = config.to_redacted_toml();
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains("SCRAM-SHA-256$"));
    }
}
