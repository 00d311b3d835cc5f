//! RA-TLS cost, measured side by side in one run over loopback TLS 1.3 (ring provider, P-256):
//!
//! (a) a plain rustls handshake with a CA-issued certificate (webpki chain verification);
//! (b) an RA-TLS handshake with full verification: parse, self-signature, DCAP quote
//!     verification with in-memory collateral, key binding, manifest match, RTMR3 replay;
//! (c) an RA-TLS handshake whose certificate verification is cached (later connections to the
//!     same worker);
//! (d) quote verifications per second (`verify_quote` alone) and full certificate
//!     verifications per second.
//!
//! The evidence is a simulated TD's quote through the production provider code; its DCAP chain
//! has the same shape and algorithms as Intel's (P-256 PCK chain, CRLs, TCB info, QE identity).
//! Run with `cargo bench -p cocoon-measure --bench ratls`; without `--bench` (e.g.
//! `cargo test --benches`) it runs a few iterations only.

#[path = "../tests/ratls_support/mod.rs"]
mod ratls_support;

use cocoon_measure::quote::{parse_collateral, verify_quote, QuotePolicy};
use cocoon_measure::ratls::{self, tls, RatlsVerifier};
use ratls_support::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::sign::SingleCertAndKey;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

struct Stats {
    name: &'static str,
    times: Vec<Duration>,
}

impl Stats {
    fn sorted(&self) -> Vec<Duration> {
        let mut t = self.times.clone();
        t.sort();
        t
    }
    fn pct(&self, p: f64) -> Duration {
        let t = self.sorted();
        let i = ((t.len() as f64 - 1.0) * p).round() as usize;
        t.get(i).copied().unwrap_or_default()
    }
    fn mean(&self) -> Duration {
        let n = self.times.len().max(1) as u32;
        self.times.iter().sum::<Duration>() / n
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Serves TLS on a loopback port forever: completes the handshake, echoes one byte.
async fn server(config: rustls::ServerConfig) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    let mut b = [0u8; 1];
                    if s.read_exact(&mut b).await.is_ok() {
                        let _ = s.write_all(&b).await;
                    }
                }
            });
        }
    });
    addr
}

/// Times `n` connections: TCP connect + TLS handshake + one byte round trip.
async fn handshakes(
    name: &'static str,
    addr: std::net::SocketAddr,
    client: Arc<rustls::ClientConfig>,
    n: usize,
) -> Stats {
    let connector = TlsConnector::from(client);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let tcp = TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut s = connector
            .connect(ServerName::try_from("worker.test").unwrap(), tcp)
            .await
            .expect("handshake");
        s.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        times.push(t.elapsed());
    }
    Stats { name, times }
}

fn ca_server_and_client() -> (rustls::ServerConfig, rustls::ClientConfig) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let ca_key = KeyPair::generate_for(alg).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate_for(alg).unwrap();
    let leaf = CertificateParams::new(vec!["worker.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_cert.der().to_vec()))
        .unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Full handshakes only, like the RA-TLS configurations (no session resumption).
    client.resumption = rustls::client::Resumption::disabled();
    (server, client)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n: usize = if full { 400 } else { 5 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let fx = Fixture::start();
    let cert = issue(&fx, "simulated");
    let uncached = {
        let mut c = verifier_config(&fx, manifest(fx.td.config().mr_td, None), true);
        c.cache_capacity = 0;
        Arc::new(RatlsVerifier::new(c).unwrap())
    };
    let cached = Arc::new(verifier(&fx, true));

    let results = rt.block_on(async {
        let (ca_server, ca_client) = ca_server_and_client();
        let plain_addr = server(ca_server).await;
        let ck = ratls::rustls_certified_key(&cert.key, cert.der.clone()).unwrap();
        let ratls_addr =
            server(tls::server_config(Arc::new(SingleCertAndKey::from(ck)), None).unwrap()).await;
        let plain_client = Arc::new(ca_client);
        let full_client = Arc::new(tls::client_config(uncached.clone()).unwrap());
        let cached_client = Arc::new(tls::client_config(cached.clone()).unwrap());
        // Warm up every path (and fill the cache), then interleave rounds so that load from
        // other processes affects all three alike.
        for c in [&plain_client, &full_client, &cached_client] {
            let addr = if Arc::ptr_eq(c, &plain_client) {
                plain_addr
            } else {
                ratls_addr
            };
            handshakes("warm-up", addr, c.clone(), 3).await;
        }
        let mut a = Stats {
            name: "(a) plain TLS 1.3, CA-issued cert",
            times: vec![],
        };
        let mut b = Stats {
            name: "(b) RA-TLS, full verification",
            times: vec![],
        };
        let mut c = Stats {
            name: "(c) RA-TLS, verification cached",
            times: vec![],
        };
        let rounds = 10;
        for _ in 0..rounds {
            let per = n.div_ceil(rounds);
            a.times.extend(
                handshakes("", plain_addr, plain_client.clone(), per)
                    .await
                    .times,
            );
            b.times.extend(
                handshakes("", ratls_addr, full_client.clone(), per)
                    .await
                    .times,
            );
            c.times.extend(
                handshakes("", ratls_addr, cached_client.clone(), per)
                    .await
                    .times,
            );
        }
        vec![a, b, c]
    });
    assert!(
        uncached.stats().full_verifications as usize >= n,
        "{:?}",
        uncached.stats()
    );
    assert_eq!(
        cached.stats().full_verifications,
        1,
        "cache must verify once"
    );

    // (d) quote verifications per second, and full certificate verifications per second.
    let collateral = parse_collateral(&fx.collateral_json()).unwrap();
    let policy = QuotePolicy {
        trust_simulated: true,
        ..QuotePolicy::default()
    };
    let root = fx.td.root_ca_der().to_vec();
    let count: u32 = if full { 1000 } else { 5 };
    let t = Instant::now();
    for _ in 0..count {
        let v = verify_quote(
            &cert.evidence.quote,
            &collateral,
            NOW_UNIX,
            &policy,
            Some(&root),
        );
        std::hint::black_box(v.unwrap());
    }
    let quote_time = t.elapsed();
    let t = Instant::now();
    for _ in 0..count {
        std::hint::black_box(uncached.verify_certificate(&cert.der, now()).unwrap());
    }
    let cert_time = t.elapsed();

    let base = results[0].pct(0.5);
    println!("RA-TLS benchmark: {n} handshakes per case over loopback, TLS 1.3, ring, P-256");
    println!(
        "{:<38} {:>10} {:>10} {:>10} {:>10} {:>16}",
        "case", "median ms", "p90 ms", "mean ms", "min ms", "median - (a) ms"
    );
    for s in &results {
        println!(
            "{:<38} {:>10} {:>10} {:>10} {:>10} {:>16}",
            s.name,
            ms(s.pct(0.5)),
            ms(s.pct(0.9)),
            ms(s.mean()),
            ms(s.pct(0.0)),
            format!(
                "{:+.3}",
                (s.pct(0.5).as_secs_f64() - base.as_secs_f64()) * 1e3
            )
        );
    }
    let per_s = |d: Duration| count as f64 / d.as_secs_f64();
    println!(
        "(d) verify_quote (DCAP chain + policy): {:.0} per second ({} ms each)",
        per_s(quote_time),
        ms(quote_time / count)
    );
    println!(
        "(d) full certificate verification: {:.0} per second ({} ms each)",
        per_s(cert_time),
        ms(cert_time / count)
    );
}
