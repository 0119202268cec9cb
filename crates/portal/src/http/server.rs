//! Starting the server (the listener, the job workers, the expiry sweeper, the HTTP
//! runtime) and stopping it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::AppState;
use super::conn::{ConnLimits, serve};
use super::gate::Gate;
use super::routes::router;
use crate::jobs::{self, JobLimits, Jobs};
use crate::{Backend, PortalConfig};

/// A server running in the background; dropping it stops it.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    jobs: Arc<Jobs>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Serves until the process ends (or the server fails).
    pub fn wait(mut self) -> std::io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.jobs.close();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `config.addr` (and nothing else) and serves in background threads: the HTTP
/// side on a small tokio runtime, `config.workers` job threads calling `backend`.
pub fn spawn(config: PortalConfig, backend: Arc<dyn Backend>) -> std::io::Result<Running> {
    let (jobs, rx) = Jobs::with_limits(
        &config.work_dir.join("jobs"),
        config.job_ttl,
        config.queue_capacity,
        JobLimits {
            timeout: config.job_timeout,
            memory_bytes: config.job_memory_bytes,
            data: config.limits,
        },
    )?;
    let listener = std::net::TcpListener::bind(config.addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let gate = Gate::new(addr, &config.allowed_hosts)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    jobs::start_workers(&jobs, rx, Arc::clone(&backend), config.workers);
    let (ttl, quota) = (config.job_ttl, config.disk_quota_bytes);
    let conn = ConnLimits {
        max_connections: config.max_connections.max(1),
        header_timeout: config.header_timeout,
        write_timeout: config.body_idle_timeout,
    };
    let state = AppState {
        uploads: Arc::new(Semaphore::new(config.max_uploads_in_flight.max(1))),
        config: Arc::new(PortalConfig {
            max_uploads_in_flight: config.max_uploads_in_flight.max(1),
            ..config
        }),
        backend,
        jobs: Arc::clone(&jobs),
        gate: Arc::new(gate),
    };
    let (tx, rx_stop) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("portal-http")
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("portal".into())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let sweeper_jobs = Arc::clone(&state.jobs);
                let every = (ttl / 4).clamp(Duration::from_millis(200), Duration::from_secs(1));
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(every);
                    loop {
                        tick.tick().await;
                        sweeper_jobs.stop_overdue();
                        let n = sweeper_jobs.expire();
                        if n > 0 {
                            tracing::info!("expired {n} job(s)");
                        }
                        sweeper_jobs.make_room(quota, 0);
                    }
                });
                serve(listener, router(state), conn, rx_stop).await
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
            result
        })?;
    Ok(Running {
        addr,
        jobs,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}
