//! No task of the daemon dies alone: the essential tasks (scheduler, publisher, reload, reconcile,
//! HTTP, heartbeat, overdue values) are watched, and a panic in one is reported on a channel the
//! daemon's owner waits on, so the process stops loudly (logged, non-zero exit) instead of living
//! on with nothing scheduled and `/healthz` at 503 (issue 22.2).

use std::any::Any;

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

/// Where watched tasks report that they died.
#[derive(Clone)]
pub struct Failures {
    sender: mpsc::UnboundedSender<String>,
}

/// The receiving end: the first message is why the daemon must stop.
pub struct FailureReceiver {
    receiver: mpsc::UnboundedReceiver<String>,
}

pub fn channel() -> (Failures, FailureReceiver) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (Failures { sender }, FailureReceiver { receiver })
}

impl FailureReceiver {
    /// Waits until a watched task has died, and says which and why; never returns if none does.
    pub async fn recv(&mut self) -> String {
        match self.receiver.recv().await {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}

/// Aborts the watched task when its watcher is aborted or dropped, so `abort` on the handle
/// [`Failures::watch`] returns still ends the task itself.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Failures {
    /// Watches `task`: the returned handle yields what the task yields, and a panic in it is
    /// logged and reported as "the `name` task panicked: ..." before it reaches the handle.
    pub fn watch<T: Send + 'static>(&self, name: &'static str, task: JoinHandle<T>) -> JoinHandle<T> {
        let failures = self.sender.clone();
        let abort = AbortOnDrop(task.abort_handle());
        tokio::spawn(async move {
            let _abort = abort;
            match task.await {
                Ok(value) => value,
                Err(error) => {
                    let payload = match error.try_into_panic() {
                        Ok(payload) => payload,
                        Err(_) => Box::new("cancelled") as Box<dyn Any + Send>,
                    };
                    let reason = format!("the {name} task panicked: {}", panic_message(payload.as_ref()));
                    tracing::error!("{reason}; stopping the daemon");
                    let _ = failures.send(reason);
                    std::panic::resume_unwind(payload)
                }
            }
        })
    }
}

/// The text of a panic, as `panic!` was given it.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_reported_and_still_reaches_the_handle() {
        let (failures, mut receiver) = channel();
        let handle = failures.watch("scheduler", tokio::spawn(async { panic!("attempt to divide by zero") }));
        assert_eq!(receiver.recv().await, "the scheduler task panicked: attempt to divide by zero");
        assert!(handle.await.unwrap_err().is_panic());
    }

    #[tokio::test]
    async fn a_task_that_ends_well_reports_nothing_and_abort_reaches_the_task() {
        let (failures, mut receiver) = channel();
        assert_eq!(failures.watch("reload", tokio::spawn(async { 7 })).await.unwrap(), 7);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let endless = failures.watch(
            "http",
            tokio::spawn(async move {
                let _held = tx;
                std::future::pending::<()>().await
            }),
        );
        endless.abort();
        assert!(endless.await.unwrap_err().is_cancelled());
        assert!(rx.await.is_err(), "the task itself was aborted and dropped its sender");
        drop(failures);
        let nothing = tokio::time::timeout(std::time::Duration::from_millis(100), receiver.recv()).await;
        assert!(nothing.is_err(), "no failure reported");
    }
}
