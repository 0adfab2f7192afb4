use std::path::Path;

use bootes_tests::harness::{San, TestCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt;

use super::*;
use bootes_tls::{ReloadingTls, TlsFiles};

const LONG: Duration = Duration::from_secs(60);
const DEADLINE: Duration = Duration::from_secs(20);

async fn serve(
    tls: Option<Arc<ReloadingTls>>,
    limits: Limits,
) -> (SocketAddr, ReceiverStream<io::Result<Conn>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, incoming(listener, tls, limits, |_| {}).unwrap())
}

/// True once the server closed the connection.
async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(DEADLINE, tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_connection_that_never_speaks_http2_is_closed_after_the_handshake_timeout() {
    let limits = Limits {
        handshake_timeout: Duration::from_millis(200),
        max_connections: 10,
    };
    let (addr, _conns) = serve(None, limits).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_server(&mut idle).await);

    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut garbage).await, "HTTP/1 is refused");
}

#[tokio::test]
async fn connections_beyond_the_maximum_are_refused_and_slots_come_back() {
    let limits = Limits {
        handshake_timeout: LONG,
        max_connections: 2,
    };
    let (addr, mut conns) = serve(None, limits).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(PREFACE).await.unwrap();
    let served = conns.next().await.unwrap().unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_by_server(&mut third).await,
        "third connection refused"
    );

    drop(served);
    assert!(closed_by_server(&mut first).await);
    // The slot is free again: a new client gets through.
    let mut again = TcpStream::connect(addr).await.unwrap();
    again.write_all(PREFACE).await.unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        // The refused third connection may still hold its slot for a
        // moment; a client whose connection was refused retries.
        match tokio::time::timeout(Duration::from_millis(200), conns.next()).await {
            Ok(conn) => break assert!(conn.unwrap().is_ok()),
            Err(_) => {
                assert!(tokio::time::Instant::now() < deadline, "no slot came back");
                again = TcpStream::connect(addr).await.unwrap();
                let _ = again.write_all(PREFACE).await;
            }
        }
    }
}

#[tokio::test]
async fn a_storm_is_accepted_while_the_serving_runtime_is_busy() {
    // A backlog of 128 and a runtime that cannot run anything while 500
    // clients connect (this test's own thread, blocked): before accepting
    // had a thread of its own, the queue filled, later SYNs were dropped
    // and those clients timed out (or were reset, with SYN cookies).
    let listener = bind("127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        handshake_timeout: LONG,
        max_connections: 1000,
    };
    let mut conns = incoming(listener, None, limits, |_| {}).unwrap();
    let clients = std::thread::spawn(move || {
        (0..500)
            .map(|_| {
                let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
                std::io::Write::write_all(&mut c, PREFACE)?;
                Ok(c)
            })
            .collect::<Vec<io::Result<std::net::TcpStream>>>()
    })
    .join()
    .unwrap();
    let failed: Vec<_> = clients.iter().filter_map(|c| c.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} connects failed: {failed:?}",
        failed.len()
    );
    for _ in 0..500 {
        let conn = tokio::time::timeout(DEADLINE, conns.next()).await;
        assert!(conn.unwrap().unwrap().is_ok());
    }
}

