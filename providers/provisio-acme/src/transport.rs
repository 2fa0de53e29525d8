//! instant-acme's HTTP client trait over the SDK's client, so requests to
//! the authority keep the call's deadline and land in the redacted job log.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use provisio_sdk::http::HttpClient as SdkClient;

pub(crate) struct Recorded(SdkClient);

impl Recorded {
    pub(crate) fn new(client: SdkClient) -> Self {
        Recorded(client)
    }
}

impl HttpClient for Recorded {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let mut builder = client.request(parts.method, &parts.uri.to_string()).headers(parts.headers);
            if !body.is_empty() {
                builder = builder.body(body.to_vec());
            }
            // The SDK's classification (transient, outcome_unknown) rides
            // through instant-acme and is taken back out by `acme_error`.
            let response = client.send(builder).await.map_err(|err| instant_acme::Error::Other(Box::new(err)))?;
            let mut head = http::Response::builder().status(response.status);
            if let Some(headers) = head.headers_mut() {
                *headers = response.headers.clone();
            }
            let (parts, ()) = head.body(()).map_err(instant_acme::Error::Http)?.into_parts();
            Ok(BytesResponse { parts, body: Box::new(Bytes::from(response.body)) })
        })
    }
}
