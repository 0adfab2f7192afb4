//! A gRPC codec whose responses are already encoded: the bytes of one
//! [`Encoded`] response are shared by every stream that sends it.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::BufMut;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use bootes_xds::response::Encoded;

/// Decodes requests of type `Req` with prost, writes [`Encoded`] bytes as they are.
#[derive(Debug)]
pub struct SharedCodec<Req>(PhantomData<fn() -> Req>);

impl<Req> Default for SharedCodec<Req> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Req: prost::Message + Default + Send + 'static> Codec for SharedCodec<Req> {
    type Encode = Arc<Encoded>;
    type Decode = Req;
    type Encoder = SharedEncoder;
    type Decoder = RequestDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        SharedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

#[derive(Debug)]
pub struct SharedEncoder;

impl Encoder for SharedEncoder {
    type Item = Arc<Encoded>;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.bytes);
        Ok(())
    }
}

#[derive(Debug)]
pub struct RequestDecoder<Req>(PhantomData<fn() -> Req>);

impl<Req: prost::Message + Default> Decoder for RequestDecoder<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Req>, Status> {
        Req::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("undecodable request: {e}")))
    }
}
