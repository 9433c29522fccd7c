//! Polling a connection's side futures (timers, the shutdown signal) only
//! when one of their own wake-ups fired, not on every request's wake-up.

use futures_util::future::Either;
use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// Runs `main` and `side` until either completes, polling `side` only when
/// one of its own wake-ups fired. A connection's task is woken for every
/// request; its timers and the shutdown signal almost never, and polling
/// them on every wake-up would cost each request a few timer and channel
/// checks.
pub(super) struct Prioritized<M, S> {
    main: M,
    side: Pin<Box<S>>,
    side_wake: Arc<SideWake>,
    side_waker: Waker,
}

/// Remembers that `side` was woken, then wakes the task.
struct SideWake {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for SideWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<M: Future + Unpin, S: Future> Prioritized<M, S> {
    pub(super) fn new(main: M, side: S) -> Self {
        let side_wake = Arc::new(SideWake {
            // Polled once at the start, to arm its timers.
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Prioritized {
            main,
            side: Box::pin(side),
            side_waker: Waker::from(side_wake.clone()),
            side_wake,
        }
    }
}

impl<M: Future + Unpin, S: Future> Future for Prioritized<M, S> {
    type Output = Either<M::Output, S::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.side_wake.task.register(cx.waker());
        if let Poll::Ready(out) = Pin::new(&mut this.main).poll(cx) {
            return Poll::Ready(Either::Left(out));
        }
        if this.side_wake.woken.swap(false, Ordering::AcqRel) {
            let mut side_cx = Context::from_waker(&this.side_waker);
            if let Poll::Ready(out) = this.side.as_mut().poll(&mut side_cx) {
                return Poll::Ready(Either::Right(out));
            }
        }
        Poll::Pending
    }
}
