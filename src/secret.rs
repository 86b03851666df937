//! Secrets: a wrapper that never prints its content, and where the client secret comes from.
//!
//! Tokens and the client secret travel as [`Secret`], whose `Debug` and `Display` print
//! `[redacted]`, so a stray `{:?}` in a log line or an error cannot leak one.
//! The client secret is never read from config.toml.

use std::fmt;
use std::path::PathBuf;

use crate::config::LinkedIn;

/// Deserializes from a plain string; deliberately not `Serialize`, so no stray
/// `to_string(&x)` writes one out (the wire types expose theirs field by field).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The environment variable that can hold the client secret.
pub const CLIENT_SECRET_ENV: &str = "LIPOST_CLIENT_SECRET";

/// The file the client secret is read from, if any: `client_secret_file`, which may use
/// `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`).
fn secret_file(l: &LinkedIn) -> Option<PathBuf> {
    l.client_secret_file.as_deref().map(expand_credentials)
}

/// A secret file's path with `$CREDENTIALS_DIRECTORY` (systemd's `LoadCredential=`) filled in.
pub fn expand_credentials(f: &std::path::Path) -> PathBuf {
    let s = f.to_string_lossy();
    if let (Some(idx), Ok(dir)) = (
        s.find("$CREDENTIALS_DIRECTORY"),
        std::env::var("CREDENTIALS_DIRECTORY"),
    ) {
        let rest = &s[idx + "$CREDENTIALS_DIRECTORY".len()..];
        return PathBuf::from(format!("{dir}{rest}"));
    }
    f.to_path_buf()
}

/// The client secret, from `LIPOST_CLIENT_SECRET` or `client_secret_file`.
pub fn client_secret(l: &LinkedIn) -> Result<Option<Secret>, String> {
    if let Ok(v) = std::env::var(CLIENT_SECRET_ENV) {
        if !v.trim().is_empty() {
            return Ok(Some(Secret::new(v.trim())));
        }
    }
    match secret_file(l) {
        Some(path) => std::fs::read_to_string(&path)
            .map(|s| Some(Secret::new(s.trim())))
            .map_err(|e| format!("cannot read client_secret_file {}: {e}", path.display())),
        None => Ok(None),
    }
}

/// A warning when `client_secret_file` can be read by others than its owner (the README asks
/// for mode 0600): the secret lets anyone act as the app.
pub fn client_secret_file_exposed(l: &LinkedIn) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = secret_file(l)?;
    let mode = std::fs::metadata(&path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "client_secret_file {} is mode {mode:04o}: others may read the client secret; `chmod 600` it",
            path.display()
        )
    })
}

/// Where the client secret would come from, for `check-config`; never the secret.
pub fn client_secret_source(l: &LinkedIn) -> String {
    if std::env::var(CLIENT_SECRET_ENV).is_ok_and(|v| !v.trim().is_empty()) {
        return format!("set (from {CLIENT_SECRET_ENV})");
    }
    match secret_file(l) {
        Some(p) if p.is_file() => match client_secret_file_exposed(l) {
            Some(w) => format!("set (from file {}); WARNING: {w}", p.display()),
            None => format!("set (from file {})", p.display()),
        },
        Some(p) => format!("MISSING: client_secret_file {} does not exist", p.display()),
        None => format!("not set ({CLIENT_SECRET_ENV} or linkedin.client_secret_file; not needed in sandbox mode)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("AQX-very-secret");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "AQX-very-secret");
    }
}
