//! Snapshots (DESIGN §5.6): consistent, verified copies of tables in a store, and
//! restores of them. PostgreSQL streams every table out of one exported snapshot with
//! parallel binary COPY, compressing and hashing chunks while the copy runs; SQLite
//! copies the whole file through the online backup API. A snapshot becomes visible
//! only when its manifest is written, after every chunk; it is never modified after.

mod store;
mod stream;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ripcord_core::audit::NewEvent;
use ripcord_core::snapshot::{
    Chunk, Manifest, RestorePlace, SNAPSHOT_FORMAT, StoredStream, SwapOutcome, TableDefinition,
    TableSnapshot, new_snapshot_id, page_ranges,
};
use ripcord_core::{EngineError, EngineKind};
use serde::Serialize;
use serde_json::json;

pub use store::Store;
use stream::{CHUNK_BYTES, COPY_TRAILER, ChunkReader, CopyRowCounter, open_chunk, seal_chunk};

use crate::error::OpError;
use crate::run::{append_event_in_own_tx, with_lock};
use crate::target::Target;

/// Where a snapshot's manifest lives.
fn manifest_object(id: &str) -> String {
    format!("{id}/manifest.json")
}

/// Progress of one table, for bars or JSON lines.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// `snapshot` or `restore`.
    pub operation: &'static str,
    /// The table (or `database` for a SQLite file).
    pub table: String,
    /// Raw bytes so far.
    pub bytes: u64,
    /// Rows so far (known at the end of a table).
    pub rows: u64,
    /// The table is complete.
    pub done: bool,
}

/// Receives [`Progress`] from the copying threads.
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A progress sink that ignores everything.
pub fn no_progress() -> ProgressSink {
    Arc::new(|_| {})
}

/// How to take a snapshot.
pub struct CreateOptions {
    /// Tables by name; empty means every user table.
    pub tables: Vec<String>,
    /// Why (`manual`, `before <change>`).
    pub label: String,
    /// Connections copying at once.
    pub parallel: usize,
    /// Progress.
    pub progress: ProgressSink,
    /// The change it protects, for the audit event.
    pub change: Option<String>,
}

/// A snapshot in a store, as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSummary {
    /// Its id.
    pub id: String,
    /// Why it was taken.
    pub label: String,
    /// The data's moment.
    pub data_as_of: DateTime<Utc>,
    /// When it was completed.
    pub created_at: DateTime<Utc>,
    /// Target it came from.
    pub target: String,
    /// Engine.
    pub engine: EngineKind,
    /// Tables.
    pub tables: Vec<String>,
    /// Rows over all tables.
    pub rows: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// The manifest's hash.
    pub manifest_hash: String,
}

impl From<&Manifest> for SnapshotSummary {
    fn from(m: &Manifest) -> Self {
        SnapshotSummary {
            id: m.id.clone(),
            label: m.label.clone(),
            data_as_of: m.data_as_of,
            created_at: m.created_at,
            target: m.target.clone(),
            engine: m.engine,
            tables: m
                .tables
                .iter()
                .map(|t| t.definition.display_name())
                .collect(),
            rows: m.total_rows(),
            stored_bytes: m.stored_bytes(),
            manifest_hash: m.manifest_hash.clone(),
        }
    }
}

/// Take a snapshot of `target` into `store` (holding the target's lock).
pub fn create(
    target: &mut Target,
    store: &Store,
    options: &CreateOptions,
) -> Result<SnapshotSummary, OpError> {
    with_lock(target, "snapshot create", |target| {
        create_locked(target, store, options)
    })
}

/// [`create`] for callers that hold the lock already (deploy).
pub(crate) fn create_locked(
    target: &mut Target,
    store: &Store,
    options: &CreateOptions,
) -> Result<SnapshotSummary, OpError> {
    let id = new_snapshot_id(Utc::now());
    let mut manifest = match target.engine.kind() {
        EngineKind::Postgres => create_streamed(target, store, &id, options)?,
        EngineKind::Sqlite => create_file_copy(target, store, &id, options)?,
    };
    manifest.seal();
    let bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    crate::failpoint::hit("snapshot_chunks_stored");
    store.put(&manifest_object(&id), bytes)?;
    let summary = SnapshotSummary::from(&manifest);
    append_event_in_own_tx(
        target,
        NewEvent {
            kind: "snapshot_completed",
            change: options.change.clone(),
            detail: json!({
                "snapshot": id,
                "store": store.uri(),
                "manifest_hash": manifest.manifest_hash,
                "tables": summary.tables,
                "rows": summary.rows,
                "stored_bytes": summary.stored_bytes,
                "data_as_of": manifest.data_as_of,
            }),
        },
    )?;
    Ok(summary)
}

