//! The response body of the xDS streaming RPCs, without tonic's encoder.
//!
//! tonic encodes every message into each stream's own buffer, which would
//! copy a response once per stream. Here every stream sends the shared,
//! already framed bytes of an [`Encoded`] response as an HTTP/2 data frame:
//! `Bytes` are reference counted and hyper/h2 queue them as they are, so a
//! push to 10,000 streams holds one copy of the response. The stream ends
//! with gRPC's trailers, as tonic's would (`grpc-status`, and the message of
//! an error).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use tokio::sync::mpsc;
use tonic::Status;

use bootes_xds::response::Encoded;

/// Responses of one stream, then its end: an error, or OK once the sender is
/// dropped.
pub struct SharedBody {
    rx: mpsc::Receiver<Result<Arc<Encoded>, Status>>,
    ended: bool,
}

impl SharedBody {
    pub fn new(rx: mpsc::Receiver<Result<Arc<Encoded>, Status>>) -> Self {
        Self { rx, ended: false }
    }

    fn trailers(&mut self, status: &Status) -> Frame<Bytes> {
        self.ended = true;
        self.rx.close();
        let mut trailers = HeaderMap::new();
        if let Err(e) = status.add_header(&mut trailers) {
            // Only a message that cannot be a header value: keep the code.
            tracing::warn!(error = %e, "gRPC status message not sendable; sending the code only");
            trailers.insert(Status::GRPC_STATUS, HeaderValue::from(status.code() as i32));
        }
        Frame::trailers(trailers)
    }
}

impl http_body::Body for SharedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let frame = match std::task::ready!(self.rx.poll_recv(cx)) {
            // A reference to the shared bytes, not a copy.
            Some(Ok(response)) => Frame::data(response.framed.clone()),
            Some(Err(status)) => self.trailers(&status),
            None => self.trailers(&Status::ok("")),
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// The response headers of a gRPC call answered with `body`.
pub fn response(body: SharedBody) -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

#[cfg(test)]
mod tests {
    use bootes_proto::ResourceType;
    use bootes_xds::response::{ResourceSet, ResponseCache};
    use http_body::Body;

    use super::*;

    fn encoded(cache: &ResponseCache) -> Arc<Encoded> {
        cache.state_of_the_world(ResourceType::Cluster, ResourceSet::new(Vec::new()))
    }

    /// Every frame of a body: data frames, then trailers.
    async fn frames(body: SharedBody) -> (Vec<Bytes>, Option<HeaderMap>) {
        let mut body = std::pin::pin!(body);
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            match frame.unwrap().into_data() {
                Ok(d) => data.push(d),
                Err(f) => trailers = f.into_trailers().ok(),
            }
        }
        assert!(body.is_end_stream());
        (data, trailers)
    }

    fn header(map: &HeaderMap, name: &str) -> String {
        map.get(name).unwrap().to_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn streams_send_the_shared_framed_bytes_then_ok() {
        let cache = ResponseCache::new();
        let response = encoded(&cache);
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(response.clone())).await.unwrap();
        tx.send(Ok(response.clone())).await.unwrap();
        drop(tx);
        let (data, trailers) = frames(SharedBody::new(rx)).await;
        assert_eq!(data.len(), 2);
        for d in &data {
            assert_eq!(d, &response.framed);
            // The same memory: nothing was copied.
            assert_eq!(d.as_ptr(), response.framed.as_ptr());
        }
        assert_eq!(header(&trailers.unwrap(), "grpc-status"), "0");
    }

    #[tokio::test]
    async fn an_error_ends_the_stream_with_its_status() {
        let (tx, rx) = mpsc::channel(4);
        tx.send(Err(Status::unavailable("draining; reconnect")))
            .await
            .unwrap();
        let (data, trailers) = frames(SharedBody::new(rx)).await;
        assert!(data.is_empty());
        let trailers = trailers.unwrap();
        assert_eq!(
            header(&trailers, "grpc-status"),
            (tonic::Code::Unavailable as i32).to_string()
        );
        assert_eq!(header(&trailers, "grpc-message"), "draining;%20reconnect");
    }
}
