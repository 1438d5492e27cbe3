//! Reading a function's settings from its environment, reporting every missing variable at once.

use std::fmt;

/// A cold start that cannot read its settings fails with this, naming every problem.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    missing: Vec<String>,
    invalid: Vec<(String, String)>,
}

impl ConfigError {
    /// The variables that were not set (or were empty).
    pub fn missing(&self) -> &[String] {
        &self.missing
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "missing environment variables: {}",
                self.missing.join(", ")
            ));
        }
        for (name, problem) in &self.invalid {
            parts.push(format!("{name}: {problem}"));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Collects settings from a variable source; `finish` fails once with everything that was wrong.
pub struct Env<F> {
    lookup: F,
    missing: Vec<String>,
    invalid: Vec<(String, String)>,
}

impl<F> fmt::Debug for Env<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("missing", &self.missing)
            .finish_non_exhaustive()
    }
}

impl Env<fn(&str) -> Option<String>> {
    /// Reads the process environment.
    pub fn process() -> Self {
        Env::new(|name: &str| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Reads from any lookup function (tests pass a map).
    pub fn new(lookup: F) -> Self {
        Self {
            lookup,
            missing: Vec::new(),
            invalid: Vec::new(),
        }
    }

    /// A variable that must be set and non-empty; an empty string stands in until `finish` fails.
    pub fn required(&mut self, name: &str) -> String {
        match self.optional(name) {
            Some(value) => value,
            None => {
                self.missing.push(name.to_owned());
                String::new()
            }
        }
    }

    /// A variable that may be absent; empty counts as absent.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A variable parsed with `FromStr`, with a default when absent.
    pub fn parsed_or<T: std::str::FromStr>(&mut self, name: &str, default: T) -> T {
        match self.optional(name) {
            None => default,
            Some(raw) => raw.parse().unwrap_or_else(|_| {
                self.invalid
                    .push((name.to_owned(), format!("cannot parse {raw:?}")));
                default
            }),
        }
    }

    /// Records a problem found while interpreting a variable.
    pub fn invalid(&mut self, name: &str, problem: impl Into<String>) {
        self.invalid.push((name.to_owned(), problem.into()));
    }

    /// Succeeds only when nothing was missing or invalid.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.missing.is_empty() && self.invalid.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                missing: self.missing,
                invalid: self.invalid,
            })
        }
    }
}

/// Deserializes a settings document, tolerating keys it does not know: a key added before every
/// function is redeployed, or left behind by a rollback, must not fail a cold start. Returns the
/// value and the paths of the ignored keys (for one warning); errors carry the path of the bad value.
pub fn tolerant<'de, D, T>(
    deserializer: D,
) -> Result<(T, Vec<String>), serde_path_to_error::Error<D::Error>>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let value = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
        deserializer,
        &mut note,
    ))?;
    Ok((value, unknown))
}

/// The one warning about ignored keys of `document` (their names only, never values).
pub fn warn_unknown_keys(document: &str, unknown: &[String]) {
    if !unknown.is_empty() {
        tracing::warn!(document, keys = ?unknown, "unknown keys ignored (a newer or older deployment's settings?)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::new(move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn every_missing_variable_is_reported_at_once() {
        let mut e = env(&[("PRESENT", "x"), ("BLANK", "  ")]);
        assert_eq!(e.required("PRESENT"), "x");
        e.required("ABSENT_ONE");
        e.required("BLANK");
        let err = e.finish().expect_err("two are missing");
        assert_eq!(err.missing(), ["ABSENT_ONE", "BLANK"]);
        assert_eq!(
            err.to_string(),
            "missing environment variables: ABSENT_ONE, BLANK"
        );
    }

    #[test]
    fn unparsable_values_are_named() {
        let mut e = env(&[("MAX", "lots")]);
        assert_eq!(e.parsed_or("MAX", 3_usize), 3);
        let err = e.finish().expect_err("invalid");
        assert!(err.to_string().contains("MAX: cannot parse \"lots\""));
    }
}