/// Those of `names` that exist on the target now (a change may create the others).
pub fn existing_tables(
    target: &mut Target,
    names: impl IntoIterator<Item = String>,
) -> Result<Vec<String>, OpError> {
    let mut found = Vec::new();
    match target.engine.kind() {
        EngineKind::Postgres => {
            let mut snapshots = target.engine.snapshots().ok_or_else(unsupported)?;
            for name in names {
                match snapshots.live_definitions(std::slice::from_ref(&name)) {
                    Ok(_) => found.push(name),
                    Err(EngineError::Invalid { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        EngineKind::Sqlite => {
            let live: Vec<String> = target
                .engine
                .table_data()?
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            for name in names {
                let bare = name
                    .strip_prefix("main.")
                    .unwrap_or(&name)
                    .trim_matches('"')
                    .to_string();
                if live.contains(&bare) && !found.contains(&bare) {
                    found.push(bare);
                }
            }
        }
    }
    Ok(found)
}

fn new_manifest(target: &Target, id: &str, label: &str) -> Manifest {
    Manifest {
        format: SNAPSHOT_FORMAT,
        id: id.to_string(),
        engine: target.engine.kind(),
        target: format!("{} ({})", target.name, target.display_url),
        label: label.to_string(),
        created_by: target.identity.actor.clone(),
        host: target.identity.host.clone(),
        created_at: Utc::now(),
        data_as_of: Utc::now(),
        server_version: String::new(),
        lsn: None,
        tables: Vec::new(),
        file: None,
        manifest_hash: String::new(),
    }
}

/// Shared state of a multi-threaded copy: the first error stops everyone.
struct Stop {
    stopped: AtomicBool,
    first: Mutex<Option<OpError>>,
}

impl Stop {
    fn new() -> Stop {
        Stop {
            stopped: AtomicBool::new(false),
            first: Mutex::new(None),
        }
    }
    fn fail(&self, error: OpError) {
        let mut first = self.first.lock().unwrap();
        if first.is_none() {
            *first = Some(error);
        }
        self.stopped.store(true, Ordering::SeqCst);
    }
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
    fn into_result(self) -> Result<(), OpError> {
        match self.first.into_inner().unwrap() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

struct ChunkJob {
    stream: usize,
    index: usize,
    /// Directory of the stream's chunks inside the snapshot.
    dir: String,
    raw: Vec<u8>,
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Compress and store chunks arriving on a channel, with one thread per core, while
/// `produce` (given the sending side) reads the data.
fn store_chunks(
    store: &Store,
    id: &str,
    streams: usize,
    stop: &Stop,
    produce: impl FnOnce(std::sync::mpsc::SyncSender<ChunkJob>),
) -> Vec<StoredStream> {
    let (sender, receiver) = sync_channel::<ChunkJob>(cores() * 2);
    let receiver = Mutex::new(receiver);
    let chunks: Mutex<Vec<Vec<Option<Chunk>>>> = Mutex::new(vec![Vec::new(); streams]);
    std::thread::scope(|scope| {
        for _ in 0..cores() {
            scope.spawn(|| {
                loop {
                    let job = receiver.lock().unwrap().recv();
                    let Ok(job) = job else { break };
                    if stop.stopped() {
                        continue;
                    }
                    let object = format!("{id}/{}/{:06}.zst", job.dir, job.index);
                    let stored = seal_chunk(object.clone(), &job.raw)
                        .map_err(|e| OpError::Store {
                            store: store.uri().to_string(),
                            reason: format!("compressing {object}: {e}"),
                        })
                        .and_then(|(bytes, chunk)| store.put(&object, bytes).map(|()| chunk));
                    match stored {
                        Ok(chunk) => {
                            let mut all = chunks.lock().unwrap();
                            if all.len() <= job.stream {
                                all.resize(job.stream + 1, Vec::new());
                            }
                            let list = &mut all[job.stream];
                            if list.len() <= job.index {
                                list.resize(job.index + 1, None);
                            }
                            list[job.index] = Some(chunk);
                        }
                        Err(e) => stop.fail(e),
                    }
                }
            });
        }
        produce(sender);
    });
    chunks
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|list| StoredStream {
            rows: 0,
            chunks: list.into_iter().flatten().collect(),
        })
        .collect()
}

/// Splits a byte stream into chunk jobs.
struct Chunker<'a> {
    stream: usize,
    dir: String,
    next: usize,
    buffer: Vec<u8>,
    sender: &'a std::sync::mpsc::SyncSender<ChunkJob>,
}

impl Chunker<'_> {
    fn push(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let raw = std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_BYTES + (1 << 20)),
        );
        self.sender
            .send(ChunkJob {
                stream: self.stream,
                index: self.next,
                dir: self.dir.clone(),
                raw,
            })
            .map_err(|_| std::io::Error::other("the compressors stopped"))?;
        self.next += 1;
        Ok(())
    }
}

/// With several connections, tables of at least twice this many pages (8 kB each, so
/// 32 MB) are copied as page ranges of at least this size, in parallel.
const PART_PAGES: u64 = 2048;

/// Most page ranges per table.
const MAX_RANGES: usize = 8;

/// A copy stream is cut into parts of about this many bytes (at a row boundary), each
/// stored as a complete stream, so that restores load the parts in parallel.
const PART_BYTES: u64 = 32 << 20;

/// One stored part, as the copy threads report it.
struct PartRecord {
    table: usize,
    /// Order of the copy (page range) it came from, then order within it.
    order: (usize, usize),
    stream: usize,
    rows: u64,
}

fn create_streamed(
    target: &mut Target,
    store: &Store,
    id: &str,
    options: &CreateOptions,
) -> Result<Manifest, OpError> {
    let mut manifest = new_manifest(target, id, &options.label);
    let mut snapshots = target.engine.snapshots().ok_or_else(unsupported)?;
    let export = snapshots.begin_export(&options.tables)?;
    if export.tables.is_empty() {
        let _ = snapshots.end_export();
        return Err(EngineError::Invalid {
            reason: "there are no tables to snapshot".into(),
            hint: Some("create tables first, or name them with --tables".into()),
        }
        .into());
    }
    let parallel = options.parallel.max(1);
    // Copies: (table, range number, page range, table size). With one connection a
    // plain COPY of the whole table is fastest; with more, big tables are split into
    // page ranges so they copy in parallel. Big tables go first.
    let mut items = Vec::new();
    for (table, pages) in export.pages.iter().enumerate() {
        let ranges = if parallel == 1 {
            vec![None]
        } else {
            page_ranges(*pages, MAX_RANGES, PART_PAGES)
        };
        for (number, range) in ranges.into_iter().enumerate() {
            items.push((table, number, range, *pages));
        }
    }
    items.sort_by_key(|item| std::cmp::Reverse(item.3));
    let workers = (0..parallel.min(items.len()))
        .map(|_| snapshots.worker())
        .collect::<Result<Vec<_>, _>>();
    let workers = match workers {
        Ok(workers) => workers,
        Err(e) => {
            let _ = snapshots.end_export();
            return Err(e.into());
        }
    };
    let queue = Mutex::new(items.into_iter().collect::<VecDeque<_>>());
    let next_stream = std::sync::atomic::AtomicUsize::new(0);
    let parts: Mutex<Vec<PartRecord>> = Mutex::new(Vec::new());
    let stop = Stop::new();
    let streams = store_chunks(store, id, 0, &stop, |sender| {
        std::thread::scope(|scope| {
            for mut worker in workers {
                let sender = sender.clone();
                let (queue, parts, stop, export, next_stream) =
                    (&queue, &parts, &stop, &export, &next_stream);
                scope.spawn(move || {
                    while let Some((index, number, range, _)) = queue.lock().unwrap().pop_front() {
                        if stop.stopped() {
                            break;
                        }
                        let table = &export.tables[index];
                        let new_chunker = |sender| {
                            let stream = next_stream.fetch_add(1, Ordering::SeqCst);
                            Chunker {
                                stream,
                                dir: format!("t{index:03}/p{stream:03}"),
                                next: 0,
                                buffer: Vec::with_capacity(CHUNK_BYTES + (1 << 20)),
                                sender,
                            }
                        };
                        let mut counter = CopyRowCounter::default();
                        let mut chunker = new_chunker(&sender);
                        let mut cut = (0usize, 0u64, 0u64); // (part number, bytes, rows at cut)
                        let mut bytes = 0u64;
                        let mut reported = 0u64;
                        let copied = worker.copy_out(&export.token, table, range, &mut |data| {
                            if stop.stopped() {
                                return Err(std::io::Error::other("stopped"));
                            }
                            counter.feed(data);
                            bytes += data.len() as u64;
                            chunker.push(data)?;
                            if bytes - cut.1 >= PART_BYTES && counter.at_tuple_boundary() {
                                chunker.push(&COPY_TRAILER)?;
                                chunker.flush()?;
                                parts.lock().unwrap().push(PartRecord {
                                    table: index,
                                    order: (number, cut.0),
                                    stream: chunker.stream,
                                    rows: counter.rows() - cut.2,
                                });
                                cut = (cut.0 + 1, bytes, counter.rows());
                                chunker = new_chunker(&sender);
                                chunker.push(counter.header())?;
                            }
                            if bytes - reported >= 64 << 20 {
                                reported = bytes;
                                (options.progress)(&Progress {
                                    operation: "snapshot",
                                    table: table.display_name(),
                                    bytes,
                                    rows: counter.rows(),
                                    done: false,
                                });
                            }
                            Ok(())
                        });
                        let copied = copied.and_then(|()| {
                            if counter.finished() {
                                Ok(())
                            } else {
                                Err(EngineError::ConnectionLost {
                                    reason: format!(
                                        "the copy of {} ended early",
                                        table.display_name()
                                    ),
                                })
                            }
                        });
                        let flushed = copied.map_err(OpError::from).and_then(|()| {
                            chunker.flush().map_err(|e| OpError::Store {
                                store: "compressor".into(),
                                reason: e.to_string(),
                            })
                        });
                        if let Err(e) = flushed {
                            stop.fail(e);
                            break;
                        }
                        parts.lock().unwrap().push(PartRecord {
                            table: index,
                            order: (number, cut.0),
                            stream: chunker.stream,
                            rows: counter.rows() - cut.2,
                        });
                        (options.progress)(&Progress {
                            operation: "snapshot",
                            table: table.display_name(),
                            bytes,
                            rows: counter.rows(),
                            done: true,
                        });
                    }
                });
            }
            drop(sender);
        });
    });
    let ended = snapshots.end_export();
    drop(snapshots);
    stop.into_result()?;
    ended?;
    let mut streams: Vec<Option<StoredStream>> = streams.into_iter().map(Some).collect();
    let mut parts = parts.into_inner().unwrap();
    parts.sort_by_key(|p| (p.table, p.order));
    manifest.server_version = export.server_version.clone();
    manifest.lsn = export.lsn.clone();
    manifest.data_as_of = export.at;
    manifest.tables = export
        .tables
        .into_iter()
        .enumerate()
        .map(|(index, definition)| {
            let parts: Vec<StoredStream> = parts
                .iter()
                .filter(|p| p.table == index)
                .map(|p| {
                    let mut data = streams
                        .get_mut(p.stream)
                        .and_then(Option::take)
                        .unwrap_or_default();
                    data.rows = p.rows;
                    data
                })
                .collect();
            TableSnapshot {
                definition,
                rows: parts.iter().map(|p| p.rows).sum(),
                parts,
            }
        })
        .collect();
    manifest.created_at = Utc::now();
    Ok(manifest)
}

fn unsupported() -> OpError {
    EngineError::Invalid {
        reason: "parallel table snapshots are not available on this engine".into(),
        hint: None,
    }
    .into()
}

/// SQLite: the whole database through the online backup API into a temporary file,
/// then compressed in chunks.
fn create_file_copy(
    target: &mut Target,
    store: &Store,
    id: &str,
    options: &CreateOptions,
) -> Result<Manifest, OpError> {
    let mut manifest = new_manifest(target, id, &options.label);
    let scratch = tempfile::tempdir().map_err(|e| local_io("creating a temporary directory", e))?;
    let copy_path = scratch.path().join("copy.sqlite");
    let data_as_of = Utc::now();
    let mut copy = crate::target::connect(
        "copy",
        &format!("sqlite://{}", copy_path.display()),
        scratch.path(),
    )?;
    copy.engine.copy_from(&target.url)?;
    let counts = copy.engine.table_data()?;
    drop(copy);
    let definitions: Vec<TableDefinition> =
        counts.iter().map(|(name, _)| sqlite_table(name)).collect();
    let wanted: Vec<&TableDefinition> = definitions
        .iter()
        .filter(|d| {
            options.tables.is_empty()
                || options
                    .tables
                    .iter()
                    .any(|t| t == &d.name || t == &d.display_name())
        })
        .collect();
    for name in &options.tables {
        if !definitions
            .iter()
            .any(|d| name == &d.name || name == &d.display_name())
        {
            return Err(EngineError::Invalid {
                reason: format!("no table named {name}"),
                hint: Some("`ripcord snapshot create --all` takes every table".into()),
            }
            .into());
        }
    }
    let file = std::fs::File::open(&copy_path).map_err(|e| local_io("reading the copy", e))?;
    let stop = Stop::new();
    let mut streams = store_chunks(store, id, 1, &stop, |sender| {
        let mut chunker = Chunker {
            stream: 0,
            dir: "database".into(),
            next: 0,
            buffer: Vec::new(),
            sender: &sender,
        };
        let mut reader = std::io::BufReader::new(file);
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            match std::io::Read::read(&mut reader, &mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if let Err(e) = chunker.push(&buffer[..n]) {
                        stop.fail(local_io("compressing the copy", e));
                        break;
                    }
                }
                Err(e) => {
                    stop.fail(local_io("reading the copy", e));
                    break;
                }
            }
        }
        if let Err(e) = chunker.flush() {
            stop.fail(local_io("compressing the copy", e));
        }
    });
    stop.into_result()?;
    manifest.server_version = format!("SQLite {}", ripcord_sqlite_version());
    manifest.data_as_of = data_as_of;
    manifest.file = streams.pop();
    manifest.tables = wanted
        .into_iter()
        .map(|definition| TableSnapshot {
            rows: counts
                .iter()
                .find(|(name, _)| name == &definition.name || name == &definition.display_name())
                .map(|(_, data)| data.rows as u64)
                .unwrap_or(0),
            definition: definition.clone(),
            parts: Vec::new(),
        })
        .collect();
    manifest.created_at = Utc::now();
    Ok(manifest)
}

fn sqlite_table(name: &str) -> TableDefinition {
    TableDefinition {
        schema: "main".into(),
        name: name.to_string(),
        qualified: ripcord_core::snapshot::quote_ident(name),
        quoted_name: ripcord_core::snapshot::quote_ident(name),
        columns: Vec::new(),
        constraints: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        triggers: Vec::new(),
        grants: Vec::new(),
        owner: None,
        sequences: Vec::new(),
        create_sql: None,
        extras: Default::default(),
        partition_by: None,
        partition_of: None,
    }
}

fn ripcord_sqlite_version() -> &'static str {
    ripcord_sqlite::sqlite_version()
}

