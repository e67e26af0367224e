//! Telling every task that the daemon is stopping.
//!
//! One [`Trigger`] flips a watch channel; every task holds a [`Shutdown`] and awaits
//! [`Shutdown::recv`] in its `select!`.

use tokio::sync::watch;

/// Sends the signal, once.
pub struct Trigger {
    sender: watch::Sender<bool>,
}

/// Receives the signal. Cheap to clone.
#[derive(Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

pub fn channel() -> (Trigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (Trigger { sender }, Shutdown { receiver })
}

impl Trigger {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// A receiver usable where a `watch::Receiver<bool>` is expected (the runner's stop input).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.sender.subscribe()
    }
}

impl Shutdown {
    /// Waits until the signal is sent (or the trigger is dropped).
    pub async fn recv(&mut self) {
        let _ = self.receiver.wait_for(|stopped| *stopped).await;
    }
}
