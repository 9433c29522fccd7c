//! The `test.Echo` gRPC service: its messages, its client and its server,
//! as `tonic-build` (with `tonic-prost`) would generate them from
//!
//! ```proto
//! syntax = "proto3";
//! package test;
//!
//! message EchoRequest {
//!   string message = 1;
//!   uint32 count = 2;     // ServerStream, Abort, Reset: messages to send
//!   uint64 delay_ms = 3;  // Slow: how long to wait before answering
//!   int64 number = 4;     // ClientStream: added up
//! }
//! message EchoReply {
//!   string message = 1;
//!   uint32 index = 2;
//!   int64 sum = 3;
//! }
//!
//! service Echo {
//!   rpc Unary(EchoRequest) returns (EchoReply);
//!   rpc ServerStream(EchoRequest) returns (stream EchoReply);
//!   rpc ClientStream(stream EchoRequest) returns (EchoReply);
//!   rpc Bidi(stream EchoRequest) returns (stream EchoReply);
//!   rpc Abort(EchoRequest) returns (stream EchoReply);
//!   rpc Reset(EchoRequest) returns (stream EchoReply);
//!   rpc Slow(EchoRequest) returns (EchoReply);
//! }
//! ```
//!
//! Written by hand on tonic's own generic API (`tonic::client::Grpc`,
//! `tonic::server::Grpc` and its four `*Service` traits, a
//! `Service<http::Request<_>>` router with `NamedService`), the same calls
//! the generated code makes, so that the tests need neither `protoc` nor a
//! build script: a `build.rs` in the package would run before every build
//! of the gateway, release builds included. Both ends are tonic's: nothing
//! here frames, encodes or routes gRPC itself.
//!
//! The one addition to the generated client is [`EchoClient::unary_at`], a
//! unary call to another path, for requests the gateway has no route for.

use prost::Message;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codegen::{BoxFuture, BoxStream, GrpcMethod, Service, StdError};
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// The fully qualified service name.
pub const SERVICE_NAME: &str = "test.Echo";

#[derive(Clone, PartialEq, Message)]
pub struct EchoRequest {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(uint32, tag = "2")]
    pub count: u32,
    #[prost(uint64, tag = "3")]
    pub delay_ms: u64,
    #[prost(int64, tag = "4")]
    pub number: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct EchoReply {
    #[prost(string, tag = "1")]
    pub message: String,
    #[prost(uint32, tag = "2")]
    pub index: u32,
    #[prost(int64, tag = "3")]
    pub sum: i64,
}

impl EchoRequest {
    pub fn text(message: &str) -> EchoRequest {
        EchoRequest {
            message: message.to_string(),
            ..EchoRequest::default()
        }
    }
}

/// The generated client, on a tonic [`Channel`].
#[derive(Debug, Clone)]
pub struct EchoClient {
    inner: tonic::client::Grpc<Channel>,
}