fn local_io(what: &str, e: std::io::Error) -> OpError {
    OpError::Store {
        store: "local".into(),
        reason: format!("{what}: {e}"),
    }
}

/// Read and check a manifest.
pub fn manifest(store: &Store, id: &str) -> Result<Manifest, OpError> {
    let Some(bytes) = store.get(&manifest_object(id))? else {
        return Err(OpError::UnknownSnapshot {
            id: id.to_string(),
            store: store.uri().to_string(),
        });
    };
    Manifest::parse(&bytes).map_err(|reason| OpError::SnapshotDamaged {
        id: id.to_string(),
        reason,
    })
}

/// Complete snapshots in `store`, oldest first.
pub fn list(store: &Store) -> Result<Vec<SnapshotSummary>, OpError> {
    let mut out = Vec::new();
    for id in store.top_level()? {
        if store.get(&manifest_object(&id))?.is_none() {
            continue; // not published: a create still running, or killed
        }
        out.push(SnapshotSummary::from(&manifest(store, &id)?));
    }
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}

/// What `verify` checked.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The snapshot.
    pub id: String,
    /// Chunks read, decompressed and hashed.
    pub chunks: usize,
    /// Raw bytes checked.
    pub raw_bytes: u64,
    /// Rows the manifest records.
    pub rows: u64,
}

