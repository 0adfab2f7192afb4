//! What one client may cost the xds-server (docs/SECURITY.md, "what one
//! client may cost"), against the real binary: a peer that stops answering
//! HTTP/2 PINGs is closed, streams beyond the per-connection maximum are
//! refused while the others keep working, an oversized request ends only its
//! own stream, and a node flapping between ACK and NACK costs a bounded
//! number of `status/` writes in etcd.
//!
//! The HTTP/2 tests speak raw frames ([`RawH2`]): a real client library
//! answers PINGs by itself and never opens more streams than the server
//! allows, which is exactly what a hostile or broken client does not do.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bootes_proto::envoy::core::Node;
use bootes_proto::envoy::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use bootes_proto::envoy::discovery::{DiscoveryRequest, DiscoveryResponse};
use bootes_proto::envoy::RpcStatus;
use bootes_proto::ResourceType;
use bootes_tests::harness::{
    cluster_eds, endpoint, eventually, pod, Controller, Etcd, ManifestDir, XdsServer,
    DEFAULT_TIMEOUT,
};
use prost::Message;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

const NODE: &str = "envoy-0.demo";
const ADS_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

fn objects(cluster: &str) -> Vec<Value> {
    vec![
        pod("demo", "envoy-0", &[]),
        cluster_eds("demo", cluster, cluster, &[]),
        endpoint(
            "demo",
            &format!("{cluster}-endpoints"),
            cluster,
            &["127.0.0.1:9".parse().unwrap()],
            &[],
        ),
    ]
}

struct System {
    etcd: Etcd,
    manifests: ManifestDir,
    _controller: Controller,
    xds: XdsServer,
}

async fn system(xds_args: &[&str]) -> Result<System> {
    let etcd = Etcd::start().await?;
    let manifests = ManifestDir::new()?;
    manifests.write_docs("objects.yaml", &objects("cluster-a"))?;
    let controller = Controller::start(&etcd, manifests.path()).await?;
    let xds = XdsServer::start_with_args(&etcd, "limits", xds_args).await?;
    Ok(System {
        etcd,
        manifests,
        _controller: controller,
        xds,
    })
}

fn cds(node: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node {
            id: node.into(),
            ..Default::default()
        }),
        type_url: ResourceType::Cluster.type_url().into(),
        ..Default::default()
    }
}

/// An ADS stream on `channel` that sent `first`.
async fn ads(
    channel: Channel,
    first: DiscoveryRequest,
) -> Result<(
    mpsc::Sender<DiscoveryRequest>,
    tonic::Streaming<DiscoveryResponse>,
)> {
    let (tx, rx) = mpsc::channel(1024);
    tx.send(first).await?;
    let responses = AggregatedDiscoveryServiceClient::new(channel)
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((tx, responses))
}

/// ACKs `response`: a SotW stream gets its next version only after that.
async fn ack(tx: &mpsc::Sender<DiscoveryRequest>, response: &DiscoveryResponse) -> Result<()> {
    let mut req = cds(NODE);
    req.version_info = response.version_info.clone();
    req.response_nonce = response.nonce.clone();
    Ok(tx.send(req).await?)
}

/// Reads (and ACKs) responses until one carries `cluster`.
async fn until_cluster(
    tx: &mpsc::Sender<DiscoveryRequest>,
    responses: &mut tonic::Streaming<DiscoveryResponse>,
    cluster: &str,
) -> Result<()> {
    loop {
        let r = next(responses).await?;
        ack(tx, &r).await?;
        if r.resources
            .iter()
            .any(|r| String::from_utf8_lossy(&r.value).contains(cluster))
        {
            return Ok(());
        }
    }
}

async fn next(responses: &mut tonic::Streaming<DiscoveryResponse>) -> Result<DiscoveryResponse> {
    tokio::time::timeout(DEFAULT_TIMEOUT, responses.message())
        .await
        .context("no response in time")??
        .context("the stream ended")
}

// --- Raw HTTP/2 ------------------------------------------------------------

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const REFUSED_STREAM: u32 = 0x7;

#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

