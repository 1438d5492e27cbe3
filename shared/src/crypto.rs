//! The few hashing primitives the domain needs, behind names that say what they are for.

use ring::digest;

/// Lowercase hex SHA-256 of `bytes` (64 characters).
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    hex::encode(ctx.finish().as_ref())
}

/// The first 8 bytes of the SHA-256 of `bytes`, base64url without padding (11 characters): a
/// short name for a key where a collision among a few dozen keys is what matters (2^-64 a pair).
pub fn short_digest(bytes: &[u8]) -> String {
    use base64::Engine as _;
    let digest = digest::digest(&digest::SHA256, bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..8])
}

/// `bytes` random bytes from the system's CSPRNG, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    static FALLBACK: AtomicU64 = AtomicU64::new(0);
    let mut buffer = vec![0_u8; bytes];
    if ring::rand::SystemRandom::new().fill(&mut buffer).is_err() {
        // Only if the OS has no entropy source: stay unique within the process at least.
        tracing::error!("the system random number generator failed");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let n = FALLBACK.fetch_add(1, Ordering::SeqCst);
        return sha256_hex(&[&nanos.to_le_bytes(), &n.to_le_bytes()]);
    }
    hex::encode(buffer)
}

/// Compares two secrets in time independent of where they differ and of their lengths
/// (both are hashed to fixed-length digests first).
pub fn secrets_equal(presented: &[u8], expected: &[u8]) -> bool {
    let a = digest::digest(&digest::SHA256, presented);
    let b = digest::digest(&digest::SHA256, expected);
    use subtle::ConstantTimeEq as _;
    bool::from(a.as_ref().ct_eq(b.as_ref()))
}

