//! Reading the configuration: built-in defaults < TOML file < environment.
//!
//! figment's own `Env` provider parses values (`0123` becomes the number 123),
//! which would corrupt secrets and client ids. [`EnvStrings`] keeps every
//! value a string, except values that open with `[` or `{` (arrays and
//! tables), and the merged tree is extracted with figment's lossy mode, which
//! turns strings into the numbers and booleans the schema asks for. The file
//! alone is extracted strictly first, so a wrong type in the file is still an
//! error.

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use std::fmt;
use std::path::Path;

use super::raw::RawConfig;
use super::Config;

/// Environment variables that override keys start with this.
pub const ENV_PREFIX: &str = "TOKENGATE_";

/// One problem in the configuration: the key path and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Every problem found in one load, in the order found.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// The `TOKENGATE_*` variables of this process's environment.
pub fn env_overrides() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect()
}

impl Config {
    /// Loads `path`, applies the process environment, validates.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with_env(path, env_overrides())
    }

    /// Loads `path` with the given environment overrides (name, value).
    pub fn load_with_env(path: &Path, env: Vec<(String, String)>) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
        })?;
        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        let mut config = Config::from_toml(&text, base_dir, env)?;
        config.source = Some(path.to_path_buf());
        config.source_digest = Some(file_digest(text.as_bytes()));
        Ok(config)
    }

    /// Parses configuration text; relative file paths resolve against `base_dir`.
    pub fn from_toml(
        text: &str,
        base_dir: &Path,
        env: Vec<(String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let file = Figment::from(Toml::string(text));
        file.extract::<RawConfig>().map_err(figment_errors)?;
        let merged = file.merge(EnvStrings { vars: env });
        let raw: RawConfig = merged.extract_lossy().map_err(figment_errors)?;
        super::build::build(raw, base_dir)
    }
}

/// The digest `watch_config` compares.
pub fn file_digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref());
    out
}

fn figment_errors(err: figment::Error) -> ConfigErrors {
    ConfigErrors(err.into_iter().map(figment_error).collect())
}

fn figment_error(err: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let path = &err.path;
    let key = if path.is_empty() {
        "config".to_string()
    } else {
        path.join(".")
    };
    let reason = match &err.kind {
        Kind::UnknownField(field, expected) => match super::suggest::nearest(field, expected) {
            Some(known) => format!("unknown key; did you mean {known:?}?"),
            None => "unknown key".to_string(),
        },
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    };
    let from_env = err
        .metadata
        .as_ref()
        .is_some_and(|m| m.name.contains("environment"));
    let reason = if from_env {
        format!("{reason} (from the environment)")
    } else {
        reason
    };
    ConfigError::new(key, reason)
}

/// `TOKENGATE_A__B=v` as `a.b = "v"`, values kept as strings.
struct EnvStrings {
    vars: Vec<(String, String)>,
}

impl Provider for EnvStrings {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable(s)")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (name, value) in &self.vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(figment::Error::from(format!(
                    "environment variable {name} does not name a key"
                )));
            }
            insert(&mut root, &path, env_value(value));
        }
        Ok(Profile::Default.collect(root))
    }
}

fn env_value(raw: &str) -> Value {
    let trimmed = raw.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        let Ok(v) = raw.parse::<Value>();
        return v;
    }
    Value::from(raw.to_string())
}

fn insert(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}
