//! Two small futures the channel needs: "first of two" and a cancel signal.

use core::future::Future;
use core::task::{Context, Poll, Waker};
use std::cell::{Cell, RefCell};

/// Resolves with `Some(main's output)`, or `None` when `stop` resolves first.
pub async fn unless<F: Future, S: Future<Output = ()>>(main: F, stop: S) -> Option<F::Output> {
    let mut main = core::pin::pin!(main);
    let mut stop = core::pin::pin!(stop);
    core::future::poll_fn(move |cx| {
        if let Poll::Ready(v) = main.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// A flag that a waiting task can await.
#[derive(Default)]
pub struct CancelFlag {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl CancelFlag {
    /// Sets the flag and wakes the waiter (which runs at once if it is not running).
    pub fn cancel(&self) {
        self.set.set(true);
        let w = self.waker.borrow_mut().take();
        if let Some(w) = w {
            w.wake();
        }
    }

    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        core::future::poll_fn(move |cx: &mut Context<'_>| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

