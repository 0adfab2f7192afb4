//! Decodes the requests of the xDS RPCs with prost. Responses are not
//! encoded here: they are sent as the shared bytes of each response
//! ([`super::body`]).

use std::marker::PhantomData;

use tonic::codec::{DecodeBuf, Decoder};
use tonic::Status;

#[derive(Debug)]
pub struct RequestDecoder<Req>(PhantomData<fn() -> Req>);

impl<Req> Default for RequestDecoder<Req> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Req: prost::Message + Default> Decoder for RequestDecoder<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Req>, Status> {
        Req::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("undecodable request: {e}")))
    }
}