fn all_chunks(manifest: &Manifest) -> Vec<&Chunk> {
    manifest
        .tables
        .iter()
        .flat_map(|t| t.parts.iter().flat_map(|p| p.chunks.iter()))
        .chain(manifest.file.iter().flat_map(|f| f.chunks.iter()))
        .collect()
}

/// Re-read, decompress and re-hash every chunk; the first bad chunk is named.
pub fn verify(store: &Store, id: &str) -> Result<VerifyReport, OpError> {
    let manifest = manifest(store, id)?;
    let chunks = all_chunks(&manifest);
    let next = Mutex::new(0usize);
    let bad: Mutex<Vec<(usize, OpError)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..cores() {
            scope.spawn(|| {
                loop {
                    let index = {
                        let mut next = next.lock().unwrap();
                        *next += 1;
                        *next - 1
                    };
                    let Some(chunk) = chunks.get(index) else {
                        break;
                    };
                    if let Err(e) = check_chunk(store, &manifest.id, chunk) {
                        bad.lock().unwrap().push((index, e));
                    }
                }
            });
        }
    });
    let mut bad = bad.into_inner().unwrap();
    bad.sort_by_key(|(index, _)| *index);
    if let Some((_, e)) = bad.into_iter().next() {
        return Err(e);
    }
    Ok(VerifyReport {
        id: manifest.id.clone(),
        chunks: chunks.len(),
        raw_bytes: chunks.iter().map(|c| c.raw_bytes).sum(),
        rows: manifest.total_rows(),
    })
}

