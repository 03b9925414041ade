//! The operators who may sign in to the console: `OPERATORS_FILE`, a TOML file of
//! `[[operators]]` entries `{name, password_hash}` (argon2id PHC strings), and the password
//! checks against them. The file holds hashes only; a password is never kept or logged.

use std::collections::HashMap;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Longest name accepted (the sessions' and lockouts' column width).
pub const MAX_NAME: usize = 64;
/// Longest password accepted: argon2 takes any length, this only bounds the work per attempt.
pub const MAX_PASSWORD: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorsFile {
    #[serde(default)]
    operators: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    password_hash: String,
}

/// The operators by name, each with the PHC string of their password.
#[derive(Clone, Default)]
pub struct Operators {
    hashes: HashMap<String, String>,
    /// A hash of nothing anyone knows, checked for an unknown name so that it takes as long
    /// as a known one.
    decoy: String,
}

/// Names only: hashes stay out of logs too.
impl std::fmt::Debug for Operators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operators")
            .field("names", &self.names())
            .finish()
    }
}

impl Operators {
    /// The operators of `OPERATORS_FILE` at `path` (none when unset). A file that cannot be
    /// read or parsed, a name used twice or a hash that is not argon2id is refused with one
    /// line that says where and why.
    pub fn load(path: Option<&str>) -> Result<Self, String> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("OPERATORS_FILE {path}: cannot be read: {error}"))?;
        Self::parse(&text).map_err(|why| format!("OPERATORS_FILE {path}: {why}"))
    }

    fn parse(text: &str) -> Result<Self, String> {
        let file: OperatorsFile = toml::from_str(text).map_err(|error| {
            format!(
                "not a valid [[operators]] file: {}",
                error.message().trim().replace(['\n', '\r'], " ")
            )
        })?;
        let mut hashes = HashMap::new();
        for (index, entry) in file.operators.into_iter().enumerate() {
            let which = format!("entry {} ({:?})", index + 1, entry.name);
            let name = entry.name.trim().to_owned();
            if !valid_name(&name) {
                return Err(format!(
                    "{which}: name must be 1 to {MAX_NAME} characters without control characters"
                ));
            }
            let parsed = PasswordHash::new(entry.password_hash.trim()).map_err(|_| {
                format!(
                    "{which}: password_hash is not a PHC string (payment-service operator hash)"
                )
            })?;
            if parsed.algorithm.as_str() != Algorithm::Argon2id.as_str() {
                return Err(format!("{which}: password_hash must be argon2id"));
            }
            if hashes
                .insert(name.clone(), entry.password_hash.trim().to_owned())
                .is_some()
            {
                return Err(format!("the name {name:?} is used twice"));
            }
        }
        Ok(Self {
            hashes,
            decoy: hash_password(&SecretString::from("decoy"))
                .map_err(|error| format!("cannot hash: {error}"))?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.hashes.contains_key(name)
    }

    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.hashes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Whether `password` is `name`'s. Slow on purpose (argon2id), so run it off the async
    /// threads; an unknown name takes as long and is never right.
    pub fn verify(&self, name: &str, password: &SecretString) -> bool {
        let (hash, known) = match self.hashes.get(name) {
            Some(hash) => (hash.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let right = Argon2::default()
            .verify_password(password.expose_secret().as_bytes(), &parsed)
            .is_ok();
        right && known
    }
}

/// A name an operator may have: 1 to 64 characters, no control characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= MAX_NAME && !name.chars().any(char::is_control)
}

/// The argon2id PHC string of `password` (default parameters, a fresh random salt): what
/// `payment-service operator hash` prints for `OPERATORS_FILE`.
pub fn hash_password(password: &SecretString) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(name: &str, password: &str) -> String {
        let hash = hash_password(&SecretString::from(password)).unwrap();
        format!("[[operators]]\nname = {name:?}\npassword_hash = {hash:?}\n")
    }

    #[test]
    fn a_hash_from_the_command_verifies_its_password_only() {
        let operators = Operators::parse(&file_of("kim", "correct horse")).unwrap();
        assert_eq!(operators.names(), vec!["kim"]);
        assert!(operators.verify("kim", &"correct horse".into()));
        assert!(!operators.verify("kim", &"correct horsE".into()));
        assert!(!operators.verify("lee", &"correct horse".into()));
        assert!(!operators.verify("lee", &"decoy".into()));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let twice = format!("{}{}", file_of("kim", "a"), file_of("kim", "b"));
        assert!(Operators::parse(&twice).unwrap_err().contains("used twice"));
        let not_phc = "[[operators]]\nname = \"kim\"\npassword_hash = \"hunter2\"\n";
        assert!(Operators::parse(not_phc).unwrap_err().contains("PHC"));
        let argon2i = "[[operators]]\nname = \"kim\"\npassword_hash = \"$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$L6Pg3Qv1JgNCsXgvrGTDZQ\"\n";
        assert!(Operators::parse(argon2i).unwrap_err().contains("argon2id"));
        let blank = "[[operators]]\nname = \" \"\npassword_hash = \"x\"\n";
        assert!(Operators::parse(blank).unwrap_err().contains("name"));
        assert!(Operators::parse("[[operators]]\nname = 1\n").is_err());
        assert!(Operators::parse("").unwrap().is_empty());
    }
}