/// An HTTP/2 client that writes and reads frames itself, so it can do what
/// a well-behaved client library never does.
struct RawH2 {
    tcp: TcpStream,
}

impl RawH2 {
    /// Connects and sends the client preface and an empty SETTINGS frame.
    async fn connect(addr: SocketAddr) -> Result<Self> {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await?;
        let mut raw = Self { tcp };
        raw.send(SETTINGS, 0, 0, &[]).await?;
        Ok(raw)
    }

    async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len())?;
        let mut frame = len.to_be_bytes()[1..].to_vec();
        frame.extend([kind, flags]);
        frame.extend(stream.to_be_bytes());
        frame.extend(payload);
        self.tcp.write_all(&frame).await?;
        Ok(())
    }

    /// The next frame, or `None` once the server closed the connection.
    async fn read(&mut self) -> Result<Option<Frame>> {
        let read = async {
            let mut head = [0u8; 9];
            match self.tcp.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e.into()),
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            self.tcp.read_exact(&mut payload).await?;
            Ok(Some(Frame {
                kind: head[3],
                flags: head[4],
                stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
                payload,
            }))
        };
        tokio::time::timeout(DEFAULT_TIMEOUT, read)
            .await
            .context("no frame from the server in time")?
    }

    /// Reads frames up to the server's SETTINGS, acknowledges it, and returns
    /// its parameters.
    async fn settings(&mut self) -> Result<Vec<(u16, u32)>> {
        loop {
            let frame = self.read().await?.context("closed before SETTINGS")?;
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                self.send(SETTINGS, ACK, 0, &[]).await?;
                return Ok(frame
                    .payload
                    .chunks_exact(6)
                    .map(|p| {
                        (
                            u16::from_be_bytes([p[0], p[1]]),
                            u32::from_be_bytes([p[2], p[3], p[4], p[5]]),
                        )
                    })
                    .collect());
            }
        }
    }

    /// Opens stream `id` as an ADS call and sends `request` on it, leaving
    /// the stream open.
    async fn open_ads(&mut self, id: u32, request: &DiscoveryRequest) -> Result<()> {
        let mut block = Vec::new();
        for (name, value) in [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", ADS_PATH),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ] {
            // HPACK literal header field without indexing, new name (RFC 7541 §6.2.2).
            block.push(0);
            hpack_string(&mut block, name);
            hpack_string(&mut block, value);
        }
        self.send(HEADERS, END_HEADERS, id, &block).await?;
        self.send(DATA, 0, id, &grpc_message(request)).await
    }
}

fn hpack_string(out: &mut Vec<u8>, s: &str) {
    // 7-bit prefix integer, no Huffman coding (RFC 7541 §5.1, §5.2).
    let mut len = s.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push((len % 128) as u8 | 0x80);
            len /= 128;
        }
        out.push(len as u8);
    }
    out.extend(s.as_bytes());
}

