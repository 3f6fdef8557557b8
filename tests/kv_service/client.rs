//! The client: one connection, typed requests.

use agentprof::profiled;
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::connection::Connection;
use crate::protocol::{Frame, LineCodec};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub struct Client {
    connection: Connection<TcpStream>,
}

impl Client {
    #[profiled(agent = "kv-client")]
    pub async fn connect<A: ToSocketAddrs + std::fmt::Debug>(addr: A) -> Result<Client, Error> {
        let socket = TcpStream::connect(addr).await?;
        Ok(Client {
            connection: Connection::new(socket, Box::new(LineCodec)),
        })
    }

    #[profiled(agent = "kv-client")]
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.request(Frame::Get(key.to_owned())).await? {
            Frame::Value(value) => Ok(value),
            other => Err(format!("unexpected reply {other:?}").into()),
        }
    }

    #[profiled(agent = "kv-client")]
    pub async fn set(&mut self, key: &str, value: Vec<u8>) -> Result<(), Error> {
        match self.request(Frame::Set(key.to_owned(), value)).await? {
            Frame::Done => Ok(()),
            other => Err(format!("unexpected reply {other:?}").into()),
        }
    }

    #[profiled(agent = "kv-client")]
    pub async fn ping(&mut self) -> Result<(), Error> {
        match self.request(Frame::Ping).await? {
            Frame::Pong => Ok(()),
            other => Err(format!("unexpected reply {other:?}").into()),
        }
    }

    #[profiled]
    async fn request(&mut self, frame: Frame) -> Result<Frame, Error> {
        self.connection.write_frame(&frame).await?;
        self.connection
            .read_frame()
            .await?
            .ok_or_else(|| "the server closed the connection".into())
    }
}

impl Drop for Client {
    #[profiled]
    fn drop(&mut self) {}
}
