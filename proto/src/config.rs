//! Loading of TOML config files shared by every Tessera binary: unknown keys
//! are rejected (each config struct uses `#[serde(deny_unknown_fields)]`) and
//! errors name the file.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
}

/// A process config with a listen address and an optional address file.
pub trait ListenerConfig {
    fn listen_mut(&mut self) -> &mut String;
    fn addr_file_mut(&mut self) -> &mut Option<std::path::PathBuf>;
}

/// Flags every Tessera server binary takes.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// TOML config file (unknown keys are rejected); flags override it.
    #[arg(long, short)]
    pub config: Option<std::path::PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:7100 (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<String>,
    /// Write the address actually bound to this file once listening.
    #[arg(long)]
    pub addr_file: Option<std::path::PathBuf>,
}

impl ServerArgs {
    /// The config file (or the defaults) with `--listen` and `--addr-file` applied.
    pub fn load<T: serde::de::DeserializeOwned + Default + ListenerConfig>(&self) -> Result<T, ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => load_toml::<T>(path)?,
            None => T::default(),
        };
        if let Some(v) = &self.listen {
            *cfg.listen_mut() = v.clone();
        }
        if let Some(v) = &self.addr_file {
            *cfg.addr_file_mut() = Some(v.clone());
        }
        Ok(cfg)
    }
}

/// Reads and parses a TOML config file into `T`.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.display().to_string(), message: e.to_string() })
}

/// Installs the tracing subscriber every binary uses: `RUST_LOG` filters, and
/// `TESSERA_LOG_FORMAT=json` writes one JSON object per line (with the
/// request span and its id) for log collectors.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // Warnings and errors are also kept in memory for operator pages (recent_events).
    let recent = crate::recent_events::RecentEventsLayer;
    let _ = if std::env::var("TESSERA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().with_current_span(true).with_span_list(false).finish().with(recent).try_init()
    } else {
        builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).finish().with(recent).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        listen: String,
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_file_name() {
        let dir = std::env::temp_dir().join(format!("tessera-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "listen = \"x\"\nlisten_typo = 1\n").unwrap();
        let err = load_toml::<Sample>(&path).unwrap_err().to_string();
        assert!(err.contains("listen_typo"), "{err}");
        assert!(err.contains("c.toml"), "{err}");
        std::fs::write(&path, "listen = \"x\"\n").unwrap();
        assert_eq!(load_toml::<Sample>(&path).unwrap().listen, "x");
    }
}
