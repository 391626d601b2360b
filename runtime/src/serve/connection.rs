//! Accepting and serving connections with the limits a robot needs: a bounded number of
//! connections (further ones get a bare 503), request heads of at most 8 KiB read within 5 s
//! (hyper answers 431 to larger ones and drops slower ones), one request per connection, and
//! a write deadline, so a viewer that stops reading is cut off instead of holding its slot.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Sleep;

/// Largest accepted request head (request line and headers); hyper's smallest buffer.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its whole request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a write may stay blocked (a viewer not reading) before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Answer to a connection beyond the limit.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 31\r\nRetry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n\
busy: too many preview clients\n";

/// Serves `router` on `listener` until `stop` turns true; at most `max_clients` at once.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    max_clients: usize,
    mut stop: watch::Receiver<bool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or an aborted handshake: do not spin.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if open.fetch_add(1, Ordering::SeqCst) >= max_clients {
            open.fetch_sub(1, Ordering::SeqCst);
            tokio::spawn(reject_busy(stream));
            continue;
        }
        let slot = Slot(open.clone());
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _ = stream.set_nodelay(true);
            let io = TokioIo::new(WriteDeadline::new(stream, WRITE_TIMEOUT));
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .keep_alive(false)
                // A client that closes its sending side after the request still gets the answer.
                .half_close(true)
                .serve_connection(io, service)
                .await;
        });
    }
}

/// One open connection, counted until the connection's task ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers 503 to a connection beyond the limit, without parsing it.
async fn reject_busy(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await
    })
    .await;
}

/// A stream whose writes fail with `TimedOut` once one has been blocked for `limit`.
pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    blocked: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    /// Wraps `inner`, allowing each write to block for at most `limit`.
    pub fn new(inner: S, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            blocked: None,
        }
    }

    /// Passes a write's outcome through, failing a write blocked past the deadline.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.blocked = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let sleep = self
                    .blocked
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.deadline(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.deadline(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.deadline(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn a_write_blocked_past_the_deadline_fails_and_a_read_one_goes_through() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A duplex pipe of 1 KiB whose far end never reads: the second KiB blocks.
            let (near, _far) = tokio::io::duplex(1024);
            let mut w = WriteDeadline::new(near, Duration::from_millis(100));
            let err = w.write_all(&[7u8; 4096]).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);

            // The same amount with a reader on the far end arrives whole.
            let (near, mut far) = tokio::io::duplex(1024);
            let mut w = WriteDeadline::new(near, Duration::from_millis(100));
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                far.read_to_end(&mut got).await.map(|_| got.len())
            });
            w.write_all(&[7u8; 4096]).await.unwrap();
            drop(w);
            assert_eq!(reader.await.unwrap().unwrap(), 4096);
        });
    }
}
