//! Password authentication: SCRAM-SHA-256 against the configured users, and the password-hash
//! format of the config file.
//!
//! Owns who may log in and with which role. It must not decide what a role may do to data; the
//! engine enforces that.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pgwire::api::auth::sasl::scram::{SCRAM_ITERATIONS, gen_salted_password};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};

use crate::config::{Config, DEFAULT_PASSWORD, DEFAULT_USER, Role};

const PREFIX: &str = "SCRAM-SHA-256$";

/// A user who may log in.
#[derive(Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Teams a scoped reader sees; empty means all.
    pub teams: Vec<String>,
    salt: Vec<u8>,
    salted_password: Vec<u8>,
}

impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("teams", &self.teams)
            .finish_non_exhaustive()
    }
}

/// Hash `password` for the config file with a random salt.
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
    format!(
        "{PREFIX}{SCRAM_ITERATIONS}:{}${}",
        STANDARD.encode(salt),
        STANDARD.encode(salted)
    )
}

/// Parse a password hash into `(salt, salted password)`.
pub fn parse_password_hash(hash: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let rest = hash.strip_prefix(PREFIX).ok_or_else(|| {
        format!("expected \"{PREFIX}<iterations>:<salt>$<key>\" (run `finops-db hash-password`)")
    })?;
    let (iterations, rest) = rest
        .split_once(':')
        .ok_or("missing ':' after the iterations")?;
    if iterations != SCRAM_ITERATIONS.to_string() {
        return Err(format!("only {SCRAM_ITERATIONS} iterations are supported"));
    }
    let (salt, key) = rest.split_once('$').ok_or("missing '$' before the key")?;
    let salt = STANDARD.decode(salt).map_err(|e| format!("salt: {e}"))?;
    let key = STANDARD.decode(key).map_err(|e| format!("key: {e}"))?;
    if salt.is_empty() || key.len() != 32 {
        return Err("salt must be non-empty and the key 32 bytes".to_string());
    }
    Ok((salt, key))
}

/// The users who may log in, looked up by name.
#[derive(Debug, Clone)]
pub struct UserDirectory {
    users: Arc<HashMap<String, UserEntry>>,
}

impl UserDirectory {
    /// Build from the configuration; with no users configured, the default admin `finops`.
    pub fn from_config(config: &Config) -> Result<UserDirectory, String> {
        let mut users = HashMap::new();
        if config.users.is_empty() {
            let salt: [u8; 16] = rand::random();
            users.insert(
                DEFAULT_USER.to_string(),
                UserEntry {
                    name: DEFAULT_USER.to_string(),
                    role: Role::Admin,
                    teams: Vec::new(),
                    salted_password: gen_salted_password(DEFAULT_PASSWORD, &salt, SCRAM_ITERATIONS),
                    salt: salt.to_vec(),
                },
            );
        }
        for user in &config.users {
            let (salt, salted_password) = parse_password_hash(&user.password_hash)
                .map_err(|e| format!("user {:?}: {e}", user.name))?;
            users.insert(
                user.name.clone(),
                UserEntry {
                    name: user.name.clone(),
                    role: user.role,
                    teams: user.teams.clone(),
                    salt,
                    salted_password,
                },
            );
        }
        Ok(UserDirectory {
            users: Arc::new(users),
        })
    }

    /// Look a user up.
    pub fn get(&self, name: &str) -> Option<&UserEntry> {
        self.users.get(name)
    }

    /// All user names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.users.keys().cloned().collect();
        names.sort();
        names
    }
}

#[async_trait]
impl AuthSource for UserDirectory {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let name = login.user().unwrap_or_default();
        match self.users.get(name) {
            Some(user) => Ok(Password::new(
                Some(user.salt.clone()),
                user.salted_password.clone(),
            )),
            // An unknown user goes through the same exchange and fails at the proof, so a
            // client cannot tell unknown users from wrong passwords.
            None => {
                let salt: [u8; 16] = rand::random();
                let key: [u8; 32] = rand::random();
                Ok(Password::new(Some(salt.to_vec()), key.to_vec()))
            }
        }
    }
}

/// The error a failed login gets (SQLSTATE 28P01).
pub fn login_failed(user: &str) -> PgWireError {
    PgWireError::InvalidPassword(user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips() {
        let hash = hash_password("s3cret");
        let (salt, key) = parse_password_hash(&hash).expect("valid");
        assert_eq!(key, gen_salted_password("s3cret", &salt, SCRAM_ITERATIONS));
        assert_ne!(hash_password("s3cret"), hash, "salt is random");
    }

    #[test]
    fn malformed_hashes_are_rejected() {
        for bad in [
            "s3cret",
            "SCRAM-SHA-256$4096:",
            "SCRAM-SHA-256$10:AAAA$AAAA",
            "SCRAM-SHA-256$4096:!!$AAAA",
        ] {
            assert!(parse_password_hash(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_user_only_without_config_users() {
        let dir = UserDirectory::from_config(&Config::default()).expect("valid");
        assert_eq!(dir.names(), vec![DEFAULT_USER.to_string()]);
        let mut config = Config::default();
        config.users.push(crate::config::UserConfig {
            name: "ops".into(),
            password_hash: hash_password("x"),
            role: Role::Reader,
            teams: vec!["search".into()],
        });
        let dir = UserDirectory::from_config(&config).expect("valid");
        assert_eq!(dir.names(), vec!["ops".to_string()]);
        assert_eq!(dir.get("ops").expect("user").teams, vec!["search"]);
    }
}