fn check_chunk(store: &Store, id: &str, chunk: &Chunk) -> Result<Vec<u8>, OpError> {
    let damaged = |reason: String| OpError::SnapshotDamaged {
        id: id.to_string(),
        reason,
    };
    let stored = store
        .get(&chunk.object)?
        .ok_or_else(|| damaged(format!("chunk {} is missing", chunk.object)))?;
    open_chunk(chunk, &stored).map_err(damaged)
}

/// How to restore.
pub struct RestoreOptions {
    /// Tables by name; empty means all of the snapshot's.
    pub tables: Vec<String>,
    /// Leave the restored tables in a schema of their own instead of swapping them in.
    pub as_new_tables: bool,
    /// Restore under the original names into a database that lacks them.
    pub into_other_database: bool,
    /// Connections loading at once.
    pub parallel: usize,
    /// Progress.
    pub progress: ProgressSink,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The snapshot.
    pub id: String,
    /// Tables restored, with rows.
    pub tables: Vec<(String, u64)>,
    /// Where they are: `swapped in`, the schema of new tables, or `into`.
    pub placed: String,
    /// Where the replaced tables (or rows) are kept.
    pub vault: Option<String>,
    /// Foreign keys re-pointed at restored tables.
    pub repointed_foreign_keys: Vec<String>,
    /// Foreign keys left NOT VALID because rows violate them.
    pub unvalidated_foreign_keys: Vec<String>,
    /// Captured tables whose capture continues on the restored table.
    pub capture_reattached: Vec<String>,
}

/// Restore snapshot `id` into `target`: load into staging tables while checking every
/// chunk, then swap in (PostgreSQL) or replace rows (SQLite). The replaced tables are
/// kept in a vault; a damaged snapshot changes nothing.
pub fn restore(
    target: &mut Target,
    store: &Store,
    id: &str,
    options: &RestoreOptions,
) -> Result<RestoreReport, OpError> {
    with_lock(target, "snapshot restore", |target| {
        // Every chunk's hash is checked before its bytes reach the database, and
        // nothing is swapped in unless every chunk passed: no separate verify pass.
        let manifest = manifest(store, id)?;
        if manifest.engine != target.engine.kind() {
            return Err(EngineError::Invalid {
                reason: format!(
                    "snapshot {id} is of a {:?} database; the target is {:?}",
                    manifest.engine,
                    target.engine.kind()
                ),
                hint: None,
            }
            .into());
        }
        let selected = select_tables(&manifest, &options.tables)?;
        let report = match manifest.engine {
            EngineKind::Postgres => restore_streamed(target, store, &manifest, &selected, options)?,
            EngineKind::Sqlite => restore_file_copy(target, store, &manifest, &selected, options)?,
        };
        append_event_in_own_tx(
            target,
            NewEvent {
                kind: "snapshot_restored",
                change: None,
                detail: json!({
                    "snapshot": id,
                    "manifest_hash": manifest.manifest_hash,
                    "tables": report.tables,
                    "placed": report.placed,
                    "vault": report.vault,
                }),
            },
        )?;
        Ok(report)
    })
}

