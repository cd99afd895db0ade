//! A Strata HTTP server for one test: started on its own task with a configuration,
//! reachable once ready, stopped (and its result checked) at the end.

use std::net::SocketAddr;
use std::time::Duration;
use strata::config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    /// Serves `config` (`strata::server::serve_until`) until [`TestServer::stop`]; returns
    /// once it listens (within a minute).
    pub async fn start(config: Config) -> TestServer {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(strata::server::serve_until(
            config,
            Some(ready_tx),
            async move {
                let _ = stop_rx.await;
            },
        ));
        let addr = tokio::time::timeout(Duration::from_secs(60), ready_rx)
            .await
            .expect("server ready")
            .unwrap();
        TestServer { addr, stop, task }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts the server down; it must have ended without error.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}
