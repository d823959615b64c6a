//! `TesseraClient`: the native API from the client side, signing every call
//! (see [`crate::auth`]). Used by the `tessera` CLI, the sync client and tests.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tessera_proto::api::tessera_client::TesseraClient as Raw;
use tessera_proto::api::{self as pb, get_response, put_request};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::auth;
use crate::datapath::now_ms;

/// Adds the access key, date and signature of each call.
#[derive(Clone)]
pub struct Signer {
    access_key: String,
    secret: String,
    /// Another user whose shared files the calls act on.
    owner: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for Signer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let method = req
            .extensions()
            .get::<tonic::GrpcMethod>()
            .map(|m| format!("/{}/{}", m.service(), m.method()))
            .unwrap_or_default();
        for (k, v) in auth::client_headers(&self.access_key, &self.secret, &method, now_ms()) {
            let v = MetadataValue::try_from(v).map_err(|_| Status::invalid_argument("credentials are not ASCII"))?;
            req.metadata_mut().insert(k, v);
        }
        if let Some(owner) = &self.owner {
            req.metadata_mut().insert(crate::sharing::OWNER, owner.clone());
        }
        Ok(req)
    }
}

#[derive(Clone)]
pub struct TesseraClient {
    raw: Raw<InterceptedService<Channel, Signer>>,
}

impl TesseraClient {
    pub async fn connect(endpoint: &str, access_key: &str, secret: &str) -> Result<Self, tonic::transport::Error> {
        Self::connect_for(endpoint, access_key, secret, None).await
    }

    /// As [`connect`](Self::connect); calls act on `owner`'s files (those shared with
    /// the caller) when set. `owner` must be ASCII (user ids are); callers check it,
    /// since a dropped owner would make calls act on the caller's own files.
    pub async fn connect_for(
        endpoint: &str,
        access_key: &str,
        secret: &str,
        owner: Option<&str>,
    ) -> Result<Self, tonic::transport::Error> {
        let uri = if endpoint.starts_with("http") { endpoint.to_owned() } else { format!("http://{endpoint}") };
        let channel = Endpoint::from_shared(uri)?
            .tcp_nodelay(true)
            .initial_stream_window_size(8 << 20)
            .initial_connection_window_size(32 << 20)
            .connect()
            .await?;
        let owner = owner.and_then(|o| MetadataValue::try_from(o).ok());
        let signer = Signer { access_key: access_key.to_owned(), secret: secret.to_owned(), owner };
        Ok(Self {
            raw: Raw::with_interceptor(channel, signer)
                .max_decoding_message_size(16 << 20)
                .max_encoding_message_size(16 << 20),
        })
    }

    pub fn raw(&self) -> Raw<InterceptedService<Channel, Signer>> {
        self.raw.clone()
    }

    /// Uploads `body` (pieces of at most a few MiB each) as `header.path`.
    pub async fn put<S>(&self, header: pb::PutHeader, body: S) -> Result<pb::PutResponse, Status>
    where
        S: Stream<Item = Bytes> + Send + 'static,
    {
        let first =
            futures::stream::once(async move { pb::PutRequest { part: Some(put_request::Part::Header(header)) } });
        let data = body.map(|d| pb::PutRequest { part: Some(put_request::Part::Data(d)) });
        Ok(self.raw.clone().put(first.chain(data)).await?.into_inner())
    }

    /// Starts a download: the file's entry, then its bytes as a stream.
    pub async fn get(
        &self,
        req: pb::GetRequest,
    ) -> Result<(pb::Entry, impl Stream<Item = Result<Bytes, Status>> + use<>), Status> {
        let mut stream = self.raw.clone().get(req).await?.into_inner();
        let first = stream.message().await?.ok_or_else(|| Status::data_loss("empty download"))?;
        let Some(get_response::Part::Entry(entry)) = first.part else {
            return Err(Status::data_loss("download did not start with the file's entry"));
        };
        let data = stream.filter_map(|m| async move {
            match m {
                Ok(pb::GetResponse { part: Some(get_response::Part::Data(d)) }) => Some(Ok(d)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        });
        Ok((entry, data))
    }
}
