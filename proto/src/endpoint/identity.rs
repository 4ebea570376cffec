//! Long-lived identities: a key pair and a self-signed certificate per role, created on
//! first run and kept in the state directory (key file mode 0600).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::id::KeyId;

/// File name of the private key.
pub const KEY_FILE: &str = "identity.key";
/// File name of the certificate.
pub const CERT_FILE: &str = "identity.crt";

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The state directory could not be created.
    #[error("cannot create the state directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The state directory's path names a file (or something else that is not a
    /// directory).
    #[error("the state directory {path} is a file, not a directory; give --state-dir a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The files exist but are unusable. The message ends with the damage, so that the
    /// parser's words (the cause) follow the file they are about.
    #[error(
        "the identity in {dir} is damaged (move the directory away to create a new identity; everything paired \
         with it will need to pair again): {damage}"
    )]
    Corrupt {
        /// The state directory.
        dir: PathBuf,
        /// Which file is wrong, and how.
        damage: Damage,
        /// What the parser said, when a file does not parse.
        #[source]
        cause: Option<ParseError>,
    },
    /// Key generation failed.
    #[error("cannot generate a key pair")]
    Generate(#[from] rcgen::Error),
}

/// Which identity file is wrong, and how: part of [`IdentityError::Corrupt`]'s own
/// message; the parser's words, if any, are its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// This file is missing while the other exists.
    Missing(&'static str),
    /// This file does not parse.
    Unreadable(&'static str),
    /// The certificate is for another key.
    Mismatch,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Missing(file) => write!(f, "{file} is missing"),
            Damage::Unreadable(file) => write!(f, "{file} does not parse"),
            Damage::Mismatch => write!(f, "{CERT_FILE} does not belong to {KEY_FILE}"),
        }
    }
}

/// Why an identity file does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not PEM, or not the expected PEM item.
    #[error(transparent)]
    Pem(#[from] rustls_pki_types::pem::Error),
    /// Not an X.509 certificate.
    #[error(transparent)]
    Certificate(#[from] webpki::Error),
    /// Not a usable key pair.
    #[error(transparent)]
    Key(#[from] rcgen::Error),
}

/// A key pair with its self-signed certificate and ID.
#[derive(Debug)]
pub struct Identity {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    /// SHA-256 of the certificate's public key.
    pub id: KeyId,
}

impl Identity {
    /// A copy of the private key, for a TLS configuration.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    /// Loads the identity from `dir`, creating the directory and a new identity on
    /// first use. Returns whether it was created.
    pub fn load_or_create(dir: &Path, common_name: &str) -> Result<(Identity, bool), IdentityError> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        match (key_path.exists(), cert_path.exists()) {
            (true, true) => Ok((Self::load(dir, &key_path, &cert_path)?, false)),
            (false, false) => Ok((Self::create(dir, &key_path, &cert_path, common_name)?, true)),
            (true, false) => Err(corrupt(dir, Damage::Missing(CERT_FILE), None)),
            (false, true) => Err(corrupt(dir, Damage::Missing(KEY_FILE), None)),
        }
    }

    fn load(dir: &Path, key_path: &Path, cert_path: &Path) -> Result<Identity, IdentityError> {
        let key_pem = fs::read(key_path).map_err(|source| IdentityError::Read { path: key_path.into(), source })?;
        let cert_pem = fs::read(cert_path).map_err(|source| IdentityError::Read { path: cert_path.into(), source })?;
        let unreadable = |file, e: ParseError| corrupt(dir, Damage::Unreadable(file), Some(e));
        let key = PrivatePkcs8KeyDer::from_pem_slice(&key_pem).map_err(|e| unreadable(KEY_FILE, e.into()))?;
        let cert = CertificateDer::from_pem_slice(&cert_pem).map_err(|e| unreadable(CERT_FILE, e.into()))?;
        let id = key_id_of(&cert).map_err(|e| unreadable(CERT_FILE, e.into()))?;
        // The certificate must belong to the key: compare public keys.
        let pair = rcgen::KeyPair::try_from(&key).map_err(|e| unreadable(KEY_FILE, e.into()))?;
        if KeyId::from_spki(&rcgen::PublicKeyData::subject_public_key_info(&pair)) != id {
            return Err(corrupt(dir, Damage::Mismatch, None));
        }
        warn_if_readable_by_others(key_path);
        Ok(Identity { cert, key, id })
    }

    fn create(dir: &Path, key_path: &Path, cert_path: &Path, common_name: &str) -> Result<Identity, IdentityError> {
        create_private_dir(dir)?;
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = rcgen::CertificateParams::new(vec!["lanreach".to_owned()])?;
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&pair)?;
        write_private(key_path, pair.serialize_pem().as_bytes())?;
        write_file(cert_path, cert.pem().as_bytes(), 0o644)?;
        let id = KeyId::from_spki(&rcgen::PublicKeyData::subject_public_key_info(&pair));
        let key = PrivatePkcs8KeyDer::from(pair.serialize_der());
        Ok(Identity { cert: cert.der().clone(), key, id })
    }
}

fn corrupt(dir: &Path, damage: Damage, cause: Option<ParseError>) -> IdentityError {
    IdentityError::Corrupt { dir: dir.into(), damage, cause }
}

/// The key ID of a DER certificate: SHA-256 of its SubjectPublicKeyInfo.
pub fn key_id_of(cert: &CertificateDer<'_>) -> Result<KeyId, webpki::Error> {
    let parsed = webpki::EndEntityCert::try_from(cert)?;
    Ok(KeyId::from_spki(parsed.subject_public_key_info().as_ref()))
}

/// Creates `dir` (and parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> Result<(), IdentityError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    if dir.exists() && !dir.is_dir() {
        return Err(IdentityError::NotADirectory { path: dir.into() });
    }
    builder.create(dir).map_err(|source| IdentityError::CreateDir { path: dir.into(), source })
}

/// Writes a secret file with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    write_file(path, bytes, 0o600)
}

/// Writes `bytes` to `path` atomically (temporary file, then rename) with `mode`.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let err = |source| IdentityError::Write { path: path.into(), source };
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    fs::rename(&tmp, path).map_err(err)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!("{} is readable by other users; run: chmod 600 {}", path.display(), path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_loaded_with_the_same_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("agent");
        let (first, created) = Identity::load_or_create(&state, "host").expect("create");
        assert!(created);
        let (again, created) = Identity::load_or_create(&state, "host").expect("load");
        assert!(!created);
        assert_eq!(first.id, again.id);
        assert_eq!(key_id_of(&again.cert).expect("parse"), again.id);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(state.join(KEY_FILE)).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn damaged_or_mismatched_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        Identity::load_or_create(&a, "a").expect("a");
        Identity::load_or_create(&b, "b").expect("b");
        fs::copy(b.join(CERT_FILE), a.join(CERT_FILE)).expect("copy");
        let err = Identity::load_or_create(&a, "a").expect_err("mismatch");
        assert!(err.to_string().contains("does not belong"), "{err}");
        fs::write(b.join(KEY_FILE), "junk").expect("write");
        assert!(matches!(Identity::load_or_create(&b, "b"), Err(IdentityError::Corrupt { .. })));
        fs::remove_file(b.join(CERT_FILE)).expect("rm");
        fs::remove_file(b.join(KEY_FILE)).expect("rm");
        fs::write(b.join(KEY_FILE), "junk").expect("write");
        let err = Identity::load_or_create(&b, "b").expect_err("missing cert");
        assert!(err.to_string().contains("identity.crt is missing"), "{err}");
    }
}