impl EchoClient {
    pub fn new(channel: Channel) -> EchoClient {
        EchoClient {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    pub async fn unary(
        &mut self,
        request: impl tonic::IntoRequest<EchoRequest>,
    ) -> Result<Response<EchoReply>, Status> {
        let req = self.prepare(request, "Unary").await?;
        let codec = tonic_prost::ProstCodec::default();
        self.inner.unary(req, path("Unary"), codec).await
    }

    pub async fn server_stream(
        &mut self,
        request: impl tonic::IntoRequest<EchoRequest>,
    ) -> Result<Response<Streaming<EchoReply>>, Status> {
        let req = self.prepare(request, "ServerStream").await?;
        let codec = tonic_prost::ProstCodec::default();
        self.inner
            .server_streaming(req, path("ServerStream"), codec)
            .await
    }

    pub async fn client_stream(
        &mut self,
        request: impl tonic::IntoStreamingRequest<Message = EchoRequest>,
    ) -> Result<Response<EchoReply>, Status> {
        let req = self.prepare_streaming(request, "ClientStream").await?;
        let codec = tonic_prost::ProstCodec::default();
        self.inner
            .client_streaming(req, path("ClientStream"), codec)
            .await
    }

    pub async fn bidi(
        &mut self,
        request: impl tonic::IntoStreamingRequest<Message = EchoRequest>,
    ) -> Result<Response<Streaming<EchoReply>>, Status> {
        let req = self.prepare_streaming(request, "Bidi").await?;
        let codec = tonic_prost::ProstCodec::default();
        self.inner.streaming(req, path("Bidi"), codec).await
    }

    pub async fn abort(
        &mut self,
        request: impl tonic::IntoRequest<EchoRequest>,
    ) -> Result<Response<Streaming<EchoReply>>, Status> {
        let req = self.prepare(request, "Abort").await?;
        let codec = tonic_prost::ProstCodec::default();
        self.inner.server_streaming(req, path("Abort"), codec).await
    }

    pub async fn reset(
        &mut self,
        request: impl tonic::IntoRequest<EchoRequest>,
    ) -> Result<Response<Streaming<EchoReply>>, Status> {
        let req = self.prepare(request, "Reset").await?;
        let codec = tonic_prost::ProstCodec::default();
        self.inner.server_streaming(req, path("Reset"), codec).await
    }

    pub async fn slow(
        &mut self,
        request: impl tonic::IntoRequest<EchoRequest>,
    ) -> Result<Response<EchoReply>, Status> {
        let req = self.prepare(request, "Slow").await?;
        let codec = tonic_prost::ProstCodec::default();
        self.inner.unary(req, path("Slow"), codec).await
    }

    /// A unary call with these messages to `/service/method`.
    pub async fn unary_at(
        &mut self,
        service: &'static str,
        method: &'static str,
        request: impl tonic::IntoRequest<EchoRequest>,
    ) -> Result<Response<EchoReply>, Status> {
        self.ready().await?;
        let mut req = request.into_request();
        req.extensions_mut()
            .insert(GrpcMethod::new(service, method));
        let path = format!("/{service}/{method}")
            .parse()
            .map_err(|e| Status::internal(format!("bad path: {e}")))?;
        let codec = tonic_prost::ProstCodec::default();
        self.inner.unary(req, path, codec).await
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.inner.ready().await.map_err(|e| {
            let e: StdError = e.into();
            Status::unknown(format!("Service was not ready: {e}"))
        })
    }

    async fn prepare(
        &mut self,
        request: impl tonic::IntoRequest<EchoRequest>,
        method: &'static str,
    ) -> Result<Request<EchoRequest>, Status> {
        self.ready().await?;
        let mut req = request.into_request();
        req.extensions_mut()
            .insert(GrpcMethod::new(SERVICE_NAME, method));
        Ok(req)
    }

    async fn prepare_streaming<S>(
        &mut self,
        request: impl tonic::IntoStreamingRequest<Stream = S, Message = EchoRequest>,
        method: &'static str,
    ) -> Result<Request<S>, Status> {
        self.ready().await?;
        let mut req = request.into_streaming_request();
        req.extensions_mut()
            .insert(GrpcMethod::new(SERVICE_NAME, method));
        Ok(req)
    }
}

fn path(method: &str) -> http::uri::PathAndQuery {
    format!("/{SERVICE_NAME}/{method}")
        .parse()
        .expect("a valid gRPC path")
}

/// What a `test.Echo` server implements, as the generated trait.
#[tonic::codegen::async_trait]
pub trait Echo: Send + Sync + 'static {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status>;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<BoxStream<EchoReply>>, Status>;

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status>;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<BoxStream<EchoReply>>, Status>;

    async fn abort(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<BoxStream<EchoReply>>, Status>;

    async fn reset(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<BoxStream<EchoReply>>, Status>;

    async fn slow(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status>;
}

/// The generated server: routes `/test.Echo/*` to `T`'s methods.
#[derive(Debug)]
pub struct EchoServer<T> {
    inner: Arc<T>,
}

impl<T> EchoServer<T> {
    pub fn from_arc(inner: Arc<T>) -> EchoServer<T> {
        EchoServer { inner }
    }
}

impl<T> Clone for EchoServer<T> {
    fn clone(&self) -> Self {
        EchoServer {
            inner: self.inner.clone(),
        }
    }
}

impl<T> NamedService for EchoServer<T> {
    const NAME: &'static str = SERVICE_NAME;
}

/// One method's adapter from the trait to a `tonic::server` service
/// trait, as the generated `struct UnarySvc<T: Echo>(pub Arc<T>)`.
struct Method<T>(Arc<T>);

/// Implements a unary-request `tonic::server` trait for [`Method`] on one
/// of [`Echo`]'s methods.
macro_rules! unary_request {
    ($name:ident, $trait:ident, $method:ident) => {
        struct $name<T>(Method<T>);
        impl<T: Echo> tonic::server::$trait<EchoRequest> for $name<T> {
            type Response = EchoReply;
            unary_request!(@types $trait);
            fn call(&mut self, request: Request<EchoRequest>) -> Self::Future {
                let inner = Arc::clone(&(self.0).0);
                Box::pin(async move { inner.$method(request).await })
            }
        }
    };
    (@types UnaryService) => {
        type Future = BoxFuture<Response<Self::Response>, Status>;
    };
    (@types ServerStreamingService) => {
        type ResponseStream = BoxStream<EchoReply>;
        type Future = BoxFuture<Response<Self::ResponseStream>, Status>;
    };
}

unary_request!(UnarySvc, UnaryService, unary);
unary_request!(ServerStreamSvc, ServerStreamingService, server_stream);
unary_request!(AbortSvc, ServerStreamingService, abort);
unary_request!(ResetSvc, ServerStreamingService, reset);
unary_request!(SlowSvc, UnaryService, slow);

struct ClientStreamSvc<T>(Method<T>);

impl<T: Echo> tonic::server::ClientStreamingService<EchoRequest> for ClientStreamSvc<T> {
    type Response = EchoReply;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Streaming<EchoRequest>>) -> Self::Future {
        let inner = Arc::clone(&(self.0).0);
        Box::pin(async move { inner.client_stream(request).await })
    }
}

struct BidiSvc<T>(Method<T>);

impl<T: Echo> tonic::server::StreamingService<EchoRequest> for BidiSvc<T> {
    type Response = EchoReply;
    type ResponseStream = BoxStream<EchoReply>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<EchoRequest>>) -> Self::Future {
        let inner = Arc::clone(&(self.0).0);
        Box::pin(async move { inner.bidi(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for EchoServer<T>
where
    T: Echo,
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = Method(self.inner.clone());
        let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
        match req.uri().path() {
            "/test.Echo/Unary" => {
                Box::pin(async move { Ok(grpc.unary(UnarySvc(method), req).await) })
            }
            "/test.Echo/ServerStream" => {
                Box::pin(
                    async move { Ok(grpc.server_streaming(ServerStreamSvc(method), req).await) },
                )
            }
            "/test.Echo/ClientStream" => {
                Box::pin(
                    async move { Ok(grpc.client_streaming(ClientStreamSvc(method), req).await) },
                )
            }
            "/test.Echo/Bidi" => {
                Box::pin(async move { Ok(grpc.streaming(BidiSvc(method), req).await) })
            }
            "/test.Echo/Abort" => {
                Box::pin(async move { Ok(grpc.server_streaming(AbortSvc(method), req).await) })
            }
            "/test.Echo/Reset" => {
                Box::pin(async move { Ok(grpc.server_streaming(ResetSvc(method), req).await) })
            }
            "/test.Echo/Slow" => {
                Box::pin(async move { Ok(grpc.unary(SlowSvc(method), req).await) })
            }
            _ => Box::pin(async move { Ok(unimplemented()) }),
        }
    }
}

/// The generated fallback: a trailers-only `UNIMPLEMENTED`.
fn unimplemented() -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::default());
    let headers = response.headers_mut();
    headers.insert(
        tonic::Status::GRPC_STATUS,
        (tonic::Code::Unimplemented as i32).into(),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response
}