fn select_tables<'m>(
    manifest: &'m Manifest,
    names: &[String],
) -> Result<Vec<&'m TableSnapshot>, OpError> {
    if names.is_empty() {
        return Ok(manifest.tables.iter().collect());
    }
    let named: Vec<&TableSnapshot> = names
        .iter()
        .map(|name| {
            manifest
                .tables
                .iter()
                .find(|t| &t.definition.display_name() == name || &t.definition.name == name)
                .ok_or_else(|| {
                    EngineError::Invalid {
                        reason: format!("snapshot {} has no table {name}", manifest.id),
                        hint: Some(format!(
                            "it has: {}",
                            manifest
                                .tables
                                .iter()
                                .map(|t| t.definition.display_name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    }
                    .into()
                })
        })
        .collect::<Result<_, OpError>>()?;
    // A partitioned table is restored whole: with every partition under it.
    let named_tables: Vec<String> = named
        .iter()
        .map(|t| t.definition.qualified.clone())
        .collect();
    let mut selected: Vec<&TableSnapshot> = Vec::new();
    for table in named {
        if let Some(of) = &table.definition.partition_of
            && !ancestors(manifest, &table.definition)
                .iter()
                .any(|a| named_tables.contains(a))
        {
            return Err(EngineError::Invalid {
                reason: format!(
                    "{} is a partition of {}; a restore takes a partitioned table whole",
                    table.definition.display_name(),
                    of.parent
                ),
                hint: Some(format!("name {}: its partitions come with it", of.parent)),
            }
            .into());
        }
        let mut family = vec![table.definition.qualified.clone()];
        let mut index = 0;
        while index < family.len() {
            for child in &manifest.tables {
                if child
                    .definition
                    .partition_of
                    .as_ref()
                    .is_some_and(|of| of.parent == family[index])
                    && !family.contains(&child.definition.qualified)
                {
                    family.push(child.definition.qualified.clone());
                }
            }
            index += 1;
        }
        for member in manifest
            .tables
            .iter()
            .filter(|t| family.contains(&t.definition.qualified))
        {
            if !selected.iter().any(|s| std::ptr::eq(*s, member)) {
                selected.push(member);
            }
        }
    }
    Ok(selected)
}

/// The partitioned tables `table` is (indirectly) a partition of, nearest first.
fn ancestors(manifest: &Manifest, table: &TableDefinition) -> Vec<String> {
    let mut out = Vec::new();
    let mut of = table.partition_of.as_ref();
    while let Some(parent) = of {
        if out.contains(&parent.parent) {
            break;
        }
        out.push(parent.parent.clone());
        of = manifest
            .tables
            .iter()
            .find(|t| t.definition.qualified == parent.parent)
            .and_then(|t| t.definition.partition_of.as_ref());
    }
    out
}

/// `ripcord_restore_<id>`: a name PostgreSQL accepts unquoted.
fn staging_schema(id: &str) -> String {
    format!("ripcord_restore_{}", id.to_lowercase().replace('-', "_"))
}

/// Run `work` on every item of `items` with one thread per worker; the first error
/// stops the rest.
fn in_parallel<W: Send, I: Send + Sync>(
    workers: &mut [W],
    items: &[I],
    stop: &Stop,
    work: impl Fn(&mut W, &I) -> Result<(), OpError> + Sync,
) {
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for worker in workers.iter_mut() {
            let (next, work) = (&next, &work);
            scope.spawn(move || {
                loop {
                    let index = {
                        let mut next = next.lock().unwrap();
                        *next += 1;
                        *next - 1
                    };
                    let Some(item) = items.get(index) else { break };
                    if stop.stopped() {
                        break;
                    }
                    if let Err(e) = work(worker, item) {
                        stop.fail(e);
                        break;
                    }
                }
            });
        }
    });
}

/// Stream one stored part into `load`, checking each chunk's hash before its bytes go
/// on: damage stops the load before anything is swapped in.
fn feed_part<T>(
    store: &Store,
    id: &str,
    part: &StoredStream,
    load: impl FnOnce(&mut ChunkReader) -> T,
) -> T {
    let (sender, receiver) = sync_channel(2);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for chunk in &part.chunks {
                let raw = check_chunk(store, id, chunk).map_err(|e| e.to_string());
                let failed = raw.is_err();
                if sender.send(raw).is_err() || failed {
                    break;
                }
            }
        });
        let mut reader = ChunkReader {
            chunks: receiver,
            current: Vec::new(),
            at: 0,
        };
        load(&mut reader)
    })
}