/// A gRPC length-prefixed message.
fn grpc_message(m: &impl Message) -> Vec<u8> {
    let body = m.encode_to_vec();
    let mut out = vec![0];
    out.extend(u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend(body);
    out
}

// --- Tests -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_pings_is_closed_and_live_clients_stay() -> Result<()> {
    let sys = system(&[
        "--http2-keepalive-interval",
        "0.5",
        // Generous for the live client on a loaded machine.
        "--http2-keepalive-timeout",
        "2",
    ])
    .await?;
    // A live client (tonic answers PINGs by itself) on its own connection.
    let live = Endpoint::from_shared(format!("http://{}", sys.xds.addr()))?
        .connect()
        .await?;
    let (live_tx, mut live_responses) = ads(live, cds(NODE)).await?;
    until_cluster(&live_tx, &mut live_responses, "cluster-a").await?;

    // A peer that opens a stream, gets its config and then goes silent: it
    // reads frames but answers nothing, PINGs included.
    let mut dead = RawH2::connect(sys.xds.addr()).await?;
    dead.settings().await?;
    dead.open_ads(1, &cds(NODE)).await?;
    let (mut served, mut pinged) = (false, false);
    let end = loop {
        match dead.read().await? {
            None => break "closed",
            Some(f) if f.kind == GOAWAY => break "GOAWAY",
            Some(f) if f.kind == DATA && f.stream == 1 => served = true,
            Some(f) if f.kind == PING && f.flags & ACK == 0 => pinged = true,
            Some(_) => {}
        }
    };
    ensure!(served, "the silent peer was never served");
    ensure!(pinged, "the connection ended ({end}) without a PING first");

    // The live client's stream outlived the dead one and still gets changes.
    sys.manifests
        .write_docs("objects.yaml", &objects("cluster-b"))?;
    until_cluster(&live_tx, &mut live_responses, "cluster-b").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_per_connection_maximum_are_refused_the_others_keep_working(
) -> Result<()> {
    let sys = system(&["--max-streams-per-connection", "2"]).await?;
    let mut conn = RawH2::connect(sys.xds.addr()).await?;
    let settings = conn.settings().await?;
    ensure!(
        settings.contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 2)),
        "SETTINGS {settings:?}"
    );
    // Three streams at once on one connection, ignoring the advertised
    // maximum: the third is refused, the first two are served.
    for id in [1, 3, 5] {
        conn.open_ads(id, &cds(NODE)).await?;
    }
    let mut served = std::collections::BTreeSet::new();
    let mut refused = Vec::new();
    while !(served.contains(&1) && served.contains(&3) && !refused.is_empty()) {
        let f = conn.read().await?.context("connection closed")?;
        match f.kind {
            DATA => {
                served.insert(f.stream);
            }
            RST_STREAM => refused.push((f.stream, u32::from_be_bytes(f.payload[..4].try_into()?))),
            GOAWAY => bail!("GOAWAY: the whole connection was dropped"),
            _ => {}
        }
    }
    // (Our DATA frame that followed stream 5's HEADERS may earn it a second
    // reset, STREAM_CLOSED.)
    ensure!(
        refused.first() == Some(&(5, REFUSED_STREAM)) && refused.iter().all(|(s, _)| *s == 5),
        "resets {refused:?}"
    );
    ensure!(!served.contains(&5), "stream 5 was served");

    // Ending stream 1 frees its slot: a new stream is served.
    conn.send(DATA, END_STREAM, 1, &[]).await?;
    loop {
        let f = conn.read().await?.context("connection closed")?;
        if f.kind == HEADERS && f.stream == 1 && f.flags & END_STREAM != 0 {
            break; // stream 1's trailers: closed on both sides
        }
    }
    conn.open_ads(7, &cds(NODE)).await?;
    loop {
        let f = conn.read().await?.context("connection closed")?;
        match (f.kind, f.stream) {
            (DATA, 7) => break,
            (RST_STREAM, 7) => bail!("stream 7 refused although a slot was free"),
            _ => {}
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_ends_only_its_own_stream() -> Result<()> {
    let limit = 64 * 1024;
    let sys = system(&["--max-request-bytes", &limit.to_string()]).await?;
    // One connection, shared by both streams.
    let channel = Endpoint::from_shared(format!("http://{}", sys.xds.addr()))?
        .connect()
        .await?;
    let (tx, mut good) = ads(channel.clone(), cds(NODE)).await?;
    until_cluster(&tx, &mut good, "cluster-a").await?;

    let mut big = cds(NODE);
    big.resource_names = vec!["x".repeat(limit + 1)];
    let (_big_tx, mut bad) = ads(channel.clone(), big).await?;
    let status = match tokio::time::timeout(DEFAULT_TIMEOUT, bad.message()).await? {
        Ok(r) => bail!("the oversized request was answered: {r:?}"),
        Err(status) => status,
    };
    ensure!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    ensure!(
        status.message().contains("too large") && status.message().contains(&limit.to_string()),
        "the status does not say what was too large: {status:?}"
    );

    // The other stream on the same connection keeps getting changes, and
    // new streams are served.
    sys.manifests
        .write_docs("objects.yaml", &objects("cluster-b"))?;
    until_cluster(&tx, &mut good, "cluster-b").await?;
    let (_tx2, mut again) = ads(channel, cds(NODE)).await?;
    next(&mut again).await?;
    Ok(())
}

/// The node's `status/` record: (version of the key, decoded value).
async fn status_record(etcd: &Etcd) -> Result<(i64, bootes_proto::store::NodeStatus)> {
    let mut records = etcd.node_status(NODE).await?;
    match records.len() {
        1 => Ok(records.remove(0)),
        n => bail!("{n} status records of {NODE}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flapping_between_ack_and_nack_costs_a_bounded_number_of_status_writes(
) -> Result<()> {
    let interval = Duration::from_secs(1);
    let sys = system(&[
        "--status-write-interval",
        &interval.as_secs_f64().to_string(),
    ])
    .await?;
    let channel = Endpoint::from_shared(format!("http://{}", sys.xds.addr()))?
        .connect()
        .await?;
    // A first stream, so the node keeps a record to count writes on.
    let (holder, mut holder_responses) = ads(channel.clone(), cds(NODE)).await?;
    next(&mut holder_responses).await?;
    let (before, _) = eventually("the stream is recorded", || status_record(&sys.etcd)).await?;

    // 150 times, one every 20 ms: a second stream of the node opens, gets
    // its config, ACKs it (or NACKs it, with a new detail each time), and
    // closes. Each step changes what the node's record says.
    let flaps = 150;
    let started = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    for i in 0..flaps {
        pace.tick().await;
        let (tx, mut responses) = ads(channel.clone(), cds(NODE)).await?;
        let r = next(&mut responses).await?;
        let mut reply = cds(NODE);
        reply.response_nonce = r.nonce.clone();
        if i % 2 == 0 {
            reply.version_info = r.version_info.clone();
        } else {
            reply.error_detail = Some(RpcStatus {
                code: 3,
                message: format!("flap {i}"),
                ..Default::default()
            });
        }
        tx.send(reply).await?;
    }
    // The last one stays, NACKing.
    let (tx, mut responses) = ads(channel, cds(NODE)).await?;
    let r = next(&mut responses).await?;
    let mut nack = cds(NODE);
    nack.response_nonce = r.nonce.clone();
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "the last word".into(),
        ..Default::default()
    });
    tx.send(nack).await?;
    drop((holder, holder_responses));
    // Coalesced, not lost: the last state lands without any later event.
    let after = eventually("the last NACK is recorded", || async {
        let (version, status) = status_record(&sys.etcd).await?;
        let nacks: Vec<&str> = status
            .types
            .iter()
            .map(|t| t.nack_detail.as_str())
            .collect();
        ensure!(nacks == ["the last word"], "{status:?}");
        Ok(version)
    })
    .await?;
    let elapsed = started.elapsed();
    let writes = after - before;
    // One round per interval, plus the round already due when the flapping
    // started and one for rounding.
    let bound = (elapsed.as_secs_f64() / interval.as_secs_f64()).ceil() as i64 + 2;
    eprintln!(
        "{} streams opened and answered in {} ms: {writes} status writes (bound {bound})",
        flaps + 1,
        elapsed.as_millis()
    );
    ensure!(writes >= 1, "nothing written");
    ensure!(
        writes <= bound,
        "{writes} status writes for {} flapping streams in {:?} (at most {bound} expected)",
        flaps + 1,
        elapsed
    );
    Ok(())
}

/// The rate limit delays writes that follow a write, never the first one:
/// with an interval of an hour, a node that connects to a freshly started
/// xds-server is still recorded at once (`inspect nodes` right after
/// Envoy connected showed it `disconnected`, for up to an interval).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_status_record_is_written_when_the_stream_opens_not_an_interval_later(
) -> Result<()> {
    let sys = system(&["--status-write-interval", "3600"]).await?;
    let channel = Endpoint::from_shared(format!("http://{}", sys.xds.addr()))?
        .connect()
        .await?;
    let (_tx, mut responses) = ads(channel, cds(NODE)).await?;
    next(&mut responses).await?;
    eventually("the stream is recorded", || status_record(&sys.etcd)).await?;
    Ok(())
}
