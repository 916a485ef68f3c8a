//! The one thread that starts nginx.
//!
//! It exists for a Linux detail (see [`spawn_contained`]): the parent-death signal that ties
//! nginx's lifetime to ours follows the thread that forked it, so that thread must live as long
//! as the process.

use std::io;
use std::sync::mpsc as std_mpsc;
use std::sync::{Mutex, OnceLock};

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::platform;

struct SpawnRequest {
    command: Command,
    handle: tokio::runtime::Handle,
    reply: oneshot::Sender<io::Result<Child>>,
}

/// Spawns `command` from the "nginx-launcher" thread.
///
/// Linux delivers PR_SET_PDEATHSIG when the *thread* that forked the child exits, not the
/// process. Forking from a tokio worker or `spawn_blocking` thread would kill nginx whenever
/// that thread is retired. The launcher thread is started once and never exits, so the signal
/// comes exactly when the whole process dies. It enters the caller's runtime so that the child
/// is registered with that runtime's process reaper.
pub(super) async fn spawn_contained(mut command: Command) -> io::Result<Child> {
    static LAUNCHER: OnceLock<Mutex<std_mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = LAUNCHER.get_or_init(|| {
        let (tx, rx) = std_mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("nginx-launcher".into())
            .spawn(move || {
                // Ends only if every sender is dropped, which never happens: one lives in the static.
                for mut req in rx {
                    // This thread must never die (its exit would fire PDEATHSIG in every nginx
                    // it started), so a panic in spawn, e.g. from a runtime that is shutting
                    // down, becomes an error for that one caller.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let _guard = req.handle.enter();
                        req.command.spawn()
                    }))
                    .unwrap_or_else(|_| Err(io::Error::other("spawning nginx panicked")));
                    let _ = req.reply.send(result);
                }
            })
            .expect("cannot start the nginx launcher thread");
        Mutex::new(tx)
    });
    platform::contain(&mut command);
    let (reply, response) = oneshot::channel();
    let req = SpawnRequest { command, handle: tokio::runtime::Handle::current(), reply };
    sender.lock().unwrap_or_else(|p| p.into_inner()).send(req).map_err(|_| io::Error::other("the nginx launcher thread is gone"))?;
    response.await.map_err(|_| io::Error::other("the nginx launcher thread did not answer"))?
}