fn restore_streamed(
    target: &mut Target,
    store: &Store,
    manifest: &Manifest,
    tables: &[&TableSnapshot],
    options: &RestoreOptions,
) -> Result<RestoreReport, OpError> {
    let staging = staging_schema(&manifest.id);
    let place = RestorePlace::Staging {
        schema: staging.clone(),
    };
    let definitions: Vec<TableDefinition> = tables.iter().map(|t| t.definition.clone()).collect();
    let mut snapshots = target.engine.snapshots().ok_or_else(unsupported)?;
    if options.into_other_database {
        for table in tables {
            if snapshots
                .live_definitions(std::slice::from_ref(&table.definition.qualified))
                .is_ok()
            {
                return Err(EngineError::Invalid {
                    reason: format!(
                        "{} already exists in the database to restore into",
                        table.definition.display_name()
                    ),
                    hint: Some(
                        "restore into an empty database, or drop the table there first".into(),
                    ),
                }
                .into());
            }
        }
    }
    let multi_part: Vec<TableDefinition> = tables
        .iter()
        .filter(|t| t.parts.len() > 1)
        .map(|t| t.definition.clone())
        .collect();
    snapshots.prepare_place(&place, &multi_part)?;
    let parts: Vec<(usize, &StoredStream)> = tables
        .iter()
        .enumerate()
        .flat_map(|(index, table)| table.parts.iter().map(move |part| (index, part)))
        .collect();
    let mut workers = (0..options.parallel.clamp(1, parts.len().max(1)))
        .map(|_| snapshots.worker())
        .collect::<Result<Vec<_>, _>>()?;
    let stop = Stop::new();
    let loaded_rows = Mutex::new(vec![0u64; tables.len()]);
    in_parallel(&mut workers, &parts, &stop, |worker, (index, part)| {
        let table = tables[*index];
        let rows = feed_part(store, &manifest.id, part, |reader| {
            worker.load_part(&place, &table.definition, reader, table.parts.len() == 1)
        })
        .map_err(|e| match e {
            // A damaged chunk surfaces as a read error inside the COPY.
            EngineError::Invalid { reason, .. } if reason.contains("chunk ") => {
                OpError::SnapshotDamaged {
                    id: manifest.id.clone(),
                    reason,
                }
            }
            other => other.into(),
        })?;
        if rows != part.rows {
            return Err(OpError::SnapshotDamaged {
                id: manifest.id.clone(),
                reason: format!(
                    "a part of {} loaded {rows} rows, the manifest says {}",
                    table.definition.display_name(),
                    part.rows
                ),
            });
        }
        let total = {
            let mut loaded = loaded_rows.lock().unwrap();
            loaded[*index] += rows;
            loaded[*index]
        };
        (options.progress)(&Progress {
            operation: "restore",
            table: table.definition.display_name(),
            bytes: part.raw_bytes(),
            rows: total,
            done: total == table.rows,
        });
        Ok(())
    });
    crate::failpoint::hit("restore_tables_loaded");
    let indexes: Vec<usize> = (0..tables.len()).collect();
    if let Err(e) = stop.into_result() {
        // Workers first: a failed COPY holds its table until its session ends.
        drop(workers);
        let _ = snapshots.drop_schema(&staging);
        return Err(e);
    }
    // Keys of every table first (largest first), then every index, then the rest:
    // the largest builds start early and the workers stay busy to the end.
    let mut steps: Vec<(usize, usize, u8)> = Vec::new();
    for index in indexes {
        let count = workers
            .first()
            .map_or(1, |w| w.finish_steps(&tables[index].definition));
        for step in 0..count {
            let phase = if step == 0 {
                0
            } else if step + 1 == count {
                2
            } else {
                1
            };
            steps.push((index, step, phase));
        }
    }
    steps.sort_by_key(|&(index, _, phase)| (phase, std::cmp::Reverse(tables[index].rows)));
    let stop = Stop::new();
    in_parallel(&mut workers, &steps, &stop, |worker, &(index, step, _)| {
        worker.finish(&place, &tables[index].definition, step)?;
        Ok(())
    });
    drop(workers);
    if let Err(e) = stop
        .into_result()
        .and_then(|()| Ok(snapshots.attach_partitions(&place, &definitions)?))
    {
        let _ = snapshots.drop_schema(&staging);
        return Err(e);
    }
    crate::failpoint::hit("restore_indexes_built");
    let restored = tables
        .iter()
        .map(|t| (t.definition.display_name(), t.rows))
        .collect();
    if options.as_new_tables {
        return Ok(RestoreReport {
            id: manifest.id.clone(),
            tables: restored,
            placed: staging,
            vault: None,
            repointed_foreign_keys: Vec::new(),
            unvalidated_foreign_keys: Vec::new(),
            capture_reattached: Vec::new(),
        });
    }
    let vault = format!("ripcord_vault_{}", Utc::now().format("%Y%m%d%H%M%S%3f"));
    let swapped: Result<SwapOutcome, EngineError> =
        snapshots.swap_in(&staging, &definitions, &vault);
    let outcome = match swapped {
        Ok(outcome) => outcome,
        Err(e) => {
            let _ = snapshots.drop_schema(&staging);
            return Err(e.into());
        }
    };
    Ok(RestoreReport {
        id: manifest.id.clone(),
        tables: restored,
        placed: if options.into_other_database {
            "into".into()
        } else {
            "swapped in".into()
        },
        vault: (!outcome.vault_schema.is_empty()).then_some(outcome.vault_schema),
        repointed_foreign_keys: outcome.repointed_foreign_keys,
        unvalidated_foreign_keys: outcome.unvalidated_foreign_keys,
        capture_reattached: outcome.capture_reattached,
    })
}

