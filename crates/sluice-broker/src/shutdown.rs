//! Listens for the server's shutdown signal.

use tokio::sync::broadcast;

/// Tells a task that the server is shutting down. Cloned per connection.
#[derive(Debug)]
pub struct Shutdown {
    /// Set once the signal was seen, so later calls return at once.
    is_shutdown: bool,
    /// Receives the one broadcast shutdown message.
    notify: broadcast::Receiver<()>,
}

impl Shutdown {
    /// Wraps a receiver of the server's shutdown broadcast.
    pub fn new(notify: broadcast::Receiver<()>) -> Shutdown {
        Shutdown {
            is_shutdown: false,
            notify,
        }
    }

    /// Whether the signal has been received.
    pub fn is_shutdown(&self) -> bool {
        self.is_shutdown
    }

    /// Waits for the signal.
    pub async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }
}
