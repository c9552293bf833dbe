//! TLS for PostgreSQL connections, with libpq's `sslmode` meanings:
//!
//! | sslmode | encryption | certificate check |
//! | --- | --- | --- |
//! | `disable` | no | — |
//! | `prefer` (default) | if the server offers it | none |
//! | `require` | yes | none (as libpq without a root certificate) |
//! | `verify-ca` | yes | chain to a trusted root (`sslrootcert`, else the public web roots) |
//! | `verify-full` | yes | chain and host name |
//!
//! The `postgres` crate knows only disable/prefer/require and no `sslrootcert`, so the
//! URL is rewritten for it and the check is done by the rustls configuration here.

use std::path::PathBuf;
use std::sync::Arc;

use ripcord_core::EngineError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How to secure one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP (`sslmode=disable`).
    Plain,
    /// TLS without checking the certificate (`prefer`, `require`).
    Encrypted,
    /// TLS with the certificate checked against `root` (or the public roots); the host
    /// name too when `hostname` is set.
    Verified {
        /// `sslrootcert`.
        root: Option<PathBuf>,
        /// `verify-full`.
        hostname: bool,
    },
}

/// Split `url` into what the `postgres` crate understands and the security to apply.
pub fn prepare(url: &str) -> (String, Security) {
    // Cut where the driver cuts: a password may hold an unencoded `?`.
    let Some(parts) = ripcord_core::url::PgUrl::parse(url).filter(|p| p.query.is_some()) else {
        return (url.to_string(), Security::Encrypted);
    };
    let mut mode = String::from("prefer");
    let mut root = None;
    let mut kept = Vec::new();
    for (key, value) in parts.params() {
        match key {
            "sslmode" => mode = value.to_string(),
            "sslrootcert" => root = Some(PathBuf::from(value)),
            _ if value.is_empty() => kept.push(key.to_string()),
            _ => kept.push(format!("{key}={value}")),
        }
    }
    let (crate_mode, security) = match mode.as_str() {
        "disable" => ("disable", Security::Plain),
        "verify-ca" => (
            "require",
            Security::Verified {
                root,
                hostname: false,
            },
        ),
        "verify-full" => (
            "require",
            Security::Verified {
                root,
                hostname: true,
            },
        ),
        "require" => ("require", Security::Encrypted),
        // allow, prefer and anything unknown are left to the crate to accept or refuse.
        other => (
            if other == "allow" { "prefer" } else { other },
            Security::Encrypted,
        ),
    };
    kept.push(format!("sslmode={crate_mode}"));
    let query = kept.join("&");
    (
        parts.render(parts.password, parts.database, Some(&query)),
        security,
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector for `security` (not used for [`Security::Plain`]).
pub fn connector(security: &Security) -> Result<MakeRustlsConnect, EngineError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(format!("TLS set-up failed: {e}")))?;
    let config = match security {
        Security::Plain | Security::Encrypted => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        Security::Verified { root, hostname } => {
            let mut roots = RootCertStore::empty();
            match root {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                        tls_error(format!("cannot read sslrootcert {}: {e}", path.display()))
                    })?;
                    for cert in certs {
                        let cert = cert.map_err(|e| {
                            tls_error(format!("bad certificate in {}: {e}", path.display()))
                        })?;
                        roots.add(cert).map_err(|e| {
                            tls_error(format!("unusable certificate in {}: {e}", path.display()))
                        })?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| tls_error(format!("TLS set-up failed: {e}")))?;
            if *hostname {
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
                    .with_no_client_auth()
            }
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn tls_error(reason: String) -> EngineError {
    EngineError::Invalid {
        reason,
        hint: Some("check sslmode and sslrootcert in the target URL".into()),
    }
}

/// `sslmode=require`: encrypt, trust any certificate (libpq does the same).
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the name may differ.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
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
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmodes_map_to_what_the_crate_knows() {
        assert_eq!(
            prepare("postgres://h/db"),
            ("postgres://h/db".into(), Security::Encrypted)
        );
        assert_eq!(
            prepare("postgres://h/db?sslmode=disable&application_name=x"),
            (
                "postgres://h/db?application_name=x&sslmode=disable".into(),
                Security::Plain
            )
        );
        assert_eq!(
            prepare("postgres://h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem"),
            (
                "postgres://h/db?sslmode=require".into(),
                Security::Verified {
                    root: Some("/etc/ca.pem".into()),
                    hostname: true
                }
            )
        );
        assert_eq!(
            prepare("postgres://h/db?sslmode=verify-ca").1,
            Security::Verified {
                root: None,
                hostname: false
            }
        );
    }
}