/// HMAC-SHA256 of `data` under `key` (the local stack's HS256 operator tokens).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// The certificates every HTTPS client trusts. By default Mozilla's root set, compiled in
/// (webpki-roots): nothing is read at cold start, and every machine trusts the same roots (the
/// system store took a read of each of ~150 files on a Debian host; BENCHMARKS.md, init). When
/// `SSL_CERT_FILE` or `SSL_CERT_DIR` is set (a private CA in front of an on-premises Orange Logic,
/// a TLS-inspecting proxy), the certificates there are trusted instead, as OpenSSL does.
fn root_store(
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<rustls::RootCertStore, TlsSetupError> {
    let file = lookup("SSL_CERT_FILE").filter(|v| !v.is_empty());
    let dir = lookup("SSL_CERT_DIR").filter(|v| !v.is_empty());
    if file.is_none() && dir.is_none() {
        return Ok(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    }
    let loaded = rustls_native_certs::load_certs_from_paths(
        file.as_deref().map(std::path::Path::new),
        dir.as_deref().map(std::path::Path::new),
    );
    for error in &loaded.errors {
        tracing::warn!(%error, "a root certificate of SSL_CERT_FILE / SSL_CERT_DIR could not be read");
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(loaded.certs);
    if roots.is_empty() {
        return Err(TlsSetupError::NoRootCertificates);
    }
    Ok(roots)
}

/// The TLS settings of every HTTPS client (the AWS SDK's, Graph, Orange Logic): rustls with ring,
/// the bundle's one crypto provider, and the roots of [`root_store`]. Built once per process.
pub fn tls_client_config() -> Result<rustls::ClientConfig, TlsSetupError> {
    static CONFIG: std::sync::OnceLock<Result<rustls::ClientConfig, TlsSetupError>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| client_config(|name| std::env::var_os(name)))
        .clone()
}

/// [`tls_client_config`] with the variables read through `lookup`.
pub(crate) fn client_config(
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let roots = root_store(lookup)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The TLS settings could not be made: no HTTPS call could succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsSetupError {
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` is set and holds no certificate that parses.
    #[error("SSL_CERT_FILE / SSL_CERT_DIR hold no root certificate that could be loaded")]
    NoRootCertificates,
    /// rustls refused the protocol versions (a build without TLS 1.2 and 1.3).
    #[error("TLS settings refused: {0}")]
    Rustls(String),
}

/// An HTTPS server on loopback for the handshake tests: the test CA's `localhost` certificate
/// (`shared/testdata`), rustls with ring on the server side too.
#[cfg(test)]
pub(crate) mod test_server {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::Write as _;
    use std::sync::Arc;

    /// Where the test CA is, as `SSL_CERT_FILE` would name it.
    pub(crate) fn ca_file() -> String {
        format!("{}/testdata/roots/test-ca.pem", env!("CARGO_MANIFEST_DIR"))
    }

    /// Client settings that trust only the test CA.
    pub(crate) fn trusting_test_ca() -> rustls::ClientConfig {
        let ca = ca_file();
        super::client_config(move |name| (name == "SSL_CERT_FILE").then(|| ca.clone().into()))
            .expect("the test CA loads")
    }

    /// Serves HTTPS on 127.0.0.1: each connection's first request is answered with `answer`
    /// and sent, as text, through the returned channel.
    pub(crate) fn answering(
        answer: String,
    ) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
        let dir = format!("{}/testdata", env!("CARGO_MANIFEST_DIR"));
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(format!("{dir}/tls-server.pem"))
                .expect("certificate file")
                .collect::<Result<_, _>>()
                .expect("certificate");
        let key = PrivateKeyDer::from_pem_file(format!("{dir}/tls-server.key")).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server certificate"),
        );
        serve(answer, move |tcp| {
            let connection = rustls::ServerConnection::new(Arc::clone(&config)).ok()?;
            Some(Box::new(rustls::StreamOwned::new(connection, tcp)))
        })
    }

    /// The same over plain HTTP.
    pub(crate) fn plain_answering(
        answer: String,
    ) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
        plain_answering_after(answer, std::time::Duration::ZERO)
    }

    /// [`plain_answering`], each answer `delay` after its request was read.
    pub(crate) fn plain_answering_after(
        answer: String,
        delay: std::time::Duration,
    ) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
        serve(answer, move |tcp| Some(Box::new(Delayed { tcp, delay })))
    }

    /// A stream whose first write waits `delay`.
    struct Delayed {
        tcp: std::net::TcpStream,
        delay: std::time::Duration,
    }

    impl std::io::Read for Delayed {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            self.tcp.read(buffer)
        }
    }

    impl std::io::Write for Delayed {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::mem::take(&mut self.delay));
            self.tcp.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.tcp.flush()
        }
    }

    trait Stream: std::io::Read + std::io::Write + Send {}
    impl<T: std::io::Read + std::io::Write + Send> Stream for T {}

    fn serve(
        answer: String,
        wrap: impl Fn(std::net::TcpStream) -> Option<Box<dyn Stream>> + Send + Sync + 'static,
    ) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let (seen, requests) = std::sync::mpsc::channel();
        let wrap = Arc::new(wrap);
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (wrap, seen, answer) = (Arc::clone(&wrap), seen.clone(), answer.clone());
                std::thread::spawn(move || {
                    let Some(mut stream) = wrap(tcp) else { return };
                    // None: the client refused the handshake or went away.
                    let Some(request) = read_request(&mut stream) else {
                        return;
                    };
                    let _ = seen.send(request);
                    let _ = stream.write_all(answer.as_bytes());
                    let _ = stream.flush();
                });
            }
        });
        (address, requests)
    }

    /// Headers, then as many body bytes as `content-length` says.
    fn read_request(stream: &mut impl std::io::Read) -> Option<String> {
        let mut seen = Vec::new();
        let mut buffer = [0_u8; 4096];
        loop {
            let n = stream.read(&mut buffer).ok()?;
            if n == 0 {
                return None;
            }
            seen.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .and_then(|v| v.trim().parse::<usize>().ok())
                    })
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length {
                    return Some(text);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_handshake_on_ring_succeeds_with_a_server_the_roots_vouch_for() {
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_owned();
        let (address, requests) = super::test_server::answering(answer);
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(super::test_server::trusting_test_ca())
            .build()
            .expect("client");
        let body = client
            .get(format!("https://127.0.0.1:{}/hello", address.port()))
            .send()
            .await
            .expect("the handshake succeeds")
            .text()
            .await
            .expect("body");
        assert_eq!(body, "ok");
        let request = requests.recv().expect("the server saw the request");
        assert!(request.starts_with("GET /hello HTTP/1.1"), "{request}");
    }

    #[tokio::test]
    async fn a_server_certificate_no_root_vouches_for_is_refused() {
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_owned();
        let (address, requests) = super::test_server::answering(answer);
        // The compiled-in Mozilla roots do not vouch for the test CA.
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(super::client_config(|_| None).expect("config"))
            .build()
            .expect("client");
        let error = client
            .get(format!("https://127.0.0.1:{}/", address.port()))
            .send()
            .await
            .expect_err("an unknown issuer is refused");
        assert!(error.is_connect(), "{error:?}");
        assert!(
            format!("{:?}", error).contains("UnknownIssuer"),
            "the cause is named: {error:?}"
        );
        assert!(requests.try_recv().is_err(), "no request went out");
    }

    #[test]
    fn the_tls_settings_are_made_once_on_ring() {
        let first = super::tls_client_config().expect("this machine has root certificates");
        let second = super::tls_client_config().expect("again");
        // One crypto provider: ring's cipher suites, no other.
        let ring = rustls::crypto::ring::default_provider();
        assert_eq!(
            first.crypto_provider().cipher_suites.len(),
            ring.cipher_suites.len()
        );
        assert!(std::sync::Arc::ptr_eq(
            first.crypto_provider(),
            second.crypto_provider()
        ));
    }

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<std::ffi::OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.into())
    }

    fn private_ca() -> String {
        format!("{}/testdata/roots/test-ca.pem", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn without_ssl_cert_variables_the_compiled_in_mozilla_roots_are_trusted() {
        let store = super::root_store(vars(&[])).expect("roots");
        assert_eq!(store.len(), webpki_roots::TLS_SERVER_ROOTS.len());
        assert!(store.len() > 100, "{} roots", store.len());
        // Empty values are as good as unset.
        let store = super::root_store(vars(&[("SSL_CERT_FILE", "")])).expect("roots");
        assert_eq!(store.len(), webpki_roots::TLS_SERVER_ROOTS.len());
    }

    #[test]
    fn ssl_cert_file_replaces_them_with_a_private_ca() {
        let store = super::root_store(vars(&[("SSL_CERT_FILE", &private_ca())])).expect("roots");
        assert_eq!(store.len(), 1, "only the private CA");
        let dir = format!("{}/testdata/roots", env!("CARGO_MANIFEST_DIR"));
        let store = super::root_store(vars(&[("SSL_CERT_DIR", &dir)])).expect("roots");
        assert_eq!(store.len(), 1, "the private CA, read from the directory");
    }

    #[test]
    fn an_ssl_cert_file_without_certificates_is_a_setup_error_that_names_the_variables() {
        let error = super::root_store(vars(&[("SSL_CERT_FILE", "/no/such/bundle.pem")]))
            .expect_err("nothing to trust");
        assert!(matches!(error, super::TlsSetupError::NoRootCertificates));
        assert!(error.to_string().contains("SSL_CERT_FILE"), "{error}");
    }
}
