//! The gRPC upstream and client of the tests: tonic on both ends.
//!
//! [`EchoUpstream`] is a tonic h2c server of `test.Echo` on 127.0.0.1:0.
//! It owns its listening socket apart from the server, so it can count the
//! TCP connections it accepts and replace the server in place: the running
//! tonic server is shut down gracefully (it sends GOAWAY and finishes the
//! calls in flight) while a new one on the same port takes every connection
//! accepted from then on. Every request that reaches it is recorded (path,
//! HTTP version, headers, which server took it), and it counts the `Slow`
//! calls in flight and those abandoned before they finished.
//!
//! Besides echoing, the server
//! - copies request metadata back as response metadata: `x-custom` as
//!   `x-echo-custom`, `x-blob-bin` as `x-echo-blob-bin`, `grpc-timeout` as
//!   `x-echo-grpc-timeout`;
//! - adds the trailer `x-echo-trailer: <method>` to every response that
//!   ends with trailers;
//! - ends `Abort` with status `ABORTED` and the trailer `x-abort-reason`
//!   after the requested messages, and resets `Reset`'s stream
//!   (`RST_STREAM`, no trailers) after them, once the test has read them
//!   and called [`EchoUpstream::release_reset`].
//!
//! The client side is [`channel`] (a tonic `Channel` over h2c) and
//! [`with_token`] (a request with `authorization: Bearer <token>`).

mod service;

use futures_util::stream;
use http::{HeaderMap, Version};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::Request;

use crate::common::within;
use crate::echo::EchoServer;
use service::{Handlers, Recorder, State};

/// The trailer every response that ends with trailers gets.
pub const TRAILER: &str = "x-echo-trailer";
/// The trailer `Abort` adds to its `ABORTED` status.
pub const ABORT_REASON: &str = "x-abort-reason";
/// `Abort`'s status message.
pub const ABORT_MESSAGE: &str = "the upstream gave up";

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct SeenCall {
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    /// Which server took it: 1 for the first, 2 after one restart...
    pub generation: usize,
}

impl SeenCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A tonic `test.Echo` server on a port of its own; see the module doc.
pub struct EchoUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    connections: Arc<AtomicUsize>,
    /// Where the accept loop hands new connections: the current server.
    route: Arc<Mutex<mpsc::UnboundedSender<TcpStream>>>,
    current: Mutex<Generation>,
    accept: JoinHandle<()>,
}

/// One tonic server behind the port.
struct Generation {
    number: usize,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl EchoUpstream {
    pub async fn start() -> EchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gRPC upstream");
        let addr = listener.local_addr().expect("gRPC upstream addr");
        let state = Arc::new(State::default());
        let connections = Arc::new(AtomicUsize::new(0));
        let (to_server, first) = Generation::spawn(1, state.clone());
        let route = Arc::new(Mutex::new(to_server));
        let accept = tokio::spawn(accept_loop(listener, route.clone(), connections.clone()));
        EchoUpstream {
            addr,
            state,
            connections,
            route,
            current: Mutex::new(first),
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every request received so far, in arrival order.
    pub fn calls(&self) -> Vec<SeenCall> {
        self.state.seen.lock().expect("lock").clone()
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.state.seen.lock().expect("lock").len()
    }

    /// The most recent request; panics when there was none.
    pub fn last(&self) -> SeenCall {
        self.calls()
            .pop()
            .expect("the gRPC upstream saw no request")
    }

    /// Requests taken by server `generation`.
    pub fn served_by(&self, generation: usize) -> usize {
        let seen = self.state.seen.lock().expect("lock");
        seen.iter().filter(|c| c.generation == generation).count()
    }

    /// `Slow` calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// The most `Slow` calls that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// `Slow` calls dropped before they answered (cancelled or timed out).
    pub fn abandoned(&self) -> usize {
        self.state.abandoned.load(Ordering::SeqCst)
    }

    /// Lets one `Reset` call, past its messages, reset its stream.
    pub fn release_reset(&self) {
        self.state.release_reset.notify_one();
    }

    /// Starts the next server on the same port, sends it every connection
    /// accepted from now on, and shuts the running one down gracefully
    /// (GOAWAY, calls in flight finish). Returns the old server's task,
    /// which ends once its connections have closed.
    pub fn restart(&self) -> JoinHandle<Result<(), tonic::transport::Error>> {
        let mut current = self.current.lock().expect("lock");
        let (to_server, next) = Generation::spawn(current.number + 1, self.state.clone());
        *self.route.lock().expect("lock") = to_server;
        let old = std::mem::replace(&mut *current, next);
        let _ = old.stop.send(());
        old.task
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.accept.abort();
        if let Ok(current) = self.current.lock() {
            current.task.abort();
        }
    }
}

impl Generation {
    /// A tonic server taking its connections from the returned sender.
    fn spawn(number: usize, state: Arc<State>) -> (mpsc::UnboundedSender<TcpStream>, Generation) {
        let (to_server, connections) = mpsc::unbounded_channel::<TcpStream>();
        let incoming = stream::unfold(connections, |mut rx| async move {
            let tcp = rx.recv().await?;
            Some((Ok::<_, std::io::Error>(tcp), rx))
        });
        let service = Recorder {
            inner: EchoServer::from_arc(Arc::new(Handlers {
                state: state.clone(),
            })),
            state,
            generation: number,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(Server::builder().serve_with_incoming_shutdown(
            service,
            incoming,
            async move {
                let _ = stopped.await;
            },
        ));
        (to_server, Generation { number, stop, task })
    }
}

async fn accept_loop(
    listener: TcpListener,
    route: Arc<Mutex<mpsc::UnboundedSender<TcpStream>>>,
    connections: Arc<AtomicUsize>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let _ = tcp.set_nodelay(true);
        let _ = route.lock().expect("lock").send(tcp);
    }
}

/// An ASCII metadata value as text.
pub fn text<'a>(metadata: &'a MetadataMap, name: &str) -> Option<&'a str> {
    metadata.get(name).and_then(|v| v.to_str().ok())
}

/// A tonic channel (one h2c connection) to `addr`.
pub async fn channel(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint URI");
    within("gRPC connect", endpoint.connect())
        .await
        .expect("gRPC connect")
}

/// A request for `message` with `authorization: Bearer <token>`.
pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    with_authorization(message, &format!("Bearer {token}"))
}

/// A request for `message` with this `authorization` metadata.
pub fn with_authorization<T>(message: T, authorization: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        authorization.parse().expect("ASCII authorization"),
    );
    request
}