#[test]
fn every_refusal_is_counted_and_each_reason_logged_at_a_bounded_rate() {
    let counted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = counted.clone();
    let refusals = Refusals::new(move |_| {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let logged = (0..100)
        .filter(|_| refusals.refused(Refused::PeerClosed, None, "reset"))
        .count();
    assert_eq!(logged, 1, "one line per reason per interval");
    assert!(
        refusals.refused(Refused::TooManyConnections, None, "full"),
        "another reason has its own budget"
    );
    assert_eq!(counted.load(std::sync::atomic::Ordering::Relaxed), 101);
}

#[tokio::test]
async fn the_preface_is_replayed_to_the_server() {
    let limits = Limits {
        handshake_timeout: LONG,
        max_connections: 10,
    };
    let (addr, mut conns) = serve(None, limits).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(PREFACE).await.unwrap();
    client.write_all(b"after").await.unwrap();
    let mut conn = conns.next().await.unwrap().unwrap();
    let mut got = vec![0u8; PREFACE.len() + 5];
    conn.read_exact(&mut got).await.unwrap();
    assert_eq!(&got[..PREFACE.len()], PREFACE);
    assert_eq!(&got[PREFACE.len()..], b"after");
    assert_eq!(
        tonic::transport::server::Connected::connect_info(&conn).remote_addr,
        Some(client.local_addr().unwrap())
    );
}

struct Pki {
    _dir: tempfile::TempDir,
    ca: TestCa,
    files: TlsFiles,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("bootes test CA");
    let server = ca.issue_localhost().write(dir.path(), "server");
    let client_ca = ca.write(dir.path(), "ca.crt");
    Pki {
        files: TlsFiles {
            cert: server.cert,
            key: server.key,
            client_ca: Some(client_ca),
        },
        ca,
        _dir: dir,
    }
}

fn client_config(
    trusted_ca_pem: &str,
    client: Option<&bootes_tests::harness::Issued>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(trusted_ca_pem.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(c) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(PREFACE).await?;
    tls.flush().await?;
    Ok(tls)
}

fn load(files: &TlsFiles) -> Arc<ReloadingTls> {
    ReloadingTls::load(files.clone(), crate::tls::ALPN).unwrap()
}

#[tokio::test]
async fn mutual_tls_hands_over_the_client_certificate_names() {
    let pki = pki();
    let limits = Limits {
        handshake_timeout: LONG,
        max_connections: 10,
    };
    let (addr, mut conns) = serve(Some(load(&pki.files)), limits).await;
    let client = pki.ca.issue(
        "edge",
        &[
            San::Uri("spiffe://cluster.local/ns/shop/sa/edge"),
            San::Dns("edge-0.shop"),
        ],
    );
    let _tls = tls_connect(addr, client_config(&pki.ca.pem, Some(&client)))
        .await
        .unwrap();
    let conn = conns.next().await.unwrap().unwrap();
    let peer = conn.info.peer.clone().expect("peer identity");
    assert_eq!(peer.dns, ["edge-0.shop"]);
    assert_eq!(
        peer.spiffe[0].to_string(),
        "spiffe://cluster.local/ns/shop/sa/edge"
    );
}

#[tokio::test]
async fn without_a_client_certificate_or_with_one_from_another_ca_the_handshake_fails() {
    let pki = pki();
    let limits = Limits {
        handshake_timeout: LONG,
        max_connections: 10,
    };
    let (addr, mut conns) = serve(Some(load(&pki.files)), limits).await;

    let refused = |r: io::Result<tokio_rustls::client::TlsStream<TcpStream>>| async move {
        // TLS 1.3: the client may finish before the server's verdict, which
        // then arrives as an alert on the first read.
        match r {
            Err(_) => true,
            Ok(mut s) => {
                let mut b = [0u8; 1];
                matches!(s.read(&mut b).await, Ok(0) | Err(_))
            }
        }
    };
    assert!(refused(tls_connect(addr, client_config(&pki.ca.pem, None)).await).await);
    let stranger = TestCa::new("another CA").issue("edge", &[San::Dns("edge-0.shop")]);
    assert!(refused(tls_connect(addr, client_config(&pki.ca.pem, Some(&stranger))).await).await);

    // Nothing reached the server; a good client still does.
    let good = pki.ca.issue("edge", &[San::Dns("edge-0.shop")]);
    let _ok = tls_connect(addr, client_config(&pki.ca.pem, Some(&good)))
        .await
        .unwrap();
    let conn = conns.next().await.unwrap().unwrap();
    assert_eq!(conn.info.peer.unwrap().dns, ["edge-0.shop"]);
}

#[tokio::test]
async fn rotated_files_serve_new_connections_and_keep_established_ones() {
    let pki = pki();
    let tls = load(&pki.files);
    let limits = Limits {
        handshake_timeout: LONG,
        max_connections: 10,
    };
    let (addr, mut conns) = serve(Some(tls.clone()), limits).await;
    let client = pki.ca.issue("edge", &[San::Dns("edge-0.shop")]);
    let mut before = tls_connect(addr, client_config(&pki.ca.pem, Some(&client)))
        .await
        .unwrap();
    let mut before_conn = conns.next().await.unwrap().unwrap();
    assert!(!tls.reload().unwrap(), "unchanged files: no reload");

    // Rotate to a new CA: server certificate and client CA bundle.
    let new_ca = TestCa::new("rotated CA");
    let server = new_ca.issue_localhost();
    server.write_to(&crate_files(&pki.files));
    std::fs::write(pki.files.client_ca.as_ref().unwrap(), &new_ca.pem).unwrap();
    assert!(tls.reload().unwrap());

    let new_client = new_ca.issue("edge", &[San::Dns("edge-0.shop")]);
    let _after = tls_connect(addr, client_config(&new_ca.pem, Some(&new_client)))
        .await
        .unwrap();
    assert!(conns.next().await.unwrap().is_ok());
    let old_client_refused = tls_connect(addr, client_config(&pki.ca.pem, Some(&client))).await;
    assert!(
        old_client_refused.is_err(),
        "the old server certificate is gone"
    );

    // The connection made before the rotation still carries data.
    before.write_all(b"still here").await.unwrap();
    before.flush().await.unwrap();
    let mut got = vec![0u8; PREFACE.len() + 10];
    before_conn.read_exact(&mut got).await.unwrap();
    assert_eq!(&got[PREFACE.len()..], b"still here");
}

#[test]
fn a_half_rotated_key_pair_keeps_the_previous_configuration() {
    let pki = pki();
    let tls = ReloadingTls::load(pki.files.clone(), crate::tls::ALPN).unwrap();
    let before = tls.config();
    // New certificate, old key: a rotation caught half-way.
    let other = pki.ca.issue_localhost();
    std::fs::write(&pki.files.cert, other.cert_pem).unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains(&pki.files.key.display().to_string()), "{err}");
    assert!(Arc::ptr_eq(&before, &tls.config()));
    // Garbage in the CA bundle names the file.
    let err = {
        std::fs::write(pki.files.client_ca.as_ref().unwrap(), "not PEM").unwrap();
        tls.reload().unwrap_err().to_string()
    };
    assert!(err.contains("ca.crt"), "{err}");
    assert!(ReloadingTls::load(
        TlsFiles {
            cert: Path::new("/nonexistent/cert.pem").into(),
            ..pki.files.clone()
        },
        crate::tls::ALPN
    )
    .is_err());
}

fn crate_files(files: &TlsFiles) -> bootes_tests::harness::CertFiles {
    bootes_tests::harness::CertFiles {
        cert: files.cert.clone(),
        key: files.key.clone(),
    }
}
