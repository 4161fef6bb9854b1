//! The Redis side: upstream's address syntax, the read connection (restore)
//! and the writer task.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands as _;
use tokio::sync::mpsc;

use super::Record;

/// Most writes queued before new ones are dropped (and logged): a Redis that
/// cannot keep up costs persistence, never signalling.
const QUEUE: usize = 65536;

/// A database as upstream writes it: `[PW@]HOST:PORT/DB` (the password may
/// also come from an environment variable).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    host: String,
    port: u16,
    db: i64,
    password: Option<String>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        if self.host.contains(':') {
            write!(f, "[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            write!(f, "{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

impl std::fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl RedisTarget {
    /// `--redis-subscribe`'s `[PW@]HOST:PORT[/DB]` (the database does not
    /// matter for a subscription).
    pub fn parse_subscribe(s: &str, env_pw: &str) -> anyhow::Result<RedisTarget> {
        let tail = s.rsplit_once('@').map_or(s, |(_, t)| t);
        if tail.rsplit_once(']').map_or(tail, |(_, t)| t).contains('/') {
            Self::parse(s, env_pw)
        } else {
            Self::parse(&format!("{s}/0"), env_pw)
        }
    }

    /// Parses `[PW@]HOST:PORT/DB` (IPv6 hosts in brackets); `env_pw` is the
    /// variable upstream reads the password from when none is given.
    pub fn parse(s: &str, env_pw: &str) -> anyhow::Result<RedisTarget> {
        let (password, rest) = match s.rsplit_once('@') {
            Some((pw, rest)) => (Some(pw.to_owned()), rest),
            None => (std::env::var(env_pw).ok().filter(|p| !p.is_empty()), s),
        };
        let (hostport, db) = rest
            .rsplit_once('/')
            .with_context(|| format!("'{rest}' is not HOST:PORT/DB"))?;
        let db: i64 = db
            .parse()
            .with_context(|| format!("'{db}' is not a database number"))?;
        let (host, port) = hostport
            .rsplit_once(':')
            .with_context(|| format!("'{hostport}' is not HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .with_context(|| format!("'{port}' is not a port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || db < 0 {
            bail!("'{rest}' is not HOST:PORT/DB");
        }
        Ok(RedisTarget {
            host: host.to_owned(),
            port,
            db,
            password,
        })
    }

    pub(super) fn client(&self) -> anyhow::Result<redis::Client> {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let auth = self.password.as_ref().map_or(String::new(), |p| {
            format!(
                ":{}@",
                percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC)
            )
        });
        let url = format!("redis://{auth}{host}:{}/{}", self.port, self.db);
        redis::Client::open(url).with_context(|| format!("Redis {self}"))
    }
}

/// A write for the writer task.
enum Op {
    Set(Record),
    Del(String),
    /// Answered once everything queued before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Reads from `--redis`, writes to `--redis-write` (or the same).
pub struct Store {
    read: ConnectionManager,
    target: RedisTarget,
    queue: mpsc::Sender<Op>,
}

impl Store {
    /// Connects to `read` (and `write`, if another) and starts the writer.
    /// Keys expire after `expires` (upstream's `--redis-expires`).
    pub async fn connect(
        read: &RedisTarget,
        write: Option<&RedisTarget>,
        expires: Duration,
    ) -> anyhow::Result<Store> {
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let connect = |t: &RedisTarget| {
            let cfg = cfg.clone();
            let t = t.clone();
            async move {
                let client = t.client()?;
                ConnectionManager::new_with_config(client, cfg)
                    .await
                    .with_context(|| format!("connecting to Redis {t}"))
            }
        };
        let read_con = connect(read).await?;
        let write_con = match write {
            Some(w) if w != read => connect(w).await?,
            _ => read_con.clone(),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(write_con, rx, expires));
        Ok(Store {
            read: read_con,
            target: read.clone(),
            queue: tx,
        })
    }

    /// Stores a call (asynchronously).
    pub fn set(&self, r: Record) {
        self.push(Op::Set(r));
    }

    /// Forgets a call (asynchronously).
    pub fn delete(&self, call_id: &str) {
        self.push(Op::Del(call_id.to_owned()));
    }

    /// Waits (at most `timeout`) until the changes queued so far are
    /// written: a clean stop must not lose the last ones.
    pub async fn flush(&self, timeout: Duration) {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        // A marker behind everything queued: the writer answers it once the
        // batch holding it is written.
        if self.queue.send(Op::Flush(done_tx)).await.is_err() {
            return;
        }
        if !matches!(tokio::time::timeout(timeout, done_rx).await, Ok(Ok(()))) {
            tracing::error!("Redis did not take the last call changes before the stop");
        }
    }

    fn push(&self, op: Op) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(op) {
            tracing::warn!("Redis write queue full: a call change is not persisted");
        }
    }

    /// Every record stored in the read database (other keys are skipped,
    /// counted in the second value).
    pub async fn load(&self) -> anyhow::Result<(Vec<Record>, usize)> {
        let mut con = self.read.clone();
        let keys: Vec<String> = {
            let mut it = con
                .scan::<String>()
                .await
                .with_context(|| format!("listing the keys of Redis {}", self.target))?;
            let mut keys = Vec::new();
            while let Some(k) = futures_next(&mut it).await {
                keys.push(k);
            }
            keys
        };
        let mut records = Vec::with_capacity(keys.len());
        let mut foreign = 0;
        for k in keys {
            // One key of another type or program must not stop the start.
            match self.get(&k).await {
                Ok(Some(r)) => records.push(r),
                Ok(None) => foreign += 1,
                Err(e) => {
                    tracing::warn!(key = %k, error = %format!("{e:#}"), "Skipping a Redis key that is not a stored call");
                    foreign += 1;
                }
            }
        }
        Ok((records, foreign))
    }
}

impl Store {
    /// The record stored under `key` (`None`: absent, or not ours).
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Record>> {
        let mut con = self.read.clone();
        let v: Option<Vec<u8>> = con
            .get(key)
            .await
            .with_context(|| format!("reading {key} from Redis {}", self.target))?;
        Ok(v.as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(Record::from_json)
            .filter(|r| r.call_id == key))
    }
}

/// The next item of a Redis scan (the iterator is a stream; this avoids a
/// futures dependency for one call).
async fn futures_next(it: &mut redis::AsyncIter<'_, String>) -> Option<String> {
    loop {
        match it.next_item().await {
            Some(Ok(k)) => return Some(k),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Redis scan item unreadable");
                continue;
            }
            None => return None,
        }
    }
}

/// Writes queued changes, the latest per call. A failed write keeps its
/// changes pending and retries every second (newer changes of the same call
/// replace them), so an outage of Redis delays persistence but loses
/// nothing; a [`Store::flush`] marker is answered once everything queued
/// before it is written.
async fn writer(mut con: ConnectionManager, mut rx: mpsc::Receiver<Op>, expires: Duration) {
    let mut failing = false;
    let mut pending: HashMap<String, Op> = HashMap::new();
    let mut waiters: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    let mut batch: Vec<Op> = Vec::new();
    loop {
        if pending.is_empty() {
            for w in waiters.drain(..) {
                let _ = w.send(());
            }
            if rx.recv_many(&mut batch, 1024).await == 0 {
                return;
            }
        } else {
            // Whatever arrived meanwhile joins the retry.
            while let Ok(op) = rx.try_recv() {
                batch.push(op);
            }
        }
        for op in batch.drain(..) {
            match op {
                Op::Flush(w) => waiters.push(w),
                Op::Set(r) => {
                    pending.insert(r.call_id.clone(), Op::Set(r));
                }
                Op::Del(id) => {
                    pending.insert(id.clone(), Op::Del(id));
                }
            }
        }
        if pending.is_empty() {
            continue;
        }
        let mut pipe = redis::pipe();
        for (key, op) in &pending {
            match op {
                Op::Set(r) => {
                    pipe.cmd("SET")
                        .arg(key)
                        .arg(r.to_json())
                        .arg("EX")
                        .arg(expires.as_secs().max(1))
                        .ignore();
                }
                Op::Del(_) => {
                    pipe.cmd("DEL").arg(key).ignore();
                }
                Op::Flush(_) => {}
            }
        }
        match pipe.query_async::<()>(&mut con).await {
            Ok(()) => {
                pending.clear();
                if failing {
                    failing = false;
                    tracing::info!("Redis writes succeed again");
                }
            }
            Err(e) => {
                if !failing {
                    failing = true;
                    tracing::error!(error = %e, pending = pending.len(), "Redis write failed: call changes are kept and retried");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstreams_address_syntax() {
        let t = RedisTarget::parse("127.0.0.1:6379/12", "RTPE_TEST_NO_SUCH_VAR").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.db, t.password.as_deref()),
            ("127.0.0.1", 6379, 12, None)
        );
        let t = RedisTarget::parse("s3cr@t@[::1]:6380/0", "X").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.db, t.password.as_deref()),
            ("::1", 6380, 0, Some("s3cr@t"))
        );
        assert_eq!(format!("{t}"), "[::1]:6380/0", "no password in logs");
        let t = RedisTarget::parse_subscribe("10.0.0.1:6379", "X").unwrap();
        assert_eq!((t.port, t.db), (6379, 0));
        let t = RedisTarget::parse_subscribe("pw@[::1]:6379/4", "X").unwrap();
        assert_eq!((t.port, t.db, t.password.as_deref()), (6379, 4, Some("pw")));
        for bad in [
            "127.0.0.1:6379",
            "127.0.0.1/1",
            "h:p/1",
            "h:1/x",
            ":1/1",
            "h:1/-1",
        ] {
            assert!(RedisTarget::parse(bad, "X").is_err(), "{bad}");
        }
    }
}
