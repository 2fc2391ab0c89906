//! TLS through rustls with the `ring` provider: certificate loading, the three levels of
//! server verification both ecosystems know (none, chain, chain and host name), and the
//! translation of handshake failures into messages that name the failed check.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;

use dts_core::{Error, ErrorKind, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verification {
    /// Encrypt only (libpq `require`, MySQL `REQUIRED`).
    None,
    /// The certificate must chain to a trusted root; its names are not checked (libpq
    /// `verify-ca`, MySQL `VERIFY_CA`).
    Chain,
    /// As `Chain`, and the certificate must be valid for the host name connected to
    /// (libpq `verify-full`, MySQL `VERIFY_IDENTITY`).
    ChainAndHost,
}

/// The crypto provider of every TLS connection: ring, the one provider in the build
/// (mysql_async's connections use it through rustls' process default). rustls 0.23.48
/// deprecated it for lacking post-quantum key exchange; moving to aws-lc-rs means switching
/// the `ring` features of rustls, tokio-rustls, mysql_async and rcgen together.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificates of a PEM file; `what` names the option in errors.
pub(crate) fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| file_error(what, path).with_source(e))?;
    if certs.is_empty() {
        return Err(Error::config(format!(
            "no certificate in {what} `{}`",
            path.display()
        )));
    }
    Ok(certs)
}

/// Reads the private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn load_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(what, path).with_source(e))
}

fn file_error(what: &str, path: &Path) -> Error {
    Error::config(format!("cannot read {what} `{}`", path.display()))
}

/// A rustls client configuration: verification level, trusted roots (required unless
/// `verification` is `None`) and an optional client certificate and key.
pub(crate) fn client_config(
    verification: Verification,
    roots: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal("tls protocol versions").with_source(e))?;
    let mut store = rustls::RootCertStore::empty();
    for cert in roots {
        store
            .add(cert)
            .map_err(|e| Error::config("invalid root certificate").with_source(e))?;
    }
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match verification {
        Verification::None => Arc::new(verify::Relaxed::encrypt_only(&provider)),
        Verification::Chain | Verification::ChainAndHost => {
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(store),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::config("no usable root certificate").with_source(e))?;
            if verification == Verification::Chain {
                Arc::new(verify::Relaxed::chain_only(webpki, &provider))
            } else {
                webpki
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| Error::config("invalid client certificate or key").with_source(e)),
        None => Ok(builder.with_no_client_auth()),
    }
}

mod verify {
    //! The server certificate verifier for the levels that rustls does not offer by itself.

    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::{
        verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
    };
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

    /// Checks less than webpki: with `chain`, the chain to its trusted roots but not the
    /// host name (webpki checks the names after the chain, so a name mismatch means the
    /// chain was valid); without, nothing (the connection is encrypted, but the server is
    /// not authenticated). Either way the server must hold the certificate's key.
    #[derive(Debug)]
    pub(super) struct Relaxed {
        chain: Option<Arc<WebPkiServerVerifier>>,
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl Relaxed {
        /// Accepts any certificate.
        pub(super) fn encrypt_only(provider: &CryptoProvider) -> Self {
            Self {
                chain: None,
                algorithms: provider.signature_verification_algorithms,
            }
        }

        /// Checks the chain with `webpki`, but not the names.
        pub(super) fn chain_only(
            webpki: Arc<WebPkiServerVerifier>,
            provider: &CryptoProvider,
        ) -> Self {
            Self {
                chain: Some(webpki),
                algorithms: provider.signature_verification_algorithms,
            }
        }
    }

    impl ServerCertVerifier for Relaxed {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let Some(chain) = &self.chain else {
                return Ok(ServerCertVerified::assertion());
            };
            match chain.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }
}

/// The rustls error somewhere in the cause chain of `error`, if any. `io::Error`s hide the
/// error they wrap from `source()`, so they are opened explicitly.
pub(crate) fn find_rustls_error<'a>(
    error: &'a (dyn StdError + 'static),
) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(found) = find_rustls_error(inner) {
                return Some(found);
            }
        }
        current = e.source();
    }
    None
}

/// The error of a failed connection attempt to the server `what` names: a connection error
/// naming the failed check when the server certificate failed one, else `classify`'s
/// error, the driver's own classification.
pub(crate) fn connect_error<E>(error: E, what: String, classify: fn(E, String) -> Error) -> Error
where
    E: StdError + Send + Sync + 'static,
{
    match certificate_failure(&error) {
        Some(check) => {
            Error::new(ErrorKind::Connection, format!("{what}: {check}")).with_source(error)
        }
        None => classify(error, what),
    }
}

/// What a failed TLS handshake says about the server certificate, as a message naming
/// the check: `None` if the error is not a certificate failure.
pub(crate) fn certificate_failure(error: &(dyn StdError + 'static)) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert) = find_rustls_error(error)? else {
        return None;
    };
    Some(match cert {
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the server certificate failed the host name check (it is not issued for the \
             host connected to)"
                .to_owned()
        }
        C::UnknownIssuer | C::BadSignature => {
            "the server certificate failed the certificate check (it is not signed by a \
             trusted root certificate)"
                .to_owned()
        }
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            "the server certificate failed the certificate check (outside its validity period)"
                .to_owned()
        }
        other => format!("the server certificate failed the certificate check ({other:?})"),
    })
}

#[cfg(feature = "postgres")]
pub(crate) mod postgres {
    //! The TLS connector of tokio-postgres, on tokio-rustls.

    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

    /// Makes TLS connections with one rustls configuration. Channel binding is not
    /// offered, so SCRAM authentication uses `SCRAM-SHA-256` (as libpq with
    /// `channel_binding=disable`).
    #[derive(Clone)]
    pub(crate) struct MakeRustls {
        config: Arc<rustls::ClientConfig>,
    }

    impl MakeRustls {
        pub(crate) fn new(config: rustls::ClientConfig) -> Self {
            Self {
                config: Arc::new(config),
            }
        }
    }

    impl<S> MakeTlsConnect<S> for MakeRustls
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = RustlsStream<S>;
        type TlsConnect = RustlsConnect;
        type Error = rustls::pki_types::InvalidDnsNameError;

        fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, Self::Error> {
            let name = ServerName::try_from(domain.trim_start_matches('[').trim_end_matches(']'))?
                .to_owned();
            Ok(RustlsConnect {
                config: self.config.clone(),
                name,
            })
        }
    }

    /// One TLS connection attempt to a named server.
    pub(crate) struct RustlsConnect {
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    }

    impl<S> TlsConnect<S> for RustlsConnect
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = RustlsStream<S>;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

        fn connect(self, stream: S) -> Self::Future {
            Box::pin(async move {
                let connector = tokio_rustls::TlsConnector::from(self.config);
                let stream = connector.connect(self.name, stream).await?;
                Ok(RustlsStream(stream))
            })
        }
    }

    /// A TLS stream to a PostgreSQL server.
    pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

    impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
        fn channel_binding(&self) -> ChannelBinding {
            ChannelBinding::none()
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }
}
