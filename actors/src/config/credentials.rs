//! Credentials in the config: users (`name:password`) and secrets that `Debug` does not show.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that is not shown by `Debug` (passwords, shared secrets).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// A static user, written `NAME:PASS` (the name has no colon; the password may).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserCredential {
    /// The USERNAME (RFC 8489 §14.3).
    pub name: String,
    /// The password the long-term key is made from (RFC 8489 §9.2.2).
    pub password: Secret,
}

/// Why a `NAME:PASS` user does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserCredentialError {
    /// No colon between name and password.
    #[error("expected NAME:PASS, found no `:`")]
    MissingColon,
    /// Nothing before the colon.
    #[error("the user name before `:` is empty")]
    EmptyName,
    /// Nothing after the colon.
    #[error("the password after `:` is empty")]
    EmptyPassword,
    /// Longer than USERNAME allows (RFC 8489 §14.3: less than 509 bytes).
    #[error("the user name is {0} bytes; at most 508 are allowed")]
    NameTooLong(usize),
}

impl FromStr for UserCredential {
    type Err = UserCredentialError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, password) = s.split_once(':').ok_or(UserCredentialError::MissingColon)?;
        if name.is_empty() {
            return Err(UserCredentialError::EmptyName);
        }
        if name.len() > 508 {
            return Err(UserCredentialError::NameTooLong(name.len()));
        }
        if password.is_empty() {
            return Err(UserCredentialError::EmptyPassword);
        }
        Ok(UserCredential {
            name: name.to_owned(),
            password: Secret(password.to_owned()),
        })
    }
}

impl TryFrom<String> for UserCredential {
    type Error = UserCredentialError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<UserCredential> for String {
    fn from(u: UserCredential) -> String {
        format!("{}:{}", u.name, u.password.0)
    }
}

impl fmt::Debug for UserCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:***", self.name)
    }
}
