//! RA-TLS over real TLS 1.3 on loopback: a server presenting a certificate issued from a
//! simulated TD's quote (through the production provider), clients verifying it with the
//! rustls verifiers, and mutual authentication.

mod ratls_support;

use cocoon_measure::ratls::{self, tls, RatlsVerifier, Refusal};
use ratls_support::*;
use rustls::pki_types::ServerName;
use rustls::sign::SingleCertAndKey;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Serves `connections` TLS connections: reads 4 bytes, answers "pong", returns the identity
/// of each client when `client_verifier` is set.
async fn serve(
    listener: TcpListener,
    config: rustls::ServerConfig,
    connections: usize,
    client_verifier: Option<Arc<RatlsVerifier>>,
) -> Vec<Result<Option<String>, String>> {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let mut out = Vec::new();
    for _ in 0..connections {
        let (tcp, _) = listener.accept().await.unwrap();
        match acceptor.accept(tcp).await {
            Ok(mut tls) => {
                let mut buf = [0u8; 4];
                let _ = tls.read_exact(&mut buf).await;
                let _ = tls.write_all(b"pong").await;
                let _ = tls.shutdown().await;
                let id = client_verifier.as_ref().map(|v| {
                    tls::peer_identity(v, tls.get_ref().1.peer_certificates(), now())
                        .map(|id| id.shape.clone())
                        .unwrap_or_else(|r| format!("refused: {r}"))
                });
                out.push(Ok(id));
            }
            Err(e) => out.push(Err(e.to_string())),
        }
    }
    out
}

async fn ping(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(config)
        .connect(ServerName::try_from("worker.test").unwrap(), tcp)
        .await?;
    tls.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"pong");
    Ok(tls)
}

fn server_config(
    cert: &Issued,
    client_verifier: Option<Arc<RatlsVerifier>>,
) -> rustls::ServerConfig {
    let ck = ratls::rustls_certified_key(&cert.key, cert.der.clone()).unwrap();
    tls::server_config(Arc::new(SingleCertAndKey::from(ck)), client_verifier).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_accepts_a_simulated_worker_and_caches_the_verification() {
    let fx = Fixture::start();
    let cert = issue(&fx, "simulated");
    let verifier = Arc::new(verifier(&fx, true));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, server_config(&cert, None), 3, None));
    let client = Arc::new(tls::client_config(verifier.clone()).unwrap());
    for _ in 0..3 {
        let conn = ping(addr, client.clone()).await.unwrap();
        let (_, state) = conn.get_ref();
        assert_eq!(
            state.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let id = tls::peer_identity(&verifier, state.peer_certificates(), now()).unwrap();
        assert_eq!(id.release, "ratls-test-1");
        assert_eq!(id.mode, "simulated");
    }
    assert!(server.await.unwrap().iter().all(Result::is_ok));
    // One quote verification for three connections. Every connection presented and checked
    // its certificate (no session resumption): 2 handshake cache hits + 3 identity look-ups.
    assert_eq!(verifier.stats().full_verifications, 1);
    assert_eq!(verifier.stats().cache_hits, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_client_refuses_a_simulated_worker_with_the_reason() {
    let fx = Fixture::start();
    let cert = issue(&fx, "production");
    let verifier = Arc::new(verifier(&fx, false));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(listener, server_config(&cert, None), 1, None));
    let client = Arc::new(tls::client_config(verifier).unwrap());
    let err = ping(addr, client).await.unwrap_err();
    let refusal = tls::refusal_of(&err).expect("the refusal is carried in the error");
    assert!(matches!(refusal, Refusal::UntrustedRoot(_)), "{refusal}");
    assert!(server.await.unwrap()[0].is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_authentication_checks_the_client_certificate() {
    let fx = Fixture::start();
    let server_cert = issue(&fx, "simulated");
    // The client is another worker of the same release: same TD image, its own key and quote.
    let fx2 = Fixture::start();
    let client_cert = issue(&fx2, "simulated");
    let v_server = Arc::new(verifier(&fx, true));
    let v_client = Arc::new(verifier(&fx, true));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve(
        listener,
        server_config(&server_cert, Some(v_server.clone())),
        2,
        Some(v_server.clone()),
    ));
    let ck = ratls::rustls_certified_key(&client_cert.key, client_cert.der.clone()).unwrap();
    let with_cert = Arc::new(
        tls::client_config_with_cert(v_client.clone(), Arc::new(SingleCertAndKey::from(ck)))
            .unwrap(),
    );
    ping(addr, with_cert).await.unwrap();
    // Without a client certificate the server refuses the handshake.
    let without = Arc::new(tls::client_config(v_client).unwrap());
    let second = ping(addr, without).await;
    let results = server.await.unwrap();
    assert_eq!(results[0].as_ref().unwrap().as_deref(), Some("sim-1cpu"));
    assert!(results[1].is_err(), "{results:?}");
    assert!(second.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_signature_must_come_from_the_certified_key() {
    // A server that presents a genuine certificate but holds another key cannot finish the
    // handshake: the CertificateVerify signature is checked against the certificate's key.
    let fx = Fixture::start();
    let cert = issue(&fx, "simulated");
    let other = ratls::new_key().unwrap();
    let verifier = Arc::new(verifier(&fx, true));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let provider = rustls::crypto::ring::default_provider();
    let wrong_key = provider
        .key_provider
        .load_private_key(rustls::pki_types::PrivateKeyDer::Pkcs8(
            other.serialize_der().into(),
        ))
        .unwrap();
    let ck = rustls::sign::CertifiedKey::new(vec![cert.der.clone().into()], wrong_key);
    let config = tls::server_config(Arc::new(SingleCertAndKey::from(ck)), None).unwrap();
    let server = tokio::spawn(serve(listener, config, 1, None));
    let client = Arc::new(tls::client_config(verifier).unwrap());
    let err = ping(addr, client).await.unwrap_err();
    assert!(
        tls::refusal_of(&err).is_none(),
        "certificate itself is fine: {err}"
    );
    assert!(
        err.to_string().to_lowercase().contains("signature"),
        "{err}"
    );
    let _ = server.await;
}

#[test]
fn no_peer_certificate_has_no_identity() {
    let fx = Fixture::start();
    let v = verifier(&fx, true);
    assert!(matches!(
        tls::peer_identity(&v, None, now()),
        Err(Refusal::NoPeerCertificate)
    ));
    assert!(matches!(
        tls::peer_identity(&v, Some(&[]), now()),
        Err(Refusal::NoPeerCertificate)
    ));
}
