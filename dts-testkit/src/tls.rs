//! Certificates for servers started with TLS: a test certificate authority, a server
//! certificate and a client certificate it signed, and a second authority that signed
//! nothing (to test verification failures).

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::IoContext;
use crate::{layout, Error};

/// Who may connect to an account created for TLS tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsAccount {
    /// Only over TLS, authenticating with the account's password (MariaDB `REQUIRE SSL`,
    /// PostgreSQL `hostssl … scram-sha-256`).
    Encrypted,
    /// Only over TLS with a client certificate signed by the test authority (MariaDB
    /// `REQUIRE X509`, PostgreSQL `hostssl … cert`, where the certificate's common name must
    /// be the user name).
    ClientCertificate,
}

/// Certificates and keys in PEM files, generated for one test run and removed on drop.
///
/// - the authority [`TestCertificates::ca_cert`] signed the server certificate and the
///   client certificate;
/// - the server certificate is valid for the names given to
///   [`TestCertificates::generate`] (DNS names, or IP addresses such as `127.0.0.1`);
/// - the client certificate has the common name given to [`TestCertificates::generate`];
/// - [`TestCertificates::other_ca_cert`] is an unrelated authority: verifying the server
///   against it must fail.
///
/// Keys are ECDSA P-256, PKCS#8, readable only by the owner.
pub struct TestCertificates {
    dir: PathBuf,
    server_names: Vec<String>,
    client_name: String,
}

impl TestCertificates {
    /// Generates the certificates into a fresh directory of the run directory.
    ///
    /// # Errors
    ///
    /// Fails if a name is not a valid DNS name or IP address, or the files cannot be written.
    pub fn generate(server_names: &[&str], client_name: &str) -> Result<Self, Error> {
        let dir = layout::instance_dir("tls")?;
        let certs = Self {
            dir,
            server_names: server_names.iter().map(|s| (*s).to_owned()).collect(),
            client_name: client_name.to_owned(),
        };
        certs.write()?;
        Ok(certs)
    }

    fn write(&self) -> Result<(), Error> {
        let (ca_params, ca_key) = authority("dts test authority")?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(certificate_error)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut server =
            CertificateParams::new(self.server_names.clone()).map_err(certificate_error)?;
        server.distinguished_name.push(
            DnType::CommonName,
            self.server_names.first().map_or("server", String::as_str),
        );
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().map_err(certificate_error)?;
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .map_err(certificate_error)?;

        let mut client = CertificateParams::new(Vec::<String>::new()).map_err(certificate_error)?;
        client
            .distinguished_name
            .push(DnType::CommonName, self.client_name.as_str());
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().map_err(certificate_error)?;
        let client_cert = client
            .signed_by(&client_key, &issuer)
            .map_err(certificate_error)?;

        let (other_params, other_key) = authority("dts unrelated test authority")?;
        let other_cert = other_params
            .self_signed(&other_key)
            .map_err(certificate_error)?;

        write_pem(&self.ca_cert(), "CERTIFICATE", ca_cert.der())?;
        write_pem(&self.server_cert(), "CERTIFICATE", server_cert.der())?;
        write_pem(
            &self.server_key(),
            "PRIVATE KEY",
            &server_key.serialize_der(),
        )?;
        write_pem(&self.client_cert(), "CERTIFICATE", client_cert.der())?;
        write_pem(
            &self.client_key(),
            "PRIVATE KEY",
            &client_key.serialize_der(),
        )?;
        write_pem(&self.other_ca_cert(), "CERTIFICATE", other_cert.der())?;
        Ok(())
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The names the server certificate is valid for.
    pub fn server_names(&self) -> &[String] {
        &self.server_names
    }

    /// The common name of the client certificate.
    pub fn client_name(&self) -> &str {
        &self.client_name
    }

    /// The authority's certificate (`ca.pem`).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server certificate (`server.pem`).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's private key (`server.key`).
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The client certificate (`client.pem`).
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// The client's private key (`client.key`).
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// An authority that signed neither certificate (`other-ca.pem`).
    pub fn other_ca_cert(&self) -> PathBuf {
        self.dir.join("other-ca.pem")
    }
}

impl fmt::Debug for TestCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCertificates")
            .field("dir", &self.dir)
            .field("server_names", &self.server_names)
            .field("client_name", &self.client_name)
            .finish()
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The authority, certificate and key a private server uses, copied into its directory so
/// that they outlive the [`TestCertificates`] they came from.
#[derive(Debug, Clone)]
pub(crate) struct ServerTls {
    /// The authority that client certificates must be signed by.
    pub(crate) ca: PathBuf,
    /// The server certificate.
    pub(crate) cert: PathBuf,
    /// The server's private key (mode 0600).
    pub(crate) key: PathBuf,
}

impl ServerTls {
    /// Copies the server's files of `certs` into `dir`, owned by `owner` (uid, gid) if given.
    pub(crate) fn install(
        certs: &TestCertificates,
        dir: &Path,
        owner: Option<(u32, u32)>,
    ) -> Result<Self, Error> {
        let tls = Self {
            ca: dir.join("tls-ca.pem"),
            cert: dir.join("tls-server.pem"),
            key: dir.join("tls-server.key"),
        };
        for (from, to) in [
            (certs.ca_cert(), &tls.ca),
            (certs.server_cert(), &tls.cert),
            (certs.server_key(), &tls.key),
        ] {
            fs::copy(&from, to)
                .context(|| format!("copy `{}` to `{}`", from.display(), to.display()))?;
            fs::set_permissions(to, fs::Permissions::from_mode(0o600))
                .context(|| format!("set permissions of `{}`", to.display()))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(to, Some(uid), Some(gid))
                    .context(|| format!("change the owner of `{}`", to.display()))?;
            }
        }
        Ok(tls)
    }
}

/// Parameters and key of a certificate authority named `name`.
fn authority(name: &str) -> Result<(CertificateParams, KeyPair), Error> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(certificate_error)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(certificate_error)?;
    Ok((params, key))
}

fn certificate_error(e: rcgen::Error) -> Error {
    Error::Certificates {
        reason: e.to_string(),
    }
}

/// Writes `der` as a PEM file with the given label, readable only by the owner.
fn write_pem(path: &Path, label: &str, der: &[u8]) -> Result<(), Error> {
    let encoded = base64(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    fs::write(path, text).context(|| format!("write `{}`", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .context(|| format!("set permissions of `{}`", path.display()))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_base64() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn generates_pem_files() {
        let certs = TestCertificates::generate(&["localhost", "127.0.0.1"], "alice").unwrap();
        for path in [
            certs.ca_cert(),
            certs.server_cert(),
            certs.client_cert(),
            certs.other_ca_cert(),
        ] {
            let text = fs::read_to_string(&path).unwrap();
            assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"), "{text}");
        }
        let key = fs::read_to_string(certs.server_key()).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let dir = certs.dir().to_path_buf();
        drop(certs);
        assert!(!dir.exists());
    }
}
