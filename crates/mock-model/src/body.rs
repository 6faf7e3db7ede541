//! Playing a rendered plan back as an HTTP body, and cutting connections.
//!
//! The body is polled by hyper directly (no producer task), so a response ends
//! with its connection: a client that goes away, or a server that shuts down,
//! leaves nothing running behind.
//!
//! A *drop* must look to the client like a connection lost mid-body, yet every
//! byte before it must arrive first (a client test wants to see the partial
//! text). An error frame from the body would make hyper close the connection
//! with its write buffer unflushed, so instead the body arms the connection's
//! [`KillSwitch`] and goes quiet; hyper flushes what it has, and the next flush
//! of the [`KillableIo`] (which hyper only reaches once its buffer is empty)
//! fails, which ends the connection and closes the socket.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::plan::{Plan, Segment};

/// Consecutive events are sent as one frame up to about this many bytes, so a
/// response with tens of thousands of deltas is written in a few large writes.
const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Shared between a connection's I/O and the bodies sent on it: once armed, the
/// connection is aborted at its next flush.
#[derive(Debug, Clone, Default)]
pub(crate) struct KillSwitch(Arc<AtomicBool>);

impl KillSwitch {
    fn arm(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_armed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The body of every response the mock sends.
pub(crate) enum MockBody {
    /// A complete body, sent with a `content-length`.
    Full(Option<Bytes>),
    /// A rendered plan, streamed with chunked encoding.
    Plan(PlanBody),
}

impl MockBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> MockBody {
        MockBody::Full(Some(bytes.into()))
    }

    pub(crate) fn plan(plan: Plan, kill: KillSwitch) -> MockBody {
        MockBody::Plan(PlanBody {
            segments: plan.into(),
            sleep: None,
            kill,
        })
    }
}

/// Plays a plan: sends bytes, sleeps through pauses, and stops at a drop or hang.
pub(crate) struct PlanBody {
    segments: VecDeque<Segment>,
    sleep: Option<Pin<Box<Sleep>>>,
    kill: KillSwitch,
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MockBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Plan(plan) => plan
                .poll_next(cx)
                .map(|bytes| bytes.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(bytes) => bytes.is_none(),
            MockBody::Plan(plan) => plan.segments.is_empty() && plan.sleep.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            MockBody::Plan(_) => SizeHint::default(),
        }
    }
}

impl PlanBody {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }

            match self.segments.front() {
                None => return Poll::Ready(None),
                Some(Segment::Bytes(_)) => return Poll::Ready(Some(self.take_bytes())),
                Some(Segment::Pause(duration)) => {
                    self.sleep = Some(Box::pin(tokio::time::sleep(*duration)));
                    self.segments.pop_front();
                }
                Some(Segment::Drop) => {
                    // Stay pending for good: the armed switch ends the
                    // connection once hyper has flushed what came before.
                    // No wake-up needed: hyper flushes right after a pending
                    // body, and that flush is the one that fails.
                    self.kill.arm();
                    return Poll::Pending;
                }
                // Never woken: only the client or a server shutdown ends this.
                Some(Segment::Hang) => return Poll::Pending,
                Some(Segment::KeepAlive(every)) => {
                    // The segment stays: after the pause, the next comment.
                    self.sleep = Some(Box::pin(tokio::time::sleep(*every)));
                    return Poll::Ready(Some(Bytes::from_static(b": keep-alive\n\n")));
                }
            }
        }
    }

    /// Take consecutive byte segments from the front, up to a frame's worth.
    fn take_bytes(&mut self) -> Bytes {
        let mut frame = BytesMut::new();
        while let Some(Segment::Bytes(bytes)) = self.segments.front() {
            if !frame.is_empty() && frame.len() + bytes.len() > MAX_FRAME_BYTES {
                break;
            }
            frame.extend_from_slice(bytes);
            self.segments.pop_front();
        }
        frame.freeze()
    }
}

/// Connection I/O that fails its flush once the connection's [`KillSwitch`] is
/// armed. Reads and writes pass through untouched, so everything hyper buffered
/// before the drop still reaches the socket.
pub(crate) struct KillableIo<T> {
    inner: T,
    kill: KillSwitch,
}

impl<T> KillableIo<T> {
    pub(crate) fn new(inner: T, kill: KillSwitch) -> KillableIo<T> {
        KillableIo { inner, kill }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for KillableIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for KillableIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.kill.is_armed() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "tiller-mock-model: scripted connection drop",
            )));
        }

        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
