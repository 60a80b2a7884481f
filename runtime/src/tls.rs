//! HTTPS with rustls: `CONNECTOR_TLS_CERT` and `CONNECTOR_TLS_KEY` (PEM files) make the
//! server speak TLS only; `CONNECTOR_TLS_CLIENT_CA` also asks every client for a certificate
//! signed by one of its authorities (mutual TLS). The files are read at start-up (a missing,
//! unreadable or mismatched pair stops the start, naming the file) and again on SIGHUP: new
//! connections get the new certificate, open ones keep theirs, and a reload that fails keeps
//! the old configuration and logs why.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::config::TlsSettings;

/// The longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const BACKLOG: usize = 128;

/// The server's TLS configuration, replaced as a whole on reload.
pub struct Tls {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads the certificate chain, the key and the client CAs, all checked.
    pub fn load(settings: TlsSettings) -> Result<Self, String> {
        let config = server_config(&settings)?;
        Ok(Self {
            settings,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the files again; on failure the configuration in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.settings)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// Whether clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.settings.client_ca.is_some()
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(variable: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path)
        .map_err(|error| format!("{variable} {}: cannot read it: {error}", path.display()))
}

fn certificates(variable: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(variable, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{variable} {}: not valid PEM: {error}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{variable} {}: holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(certificates)
}

fn server_config(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let provider = provider();
    let chain = certificates("CONNECTOR_TLS_CERT", &settings.cert)?;
    let key_pem = read("CONNECTOR_TLS_KEY", &settings.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        format!(
            "CONNECTOR_TLS_KEY {}: holds no usable PEM private key: {error}",
            settings.key.display()
        )
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|error| {
            format!(
                "CONNECTOR_TLS_KEY {}: the private key cannot be used: {error}",
                settings.key.display()
            )
        })?;
    let certified = CertifiedKey::new(chain.clone(), signing_key);
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(format!(
            "CONNECTOR_TLS_CERT {} and CONNECTOR_TLS_KEY {} do not match: the certificate is not for this key",
            settings.cert.display(),
            settings.key.display()
        ));
    }
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("cannot set up TLS: {error}"))?;
    let builder = match &settings.client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates("CONNECTOR_TLS_CLIENT_CA", path)? {
                roots.add(certificate).map_err(|error| {
                    format!(
                        "CONNECTOR_TLS_CLIENT_CA {}: not a usable CA certificate: {error}",
                        path.display()
                    )
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| format!("CONNECTOR_TLS_CLIENT_CA {}: {error}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|error| {
        format!(
            "CONNECTOR_TLS_CERT {} and CONNECTOR_TLS_KEY {}: {error}",
            settings.cert.display(),
            settings.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Connections that finished their TLS handshake, for `axum::serve`. Handshakes run on tasks
/// of their own, so a slow or silent client never holds up the others.
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: Arc<Tls>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, ready) = tokio::sync::mpsc::channel(BACKLOG);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if sender.is_closed() {
                    return;
                }
                let acceptor = tls.acceptor();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::info!(%peer, %error, "TLS handshake refused");
                        }
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Reloads the TLS files on every SIGHUP.
#[cfg(unix)]
pub fn reload_on_hangup(tls: Arc<Tls>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: the TLS certificate is read at start-up only");
        return;
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!(
                    cert = %tls.settings.cert.display(),
                    "SIGHUP: TLS certificate and key reloaded; new connections use them"
                ),
                Err(error) => tracing::error!(
                    %error,
                    "SIGHUP: the TLS files cannot be reloaded; the previous certificate stays in use"
                ),
            }
        }
    });
}

#[cfg(not(unix))]
pub fn reload_on_hangup(_tls: Arc<Tls>) {}
