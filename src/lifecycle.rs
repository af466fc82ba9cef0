//! A process's life: serving until a stop signal, then letting the work in flight finish. Shared
//! by `agora serve` and `agora notifications-service`.

use actix_web::dev::Server;

use crate::background::BackgroundTasks;

/// Serves until the server is stopped or `stop` completes (naming why), then stops the
/// background work. Requests in flight are finished, up to the server's shutdown timeout.
pub async fn serve_until(
    server: Server,
    background: BackgroundTasks,
    stop: impl Future<Output = &'static str>,
) -> std::io::Result<()> {
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        signal = stop => {
            log::info!("{signal}: stopping, finishing requests in flight");
            // The server's own future carries the stop out: ask, and keep polling it.
            let (served, ()) = tokio::join!(server, handle.stop(true));
            served
        }
    };
    // Joining threads blocks; do it off the async executor.
    let _ = actix_web::rt::task::spawn_blocking(move || background.shutdown()).await;
    served
}

/// Completes at the first SIGINT (Ctrl-C) or SIGTERM (a service manager's stop), naming it.
pub async fn termination() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                }
            }
            Err(error) => {
                log::warn!("cannot listen for SIGTERM ({error}); Ctrl-C still stops");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
