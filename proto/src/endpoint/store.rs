//! Small JSON state files (trusted peers, known agents): read whole, written atomically
//! with mode 0600.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::identity::{IdentityError, create_private_dir, write_private};

/// Why a state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{path} is damaged (fix or delete it)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// The value does not serialise (not expected for our types).
    #[error("cannot encode {path}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// What the serialiser said.
        source: serde_json::Error,
    },
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] IdentityError),
}

/// Reads `path`, or the default value when the file does not exist yet.
pub fn load<T: DeserializeOwned + Default>(path: &Path) -> Result<T, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse { path: path.into(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(StoreError::Read { path: path.into(), source }),
    }
}

/// Writes `value` to `path` as pretty JSON, atomically, mode 0600.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|source| StoreError::Encode { path: path.into(), source })?;
    bytes.push(b'\n');
    write_private(path, &bytes)?;
    Ok(())
}

/// A JSON file in a state directory (trusted peers, known agents).
pub trait StateFile: Serialize + DeserializeOwned + Default {
    /// Its file name inside the state directory.
    const FILE: &'static str;

    /// Reads it from `state_dir` (empty when it does not exist yet).
    fn load(state_dir: &Path) -> Result<Self, StoreError> {
        load(&state_dir.join(Self::FILE))
    }

    /// Writes it to `state_dir`.
    fn save(&self, state_dir: &Path) -> Result<(), StoreError> {
        save(&state_dir.join(Self::FILE), self)
    }
}

/// Seconds since the Unix epoch, for "paired at" stamps.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_empty_damaged_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x/list.json");
        let empty: Vec<String> = load(&path).expect("missing is empty");
        assert!(empty.is_empty());
        save(&path, &vec!["a".to_owned()]).expect("save");
        assert_eq!(load::<Vec<String>>(&path).expect("load"), vec!["a"]);
        std::fs::write(&path, "{oops").expect("write");
        let err = load::<Vec<String>>(&path).expect_err("damaged");
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