/// Write the database file a SQLite snapshot holds to `path`, checking every chunk.
pub fn write_file_copy(store: &Store, id: &str, path: &std::path::Path) -> Result<(), OpError> {
    let manifest = manifest(store, id)?;
    let mut file = std::fs::File::create(path).map_err(|e| local_io("writing the copy", e))?;
    for chunk in manifest.file.iter().flat_map(|f| f.chunks.iter()) {
        let raw = check_chunk(store, &manifest.id, chunk)?;
        std::io::Write::write_all(&mut file, &raw).map_err(|e| local_io("writing the copy", e))?;
    }
    std::io::Write::flush(&mut file).map_err(|e| local_io("writing the copy", e))
}

fn restore_file_copy(
    target: &mut Target,
    store: &Store,
    manifest: &Manifest,
    tables: &[&TableSnapshot],
    options: &RestoreOptions,
) -> Result<RestoreReport, OpError> {
    if options.as_new_tables {
        return Err(EngineError::Invalid {
            reason: "--as-new-tables is not available for SQLite snapshots".into(),
            hint: Some(
                "restore into another database file instead: --into sqlite://restored.db".into(),
            ),
        }
        .into());
    }
    let scratch = tempfile::tempdir().map_err(|e| local_io("creating a temporary directory", e))?;
    let copy_path = scratch.path().join("copy.sqlite");
    let mut file =
        std::fs::File::create(&copy_path).map_err(|e| local_io("writing the copy", e))?;
    for chunk in manifest.file.iter().flat_map(|f| f.chunks.iter()) {
        let raw = check_chunk(store, &manifest.id, chunk)?;
        std::io::Write::write_all(&mut file, &raw).map_err(|e| local_io("writing the copy", e))?;
    }
    std::io::Write::flush(&mut file).map_err(|e| local_io("writing the copy", e))?;
    drop(file);
    let names: Vec<String> = tables.iter().map(|t| t.definition.name.clone()).collect();
    let suffix = format!("_{}", Utc::now().format("%Y%m%d%H%M%S"));
    let vaulted =
        target
            .engine
            .restore_from_copy(&copy_path.display().to_string(), &names, &suffix)?;
    Ok(RestoreReport {
        id: manifest.id.clone(),
        tables: tables
            .iter()
            .map(|t| (t.definition.display_name(), t.rows))
            .collect(),
        placed: "rows replaced".into(),
        vault: (!vaulted.is_empty()).then(|| vaulted.join(", ")),
        repointed_foreign_keys: Vec::new(),
        unvalidated_foreign_keys: Vec::new(),
        capture_reattached: Vec::new(),
    })
}

/// What `prune` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Snapshots deleted.
    pub removed: Vec<String>,
    /// Unpublished leftovers of killed creates deleted.
    pub leftovers: Vec<String>,
    /// Vault schemas of earlier restores dropped.
    pub vaults: Vec<String>,
}

/// How long an unpublished snapshot must sit untouched before prune treats it as left
/// by a killed create rather than one still running.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// Delete snapshots beyond the newest `keep`, or older than `older_than`; also
/// leftovers of killed creates, and (with a target) restore vaults older than
/// `older_than`.
pub fn prune(
    store: &Store,
    target: Option<&mut Target>,
    keep: Option<usize>,
    older_than: Option<Duration>,
) -> Result<PruneReport, OpError> {
    let mut report = PruneReport::default();
    let now = Utc::now();
    let cutoff =
        older_than.map(|d| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX));
    let snapshots = list(store)?;
    let keep_from = keep.map(|k| snapshots.len().saturating_sub(k));
    for (index, snapshot) in snapshots.iter().enumerate() {
        let by_count = keep_from.is_some_and(|from| index < from);
        let by_age = cutoff.is_some_and(|c| snapshot.data_as_of < c);
        if by_count || by_age {
            // The manifest goes first: a half-deleted snapshot is never listed.
            store.delete(&manifest_object(&snapshot.id))?;
            for object in store.list(&snapshot.id)? {
                store.delete(&object.name)?;
            }
            store.tidy(&snapshot.id);
            report.removed.push(snapshot.id.clone());
        }
    }
    for id in store.top_level()? {
        if store.get(&manifest_object(&id))?.is_some() {
            continue;
        }
        let objects = store.list(&id)?;
        if objects.is_empty() {
            store.tidy(&id);
            continue;
        }
        let newest = objects.iter().map(|o| o.modified).max();
        if newest.is_none_or(|t| now - t > chrono::Duration::from_std(LEFTOVER_AGE).unwrap()) {
            for object in objects {
                store.delete(&object.name)?;
            }
            store.tidy(&id);
            report.leftovers.push(id);
        }
    }
    if let (Some(target), Some(cutoff)) = (target, cutoff)
        && target.engine.kind() == EngineKind::Postgres
    {
        report.vaults = with_lock(target, "snapshot prune", |target| {
            let mut snapshots = target.engine.snapshots().ok_or_else(unsupported)?;
            let mut dropped = Vec::new();
            for schema in snapshots.vault_schemas()? {
                let stamp = schema.trim_start_matches("ripcord_vault_");
                let made = chrono::NaiveDateTime::parse_from_str(
                    &stamp[..stamp.len().min(14)],
                    "%Y%m%d%H%M%S",
                )
                .map(|t| t.and_utc());
                if made.is_ok_and(|t| t < cutoff) {
                    snapshots.drop_schema(&schema)?;
                    dropped.push(schema);
                }
            }
            Ok(dropped)
        })?;
    }
    Ok(report)
}
