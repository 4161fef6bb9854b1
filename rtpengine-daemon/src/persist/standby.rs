//! Following another daemon's calls as a standby: Redis keyspace
//! notifications (`__keyspace@<db>__:<call-id>`) of the databases given with
//! `--subscribe-keyspace`, as upstream.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;

use super::{Persist, RedisTarget};
use crate::call::Calls;
use crate::server::dispatch::Control;

/// What the notifications must carry: keyspace events (`K`) for string
/// commands (`$`: SET), generic ones (`g`: DEL) and expiries (`x`).
const NOTIFY_EVENTS: &str = "K$gx";

/// Follows the keyspaces `dbs` of `target` until the task is dropped,
/// reconnecting after errors.
pub async fn follow_keyspaces(
    persist: Arc<Persist>,
    control: Arc<Control>,
    calls: Arc<Calls>,
    target: RedisTarget,
    dbs: Vec<i64>,
) {
    let mut failing = false;
    loop {
        match subscribe(&persist, &control, &calls, &target, &dbs).await {
            Ok(()) => {
                tracing::warn!(redis = %target, "Redis keyspace subscription ended; subscribing again")
            }
            Err(e) if !failing => {
                tracing::error!(redis = %target, error = %format!("{e:#}"), "Following Redis keyspace notifications failed; retrying");
            }
            Err(_) => {}
        }
        failing = true;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn subscribe(
    persist: &Arc<Persist>,
    control: &Control,
    calls: &Calls,
    target: &RedisTarget,
    dbs: &[i64],
) -> anyhow::Result<()> {
    let client = target.client()?;
    // Best effort, as upstream: a managed Redis may refuse CONFIG (then it
    // must be configured there).
    if let Ok(mut con) = client.get_multiplexed_async_connection().await {
        let set: redis::RedisResult<()> = redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg(NOTIFY_EVENTS)
            .query_async(&mut con)
            .await;
        if let Err(e) = set {
            tracing::warn!(error = %e, "Could not enable Redis keyspace notifications (CONFIG SET notify-keyspace-events {NOTIFY_EVENTS})");
        }
    }
    let mut pubsub = client.get_async_pubsub().await?;
    for db in dbs {
        pubsub.psubscribe(format!("__keyspace@{db}__:*")).await?;
    }
    tracing::info!(redis = %target, keyspaces = ?dbs, "Following another daemon's calls (standby)");
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        let channel = msg.get_channel_name();
        let Some(call_id) = channel
            .strip_prefix("__keyspace@")
            .and_then(|rest| rest.split_once("__:"))
            .map(|(_, key)| key.to_owned())
        else {
            continue;
        };
        let event: String = msg.get_payload().unwrap_or_default();
        match event.as_str() {
            "set" => sync(persist, control, calls, &call_id).await,
            "del" | "expired" => drop_foreign(persist, calls, &call_id),
            _ => {}
        }
    }
    Ok(())
}

/// The owner stored call `call_id`: replay what is new of its journal here
/// (all of it for a call not seen yet). Own calls are left alone.
async fn sync(persist: &Arc<Persist>, control: &Control, calls: &Calls, call_id: &str) {
    let known = persist.foreign().get(call_id).copied();
    let exists = calls.with_call_mut(call_id, |c| c.ports.len());
    let (from, ports_from) = match (known, exists) {
        (Some(n), Some(ports)) => (n, ports),
        (None, None) => (0, 0),
        // Ours (it exists here and is not foreign): our own write echoed.
        (None, Some(_)) => return,
        // Dropped here meanwhile: start over.
        (Some(_), None) => (0, 0),
    };
    let record = match persist.store.get(call_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(%call_id, error = %format!("{e:#}"), "Reading a foreign call from Redis failed");
            return;
        }
    };
    if record.journal.len() < from {
        tracing::warn!(%call_id, "A foreign call's journal shrank; following it anew");
        drop_foreign(persist, calls, call_id);
        return;
    }
    super::restore::replay(control, calls, &record, from, ports_from).await;
    persist.follow(calls, call_id, record.journal.len());
    tracing::debug!(%call_id, entries = record.journal.len() - from, "Foreign call updated");
}

/// The owner deleted call `call_id` (or it expired): drop our copy. It
/// ends as foreign (so nothing is deleted from Redis for it), counted as
/// ended by the operator.
fn drop_foreign(persist: &Persist, calls: &Calls, call_id: &str) {
    let foreign = persist.foreign().contains_key(call_id);
    if foreign {
        // Dropping the calls closes their sockets.
        drop(calls.terminate(Some(call_id)));
        persist.foreign().remove(call_id);
        tracing::debug!(%call_id, "Foreign call deleted by its owner");
    }
}
