//! The server: an accept loop that never returns until shut down, one
//! handler per connection, commands as trait objects.

use std::sync::Arc;
use std::time::Duration;

use agentprof::profiled;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, Semaphore};

use crate::connection::Connection;
use crate::db::{Db, DbDropGuard};
use crate::protocol::{Frame, LineCodec};

/// A command the server can apply to the store.
pub trait Command: Send {
    fn apply(&self, db: &Db) -> Frame;
}

struct Get(String);
struct Set(String, Vec<u8>);
struct Del(String);
struct Ping;

impl Command for Get {
    #[profiled]
    fn apply(&self, db: &Db) -> Frame {
        Frame::Value(db.get(&self.0))
    }
}

impl Command for Set {
    #[profiled]
    fn apply(&self, db: &Db) -> Frame {
        db.set(
            self.0.clone(),
            self.1.clone(),
            // Long enough that a GET right after its SET finds the key on a
            // busy machine; the purge task runs every 5 ms regardless.
            Some(Duration::from_secs(600)),
        );
        Frame::Done
    }
}

impl Command for Del {
    #[profiled]
    fn apply(&self, db: &Db) -> Frame {
        db.del(&self.0);
        Frame::Done
    }
}

impl Command for Ping {
    #[profiled]
    fn apply(&self, _db: &Db) -> Frame {
        Frame::Pong
    }
}

/// The command a request asks for.
#[profiled]
fn command(frame: Frame) -> Result<Box<dyn Command>, String> {
    Ok(match frame {
        Frame::Ping => Box::new(Ping),
        Frame::Get(key) => Box::new(Get(key)),
        Frame::Set(key, value) => Box::new(Set(key, value)),
        Frame::Del(key) => Box::new(Del(key)),
        other => return Err(format!("not a request: {other:?}")),
    })
}

struct Listener {
    db_holder: DbDropGuard,
    listener: TcpListener,
    limit_connections: Arc<Semaphore>,
    notify_shutdown: broadcast::Sender<()>,
}

struct Handler {
    db: Db,
    connection: Connection<TcpStream>,
    shutdown: broadcast::Receiver<()>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Listener {
    /// Accepts connections until the task is dropped.
    #[profiled(agent = "kv-server")]
    async fn run(&mut self) -> std::io::Result<()> {
        loop {
            let permit = self
                .limit_connections
                .clone()
                .acquire_owned()
                .await
                .unwrap();
            let (socket, _) = self.listener.accept().await?;
            let mut handler = Handler {
                db: self.db_holder.db(),
                connection: Connection::new(socket, Box::new(LineCodec)),
                shutdown: self.notify_shutdown.subscribe(),
                _permit: permit,
            };
            tokio::spawn(async move {
                if let Err(e) = handler.run().await {
                    tracing::warn!(error = %e, "connection failed");
                }
            });
        }
    }
}

impl Handler {
    /// Serves one connection until the peer closes it or the server stops.
    #[profiled(agent = "kv-server")]
    #[tracing::instrument(level = "debug", skip(self))]
    async fn run(&mut self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        loop {
            let frame = tokio::select! {
                frame = self.connection.read_frame() => frame?,
                _ = self.shutdown.recv() => return Ok(()),
            };
            let Some(frame) = frame else { return Ok(()) };
            let reply = match command(frame) {
                Ok(command) => command.apply(&self.db),
                Err(message) => Frame::Error(message),
            };
            self.connection.write_frame(&reply).await?;
        }
    }
}

impl Drop for Handler {
    #[profiled]
    fn drop(&mut self) {
        // The permit returns to the semaphore with the handler.
    }
}

/// Runs the server on `listener` until `shutdown` completes.
#[profiled(agent = "kv-server")]
pub async fn run(listener: TcpListener, shutdown: impl std::future::Future) {
    let (notify_shutdown, _) = broadcast::channel(1);
    let mut server = Listener {
        db_holder: DbDropGuard::new(),
        listener,
        limit_connections: Arc::new(Semaphore::new(64)),
        notify_shutdown,
    };
    crate::publish_db(server.db_holder.db());
    tokio::select! {
        result = server.run() => {
            if let Err(e) = result {
                tracing::error!(error = %e, "accept failed");
            }
        }
        _ = shutdown => {}
    }
    let Listener {
        notify_shutdown, ..
    } = server;
    drop(notify_shutdown);
}
