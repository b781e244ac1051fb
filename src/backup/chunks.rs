//! Content-addressed chunk store of the `directory` target.
//!
//! A stored file is cut into [`CHUNK_SIZE`] blocks, each kept once under its SHA-256, so storing
//! an unchanged file again writes nothing new. Layout under the store's root:
//!
//! - `chunks/<first 2 hex>/<64 hex>`: a chunk's raw bytes; an existing chunk is not rewritten.
//! - index files at paths the caller chooses (e.g. `backups/<id>/disk-flat.vmdk.index`): text,
//!   one chunk hash per line, in file order.
//! - `<name>.tmp-<32 hex>`: a file being written; [`ChunkStore::collect_garbage`] removes
//!   those left by an interrupted run.
//!
//! Every file is written atomically (temporary file in the same directory, write, fsync,
//! rename). Storing runs in constant memory: the input is re-blocked into chunks that are
//! hashed and written by a bounded set of blocking workers while the next ones are read, and
//! the index is written line by line.
//!
//! Garbage collection must not run while something is being stored in the same store: a chunk
//! that a running [`ChunkStore::store`] found already present would be deleted under it.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Buf, Bytes, BytesMut};
use futures::stream::{self, FuturesOrdered, Stream, StreamExt, TryStreamExt};
use ring::digest::{Context, SHA256, SHA256_OUTPUT_LEN};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// Size of every chunk but a file's last one (which may be shorter).
pub const CHUNK_SIZE: usize = 4 * 1024 * 1024;

/// The folder of the chunks under the root.
const CHUNKS_DIR: &str = "chunks";
/// Chunks held by writers until their data is in the page cache; with [`HASH_QUEUE`] and the
/// block being filled this bounds the chunks held in memory while storing.
const CHUNK_BUFFERS: usize = 4;
/// Chunks being stored at once: most wait in fsync, which holds no buffer, so many fsyncs
/// overlap (and share the file system's journal commits).
const CHUNKS_IN_FLIGHT: usize = 16;
/// Chunks waiting for the whole-file hash.
const HASH_QUEUE: usize = 2;
/// Chunks read (and checked) ahead of the consumer by `read` and `verify`.
const READ_AHEAD: usize = 2;
/// What separates a temporary file's final name from its random suffix.
const TEMP_MARKER: &str = ".tmp-";

/// A chunk's SHA-256.
type ChunkHash = [u8; SHA256_OUTPUT_LEN];

/// A directory of content-addressed chunks and the indexes that list them.
#[derive(Debug, Clone)]
pub struct ChunkStore {
    root: PathBuf,
}

/// What [`ChunkStore::store`] stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// Bytes in the file.
    pub size: u64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    /// Chunks the index lists.
    pub chunks: u64,
    /// Chunks that were not in the store before.
    pub new_chunks: u64,
    /// Bytes of the new chunks.
    pub new_bytes: u64,
    /// The index's path relative to the root.
    pub index: String,
}

/// What [`ChunkStore::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    /// Empty when the file is intact.
    pub problems: Vec<ChunkProblem>,
}

/// One thing wrong with a stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkProblem {
    /// Chunk number in the file, from 0. For a problem of the whole file (its length or
    /// SHA-256), the number of chunks the index lists.
    pub position: u64,
    /// The chunk's hash as the index lists it; empty for a problem of the whole file.
    pub chunk: String,
    /// What is wrong: `missing`, `content hash is X`, `file is N bytes, expected M`, ...
    pub problem: String,
}

/// What [`ChunkStore::collect_garbage`] freed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    pub chunks_removed: u64,
    /// Bytes of the removed chunks and temporary files.
    pub bytes_freed: u64,
    pub temp_files_removed: u64,
}

/// Failures of the chunk store.
#[derive(Debug, thiserror::Error)]
pub enum ChunkStoreError {
    /// A file or directory of the store could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An index line is not a chunk hash.
    #[error(
        "index {} line {line} is not a SHA-256 chunk hash: the backup is damaged; delete it and \
         take a new one",
        path.display()
    )]
    CorruptIndex { path: PathBuf, line: u64 },
    /// A chunk an index lists is not in the store.
    #[error(
        "chunk {chunk} is missing ({}): the backups using it are damaged; run `ceso backup \
         verify` to find them, then take a new backup",
        path.display()
    )]
    ChunkMissing { chunk: String, path: PathBuf },
    /// A chunk's content does not have the hash that names it.
    #[error(
        "chunk {} does not hold the data its name says: the backups using it are damaged; \
         delete the chunk file so the next backup stores it again, and run `ceso backup verify`",
        path.display()
    )]
    ChunkMismatch { chunk: String, path: PathBuf },
    /// The index of a backup to keep is missing, so garbage collection stopped.
    #[error(
        "index {} of a backup to keep is missing; nothing was deleted. Run `ceso backup verify` \
         and delete the damaged backup before collecting garbage again",
        path.display()
    )]
    LiveIndexMissing { path: PathBuf },
    /// The stream being stored failed.
    #[error("reading the data to store failed: {0}; nothing was recorded, run it again")]
    Input(String),
    /// A relative path given to the store is empty, absolute or leaves the root.
    #[error("{path:?} is not a path inside the backup directory (relative, without `..`)")]
    PathOutsideStore { path: String },
    /// A worker thread was cancelled because the runtime is shutting down.
    #[error("the chunk store's work was cancelled because ceso is shutting down")]
    Cancelled,
}

impl ChunkStoreError {
    fn io(path: &Path) -> impl FnOnce(io::Error) -> ChunkStoreError + '_ {
        move |source| ChunkStoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<ChunkStoreError> for io::Error {
    fn from(error: ChunkStoreError) -> Self {
        let kind = match &error {
            ChunkStoreError::Io { source, .. } => source.kind(),
            ChunkStoreError::ChunkMissing { .. } => io::ErrorKind::NotFound,
            ChunkStoreError::CorruptIndex { .. } | ChunkStoreError::ChunkMismatch { .. } => {
                io::ErrorKind::InvalidData
            }
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

impl ChunkStore {
    /// Opens the store at `root`, creating it and its `chunks/` folder when missing.
    pub fn open(root: &Path) -> Result<Self, ChunkStoreError> {
        let store = ChunkStore {
            root: root.to_path_buf(),
        };
        let chunks = store.chunks_dir();
        fs::create_dir_all(&chunks).map_err(ChunkStoreError::io(&chunks))?;
        Ok(store)
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores a stream; `progress` is called with the cumulative byte count after each chunk.
    ///
    /// The index is written (atomically) only when every chunk is durably stored. When the
    /// input fails, no index is written; new chunks already written stay until garbage
    /// collection.
    pub async fn store<S, E>(
        &self,
        mut input: S,
        index: &str,
        progress: impl FnMut(u64) + Send,
    ) -> Result<StoredFile, ChunkStoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        let index_path = self.resolve(index)?;
        let index_file = IndexWriter::create(index_path).await?;
        let pool = Arc::new(BufferPool::default());
        let mut pipeline = StorePipeline {
            writer: Arc::new(ChunkWriter::new(self.chunks_dir(), Arc::clone(&pool))),
            buffers: Arc::new(Semaphore::new(CHUNK_BUFFERS)),
            in_flight: FuturesOrdered::new(),
            hasher: WholeFileHasher::start_with(Some(Arc::clone(&pool))),
            index_file,
            progress,
            stored_bytes: 0,
            chunks: 0,
            new_chunks: 0,
            new_bytes: 0,
        };
        let mut block = BytesMut::new();
        let result = async {
            while let Some(next) = input.next().await {
                let mut piece = match next {
                    Ok(piece) => piece,
                    Err(error) => return Err(ChunkStoreError::Input(error.to_string())),
                };
                while !piece.is_empty() {
                    if block.is_empty() && piece.len() >= CHUNK_SIZE {
                        // A whole chunk in one piece: no copy.
                        pipeline.submit(piece.split_to(CHUNK_SIZE)).await?;
                        continue;
                    }
                    if block.is_empty() && block.capacity() < CHUNK_SIZE {
                        block = pool.take();
                    }
                    let take = (CHUNK_SIZE - block.len()).min(piece.len());
                    block.extend_from_slice(&piece[..take]);
                    piece.advance(take);
                    if block.len() == CHUNK_SIZE {
                        pipeline.submit(std::mem::take(&mut block).freeze()).await?;
                    }
                }
            }
            if !block.is_empty() {
                pipeline.submit(std::mem::take(&mut block).freeze()).await?;
            }
            pipeline.drain().await
        }
        .await;
        match result {
            Ok(()) => pipeline.finish(index.to_owned()).await,
            Err(error) => {
                pipeline.index_file.discard().await;
                Err(error)
            }
        }
    }

    /// Streams a stored file back, chunk by chunk, each chunk's hash checked as it is read; a
    /// missing or damaged chunk (or index) is an error item, after which the stream ends.
    /// Constant memory: one thread reads at most a few chunks ahead. The errors wrap a
    /// [`ChunkStoreError`].
    pub fn read(
        &self,
        index: &str,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        let chunks_dir = self.chunks_dir();
        read_index_ahead(self.resolve(index), move |_, hash| {
            read_chunk(&chunks_dir, &hash)
        })
        .map_err(io::Error::from)
    }

    /// Re-reads and re-hashes every chunk and the whole file, comparing with `expected`'s size
    /// and SHA-256 (its chunk counts are not used: the number of chunks follows from the size).
    /// A missing or unreadable index is an error; everything else wrong is a problem in the
    /// report.
    pub async fn verify(&self, expected: &StoredFile) -> Result<VerifyReport, ChunkStoreError> {
        let index_path = self.resolve(&expected.index)?;
        let chunks_dir = self.chunks_dir();
        let size = expected.size;
        let expected_chunks = size.div_ceil(CHUNK_SIZE as u64);
        let mut checks = pin!(read_index_ahead(Ok(index_path), move |position, hash| {
            let expected_len = (position < expected_chunks)
                .then(|| (size - position * CHUNK_SIZE as u64).min(CHUNK_SIZE as u64));
            Ok((
                position,
                hash,
                check_chunk(&chunks_dir, &hash, expected_len),
            ))
        }));
        let mut report = VerifyReport::default();
        let mut hasher = Some(WholeFileHasher::start());
        let mut listed: u64 = 0;
        while let Some(checked) = checks.next().await {
            let (position, hash, check) = checked?;
            listed = position + 1;
            report.chunks_checked += 1;
            match check {
                ChunkCheck::Intact(data) => {
                    report.bytes_checked += data.len() as u64;
                    if let Some(hasher) = &hasher {
                        hasher.update(data).await;
                    }
                }
                ChunkCheck::Damaged {
                    problem,
                    bytes_read,
                } => {
                    report.bytes_checked += bytes_read;
                    // The whole-file hash cannot be compared any more; this problem says why.
                    hasher = None;
                    report.problems.push(ChunkProblem {
                        position,
                        chunk: hex::encode(hash),
                        problem,
                    });
                }
            }
        }
        let mut file_problem = |problem: String| {
            report.problems.push(ChunkProblem {
                position: listed,
                chunk: String::new(),
                problem,
            })
        };
        if listed != expected_chunks {
            file_problem(format!(
                "the index lists {listed} chunks, a file of {size} bytes has {expected_chunks}"
            ));
        } else if let Some(hasher) = hasher {
            let (sha256, hashed) = hasher.finish().await?;
            if hashed != size {
                file_problem(format!("the file is {hashed} bytes, expected {size}"));
            } else if sha256 != expected.sha256 {
                file_problem(format!(
                    "the whole file's SHA-256 is {sha256}, expected {}",
                    expected.sha256
                ));
            }
        }
        Ok(report)
    }

    /// Deletes every chunk not referenced by one of `live_indexes` (relative index paths), and
    /// stale temporary files anywhere under the root. Returns what it freed. A missing live
    /// index stops it before anything is deleted. Must not run while storing into this store.
    pub async fn collect_garbage(
        &self,
        live_indexes: &[String],
    ) -> Result<GcReport, ChunkStoreError> {
        let live_paths = live_indexes
            .iter()
            .map(|index| self.resolve(index))
            .collect::<Result<Vec<_>, _>>()?;
        let root = self.root.clone();
        let chunks_dir = self.chunks_dir();
        run_blocking(move || {
            let mut live = HashSet::new();
            for path in live_paths {
                let index = match IndexReader::open(path.clone()) {
                    Err(ChunkStoreError::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        return Err(ChunkStoreError::LiveIndexMissing { path });
                    }
                    opened => opened?,
                };
                for entry in index {
                    live.insert(entry?.1);
                }
            }
            let mut report = GcReport::default();
            sweep(&root, &chunks_dir, &live, &mut report)?;
            Ok(report)
        })
        .await
    }

    /// Atomic write of a small file (manifests): temporary file, fsync, rename, fsync of the
    /// directory. Creates missing parent directories.
    pub async fn write_file(&self, rel: &str, contents: &[u8]) -> Result<(), ChunkStoreError> {
        let path = self.resolve(rel)?;
        let contents = contents.to_vec();
        run_blocking(move || {
            let dir = parent_of(&path);
            create_dir_durably(dir)?;
            write_atomically(&path, &contents).map_err(ChunkStoreError::io(&path))?;
            sync_dir(dir)
        })
        .await
    }

    /// Reads a whole (small) file under the root.
    pub async fn read_file(&self, rel: &str) -> Result<Vec<u8>, ChunkStoreError> {
        let path = self.resolve(rel)?;
        tokio::fs::read(&path)
            .await
            .map_err(ChunkStoreError::io(&path))
    }

    /// Removes a file or a directory tree under the root; a missing one is fine.
    pub async fn remove(&self, rel: &str) -> Result<(), ChunkStoreError> {
        let path = self.resolve(rel)?;
        run_blocking(move || {
            let removed = match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
                Ok(_) => fs::remove_file(&path),
                Err(error) => Err(error),
            };
            match removed {
                Err(error) if error.kind() != io::ErrorKind::NotFound => {
                    Err(ChunkStoreError::io(&path)(error))
                }
                _ => Ok(()),
            }
        })
        .await
    }

    /// The names of the entries of a directory under the root, sorted, without temporary
    /// files; a missing directory has none.
    pub async fn list_dir(&self, rel: &str) -> Result<Vec<String>, ChunkStoreError> {
        let path = self.resolve(rel)?;
        let mut entries = match tokio::fs::read_dir(&path).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(ChunkStoreError::io(&path)(error)),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(ChunkStoreError::io(&path))?
        {
            if let Ok(name) = entry.file_name().into_string()
                && !is_temp_name(&name)
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn chunks_dir(&self) -> PathBuf {
        self.root.join(CHUNKS_DIR)
    }

    /// `rel` under the root, refused when empty, absolute or containing `..`.
    fn resolve(&self, rel: &str) -> Result<PathBuf, ChunkStoreError> {
        let path = Path::new(rel);
        let only_names = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        let inside = only_names && path.components().any(|c| matches!(c, Component::Normal(_)));
        if inside {
            Ok(self.root.join(path))
        } else {
            Err(ChunkStoreError::PathOutsideStore {
                path: rel.to_owned(),
            })
        }
    }
}

/// The chunks of one `store` call on their way to disk, and the tallies of those done.
struct StorePipeline<P> {
    writer: Arc<ChunkWriter>,
    /// One permit per chunk a writer holds in memory.
    buffers: Arc<Semaphore>,
    /// Chunks being hashed and written, in file order.
    in_flight: FuturesOrdered<JoinHandle<Result<WrittenChunk, ChunkStoreError>>>,
    hasher: WholeFileHasher,
    index_file: IndexWriter,
    progress: P,
    stored_bytes: u64,
    chunks: u64,
    new_chunks: u64,
    new_bytes: u64,
}

impl<P: FnMut(u64) + Send> StorePipeline<P> {
    /// Hands the next chunk to a writer, first waiting for room in the pipeline and a buffer.
    async fn submit(&mut self, chunk: Bytes) -> Result<(), ChunkStoreError> {
        while self.in_flight.len() >= CHUNKS_IN_FLIGHT {
            self.complete_oldest().await?;
        }
        let buffer = Arc::clone(&self.buffers)
            .acquire_owned()
            .await
            .map_err(|_closed| ChunkStoreError::Cancelled)?;
        self.hasher.update(chunk.clone()).await;
        let writer = Arc::clone(&self.writer);
        self.in_flight
            .push_back(tokio::task::spawn_blocking(move || {
                writer.write(chunk, buffer)
            }));
        Ok(())
    }

    /// Waits for the oldest chunk in flight and records it in the index.
    async fn complete_oldest(&mut self) -> Result<(), ChunkStoreError> {
        let Some(joined) = self.in_flight.next().await else {
            return Ok(());
        };
        let written = join_result(joined)??;
        self.index_file.push(&written.hash).await?;
        self.chunks += 1;
        self.stored_bytes += written.len;
        if written.is_new {
            self.new_chunks += 1;
            self.new_bytes += written.len;
        }
        (self.progress)(self.stored_bytes);
        Ok(())
    }

    async fn drain(&mut self) -> Result<(), ChunkStoreError> {
        while !self.in_flight.is_empty() {
            self.complete_oldest().await?;
        }
        Ok(())
    }

    /// Makes the new chunks' names durable, then commits the index.
    async fn finish(self, index: String) -> Result<StoredFile, ChunkStoreError> {
        let finished = async {
            let (sha256, size) = self.hasher.finish().await?;
            let writer = Arc::clone(&self.writer);
            run_blocking(move || writer.sync_dirs()).await?;
            Ok::<_, ChunkStoreError>((sha256, size))
        }
        .await;
        let (sha256, size) = match finished {
            Ok(done) => done,
            Err(error) => {
                self.index_file.discard().await;
                return Err(error);
            }
        };
        debug_assert_eq!(size, self.stored_bytes);
        self.index_file.commit().await?;
        Ok(StoredFile {
            size,
            sha256,
            chunks: self.chunks,
            new_chunks: self.new_chunks,
            new_bytes: self.new_bytes,
            index,
        })
    }
}

/// Hashes and writes chunks (on blocking threads), each new one once even when several
/// workers meet the same content at the same time.
struct ChunkWriter {
    chunks_dir: PathBuf,
    pool: Arc<BufferPool>,
    /// Chunks a worker is writing right now.
    claimed: Mutex<HashSet<ChunkHash>>,
    /// Directories whose new entries must be made durable by `sync_dirs`.
    dirs_to_sync: Mutex<BTreeSet<PathBuf>>,
}

/// A chunk as `ChunkWriter::write` left it.
struct WrittenChunk {
    hash: ChunkHash,
    len: u64,
    /// Whether it was written now rather than found in the store.
    is_new: bool,
}

impl ChunkWriter {
    fn new(chunks_dir: PathBuf, pool: Arc<BufferPool>) -> Self {
        ChunkWriter {
            chunks_dir,
            pool,
            claimed: Mutex::new(HashSet::new()),
            dirs_to_sync: Mutex::new(BTreeSet::new()),
        }
    }

    /// Hashes `chunk` and writes it unless the store has it: temp file, write, fsync, rename.
    /// The chunk and its `buffer` permit are released as soon as the data is written, before
    /// the fsync.
    fn write(
        &self,
        chunk: Bytes,
        buffer: OwnedSemaphorePermit,
    ) -> Result<WrittenChunk, ChunkStoreError> {
        let hash = sha256(&chunk);
        let path = chunk_path(&self.chunks_dir, &hash);
        let len = chunk.len() as u64;
        let is_new = self.claim(&hash, &path, len)?;
        if is_new {
            let written = self.write_new(&path, chunk, buffer);
            self.claimed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&hash);
            written?;
        } else {
            self.pool.give(chunk);
        }
        Ok(WrittenChunk { hash, len, is_new })
    }

    /// Whether this worker is to write the chunk: it is neither in the store (with the right
    /// length; a truncated copy is replaced) nor being written by another worker.
    fn claim(&self, hash: &ChunkHash, path: &Path, len: u64) -> Result<bool, ChunkStoreError> {
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        if claimed.contains(hash) {
            return Ok(false);
        }
        match fs::metadata(path) {
            Ok(meta) if meta.len() == len => return Ok(false),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(ChunkStoreError::io(path)(error)),
        }
        claimed.insert(*hash);
        Ok(true)
    }

    fn write_new(
        &self,
        path: &Path,
        chunk: Bytes,
        buffer: OwnedSemaphorePermit,
    ) -> Result<(), ChunkStoreError> {
        let dir = parent_of(path);
        let created_dir = match fs::create_dir(dir) {
            Ok(()) => true,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => false,
            Err(error) => return Err(ChunkStoreError::io(dir)(error)),
        };
        let mut file = TempFile::create(path).map_err(ChunkStoreError::io(path))?;
        file.write_all(&chunk).map_err(ChunkStoreError::io(path))?;
        // The data is in the page cache: the next chunk may take the buffer while fsync waits.
        self.pool.give(chunk);
        drop(buffer);
        file.commit().map_err(ChunkStoreError::io(path))?;
        let mut dirs = self
            .dirs_to_sync
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        dirs.insert(dir.to_path_buf());
        if created_dir {
            dirs.insert(self.chunks_dir.clone());
        }
        Ok(())
    }

    /// One fsync of each directory that received new chunks (or chunk folders).
    fn sync_dirs(&self) -> Result<(), ChunkStoreError> {
        let dirs = std::mem::take(
            &mut *self
                .dirs_to_sync
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        dirs.iter().try_for_each(|dir| sync_dir(dir))
    }
}

/// Chunk buffers used again instead of being freed and allocated anew for every chunk (fresh
/// memory costs a page fault per 4 KiB page). Whoever drops a chunk's last reference gives
/// its buffer back; at most [`POOLED_BUFFERS`] are kept.
#[derive(Default)]
struct BufferPool {
    free: Mutex<Vec<BytesMut>>,
}

/// Buffers the pool keeps: as many as can be in use at once.
const POOLED_BUFFERS: usize = CHUNK_BUFFERS + HASH_QUEUE + 1;

impl BufferPool {
    fn take(&self) -> BytesMut {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(CHUNK_SIZE))
    }

    /// Keeps `chunk`'s buffer if this was its last reference.
    fn give(&self, chunk: Bytes) {
        if let Ok(mut buffer) = chunk.try_into_mut()
            && buffer.capacity() >= CHUNK_SIZE
        {
            buffer.clear();
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            if free.len() < POOLED_BUFFERS {
                free.push(buffer);
            }
        }
    }
}

/// The SHA-256 of a whole file, computed on a blocking thread fed in order through a short
/// queue, so hashing overlaps reading and writing.
struct WholeFileHasher {
    sender: mpsc::Sender<Bytes>,
    task: JoinHandle<(String, u64)>,
}

impl WholeFileHasher {
    fn start() -> Self {
        Self::start_with(None)
    }

    /// Passes each piece, once hashed, back to `pool` when given.
    fn start_with(pool: Option<Arc<BufferPool>>) -> Self {
        let (sender, mut receiver) = mpsc::channel::<Bytes>(HASH_QUEUE);
        let task = tokio::task::spawn_blocking(move || {
            let mut context = Context::new(&SHA256);
            let mut size = 0u64;
            while let Some(data) = receiver.blocking_recv() {
                context.update(&data);
                size += data.len() as u64;
                if let Some(pool) = &pool {
                    pool.give(data);
                }
            }
            (hex::encode(context.finish()), size)
        });
        WholeFileHasher { sender, task }
    }

    async fn update(&self, data: Bytes) {
        // The hashing thread only stops early by panicking, which `finish` passes on.
        let _ = self.sender.send(data).await;
    }

    /// The hex SHA-256 and the length of everything passed to `update`.
    async fn finish(self) -> Result<(String, u64), ChunkStoreError> {
        drop(self.sender);
        join_result(self.task.await)
    }
}

/// An index being written next to its final path, committed by an atomic rename.
struct IndexWriter {
    path: PathBuf,
    temp: PathBuf,
    file: BufWriter<tokio::fs::File>,
}

impl IndexWriter {
    async fn create(path: PathBuf) -> Result<Self, ChunkStoreError> {
        let dir = parent_of(&path).to_path_buf();
        run_blocking(move || create_dir_durably(&dir)).await?;
        let temp = temp_path_for(&path);
        let file = tokio::fs::File::create_new(&temp)
            .await
            .map_err(ChunkStoreError::io(&temp))?;
        Ok(IndexWriter {
            path,
            temp,
            file: BufWriter::new(file),
        })
    }

    async fn push(&mut self, hash: &ChunkHash) -> Result<(), ChunkStoreError> {
        let mut line = hex::encode(hash);
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .await
            .map_err(ChunkStoreError::io(&self.temp))
    }

    /// Flush, fsync, rename over the final path, fsync of the directory.
    async fn commit(mut self) -> Result<(), ChunkStoreError> {
        let synced = async {
            self.file.flush().await?;
            self.file.get_ref().sync_all().await
        }
        .await;
        if let Err(error) = synced {
            self.discard().await;
            return Err(ChunkStoreError::io(&self.temp)(error));
        }
        drop(self.file);
        if let Err(error) = tokio::fs::rename(&self.temp, &self.path).await {
            let _ = tokio::fs::remove_file(&self.temp).await;
            return Err(ChunkStoreError::io(&self.path)(error));
        }
        let dir = parent_of(&self.path).to_path_buf();
        run_blocking(move || sync_dir(&dir)).await
    }

    /// Removes the temporary file (best effort: garbage collection removes what stays).
    async fn discard(&self) {
        let _ = tokio::fs::remove_file(&self.temp).await;
    }
}

/// An index being read line by line: each chunk's position in the file (from 0) and hash.
struct IndexReader {
    path: PathBuf,
    lines: io::Lines<io::BufReader<fs::File>>,
    position: u64,
}

impl IndexReader {
    fn open(path: PathBuf) -> Result<Self, ChunkStoreError> {
        let file = fs::File::open(&path).map_err(ChunkStoreError::io(&path))?;
        Ok(IndexReader {
            path,
            lines: io::BufReader::new(file).lines(),
            position: 0,
        })
    }
}

impl Iterator for IndexReader {
    type Item = Result<(u64, ChunkHash), ChunkStoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = match self.lines.next()? {
            Ok(line) => line,
            Err(error) => return Some(Err(ChunkStoreError::io(&self.path)(error))),
        };
        let position = self.position;
        self.position += 1;
        Some(match parse_hash(&line) {
            Some(hash) => Ok((position, hash)),
            None => Err(ChunkStoreError::CorruptIndex {
                path: self.path.clone(),
                line: position + 1,
            }),
        })
    }
}

/// Runs `per_chunk` on each chunk the index lists, in order, on one blocking thread that stays
/// at most [`READ_AHEAD`] results ahead of the consumer (one thread, so the buffers it
/// allocates are reused rather than spread over many threads' heaps). The stream ends after
/// the first error.
fn read_index_ahead<T: Send + 'static>(
    index: Result<PathBuf, ChunkStoreError>,
    mut per_chunk: impl FnMut(u64, ChunkHash) -> Result<T, ChunkStoreError> + Send + 'static,
) -> impl Stream<Item = Result<T, ChunkStoreError>> + Send + 'static {
    // The thread starts at the first poll, inside the runtime.
    stream::once(async move {
        let (sender, receiver) = mpsc::channel(READ_AHEAD);
        let reader = tokio::task::spawn_blocking(move || {
            let entries = match index.and_then(IndexReader::open) {
                Ok(entries) => entries,
                Err(error) => {
                    let _ = sender.blocking_send(Err(error));
                    return;
                }
            };
            for entry in entries {
                let item = entry.and_then(|(position, hash)| per_chunk(position, hash));
                let failed = item.is_err();
                // A send fails when the consumer dropped the stream.
                if sender.blocking_send(item).is_err() || failed {
                    return;
                }
            }
        });
        (receiver, Some(reader))
    })
    .flat_map(|state| {
        stream::unfold(state, |(mut receiver, reader)| async move {
            if let Some(item) = receiver.recv().await {
                return Some((item, (receiver, reader)));
            }
            // The thread is done; a panic or cancellation must not look like the end.
            match join_result(reader?.await) {
                Ok(()) => None,
                Err(error) => Some((Err(error), (receiver, None))),
            }
        })
    })
}

/// What `check_chunk` found.
enum ChunkCheck {
    Intact(Bytes),
    Damaged { problem: String, bytes_read: u64 },
}

/// Reads and checks one chunk: present, of the expected length (at most [`CHUNK_SIZE`] when
/// the position is past the file's end), content hashing to its name.
fn check_chunk(chunks_dir: &Path, hash: &ChunkHash, expected_len: Option<u64>) -> ChunkCheck {
    let path = chunk_path(chunks_dir, hash);
    let damaged = |problem: String, bytes_read: u64| ChunkCheck::Damaged {
        problem,
        bytes_read,
    };
    let mut file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return damaged("missing".into(), 0);
        }
        Err(error) => return damaged(format!("cannot be read: {error}"), 0),
    };
    let len = match file.metadata() {
        Ok(meta) => meta.len(),
        Err(error) => return damaged(format!("cannot be read: {error}"), 0),
    };
    match expected_len {
        Some(expected) if len != expected => {
            return damaged(format!("file is {len} bytes, expected {expected}"), 0);
        }
        None if len == 0 || len > CHUNK_SIZE as u64 => {
            return damaged(
                format!("file is {len} bytes, expected 1 to {CHUNK_SIZE}"),
                0,
            );
        }
        _ => {}
    }
    let mut data = Vec::with_capacity(len as usize);
    if let Err(error) = file.read_to_end(&mut data) {
        return damaged(format!("cannot be read: {error}"), data.len() as u64);
    }
    let actual = sha256(&data);
    if actual != *hash {
        return damaged(
            format!("content hash is {}", hex::encode(actual)),
            data.len() as u64,
        );
    }
    ChunkCheck::Intact(Bytes::from(data))
}

/// One chunk's content, checked against its hash.
fn read_chunk(chunks_dir: &Path, hash: &ChunkHash) -> Result<Bytes, ChunkStoreError> {
    let path = chunk_path(chunks_dir, hash);
    let chunk = hex::encode(hash);
    let mut file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(ChunkStoreError::ChunkMissing { chunk, path });
        }
        Err(error) => return Err(ChunkStoreError::io(&path)(error)),
    };
    let len = file.metadata().map_err(ChunkStoreError::io(&path))?.len();
    if len > CHUNK_SIZE as u64 {
        return Err(ChunkStoreError::ChunkMismatch { chunk, path });
    }
    let mut data = Vec::with_capacity(len as usize);
    file.read_to_end(&mut data)
        .map_err(ChunkStoreError::io(&path))?;
    if sha256(&data) != *hash {
        return Err(ChunkStoreError::ChunkMismatch { chunk, path });
    }
    Ok(Bytes::from(data))
}

/// Removes, under `dir`, temporary files and the chunks (in `chunks_dir`'s subfolders) that
/// are not `live`. Symbolic links are neither followed nor removed.
fn sweep(
    dir: &Path,
    chunks_dir: &Path,
    live: &HashSet<ChunkHash>,
    report: &mut GcReport,
) -> Result<(), ChunkStoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(ChunkStoreError::io(dir)(error)),
    };
    let in_chunk_folder = dir.parent() == Some(chunks_dir);
    for entry in entries {
        let entry = entry.map_err(ChunkStoreError::io(dir))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(ChunkStoreError::io(&path))?;
        if file_type.is_dir() {
            sweep(&path, chunks_dir, live, report)?;
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_temp = is_temp_name(&name);
        let is_dead_chunk =
            in_chunk_folder && parse_hash(&name).is_some_and(|hash| !live.contains(&hash));
        if !is_temp && !is_dead_chunk {
            continue;
        }
        let len = entry.metadata().map(|meta| meta.len()).unwrap_or(0);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(ChunkStoreError::io(&path)(error)),
        }
        report.bytes_freed += len;
        if is_temp {
            report.temp_files_removed += 1;
        } else {
            report.chunks_removed += 1;
        }
    }
    Ok(())
}

fn sha256(data: &[u8]) -> ChunkHash {
    let digest = ring::digest::digest(&SHA256, data);
    let mut hash = [0u8; SHA256_OUTPUT_LEN];
    hash.copy_from_slice(digest.as_ref());
    hash
}

fn parse_hash(name: &str) -> Option<ChunkHash> {
    let mut hash = [0u8; SHA256_OUTPUT_LEN];
    hex::decode_to_slice(name, &mut hash).ok()?;
    Some(hash)
}

/// `chunks/<first 2 hex>/<64 hex>`.
fn chunk_path(chunks_dir: &Path, hash: &ChunkHash) -> PathBuf {
    let name = hex::encode(hash);
    chunks_dir.join(&name[..2]).join(name)
}

/// `<name>.tmp-<32 random hex>` beside `path`.
fn temp_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TEMP_MARKER);
    name.push(uuid::Uuid::new_v4().simple().to_string());
    path.with_file_name(name)
}

fn is_temp_name(name: &str) -> bool {
    name.rsplit_once(TEMP_MARKER).is_some_and(|(_, suffix)| {
        suffix.len() == 32 && suffix.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The directory holding `path` (paths here always have one: the root at least).
fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Temp file beside `path`, write, fsync, rename over `path`. The directory is not synced.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = TempFile::create(path)?;
    file.write_all(contents)?;
    file.commit()
}

/// A file being written beside its final path (`<name>.tmp-<random>`), removed when dropped
/// before [`TempFile::commit`].
struct TempFile {
    path: PathBuf,
    temp: PathBuf,
    file: fs::File,
    committed: bool,
}

impl TempFile {
    fn create(path: &Path) -> io::Result<Self> {
        let temp = temp_path_for(path);
        let file = fs::File::create_new(&temp)?;
        Ok(TempFile {
            path: path.to_path_buf(),
            temp,
            file,
            committed: false,
        })
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    /// fsync, then rename over the final path. The directory is not synced.
    fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        drop_cached_pages(&self.file);
        fs::rename(&self.temp, &self.path)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Advises the kernel to drop `file`'s pages from the page cache: they are durable (clean)
/// and a backup's data is not read again soon. Keeping them would push the machine's useful
/// cache out, and make each new chunk take fresh page-cache pages instead of reusing the ones
/// just released. Linux only; elsewhere the pages stay cached.
#[cfg(target_os = "linux")]
fn drop_cached_pages(file: &fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; the call only gives the kernel advice.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

#[cfg(not(target_os = "linux"))]
fn drop_cached_pages(_file: &fs::File) {}

fn sync_dir(dir: &Path) -> Result<(), ChunkStoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ChunkStoreError::io(dir))
}

/// Creates `dir` and its missing ancestors, then fsyncs the parent of each one created.
fn create_dir_durably(dir: &Path) -> Result<(), ChunkStoreError> {
    let mut missing = Vec::new();
    let mut current = dir;
    while !current.is_dir() {
        missing.push(current);
        match current.parent() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    for created in missing.iter().rev() {
        match fs::create_dir(created) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(ChunkStoreError::io(created)(error)),
        }
    }
    missing
        .iter()
        .try_for_each(|created| sync_dir(parent_of(created)))
}

/// Runs blocking file work on tokio's blocking pool.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ChunkStoreError> + Send + 'static,
) -> Result<T, ChunkStoreError> {
    join_result(tokio::task::spawn_blocking(work).await)?
}

/// A worker's result; a worker's panic is passed on.
fn join_result<T>(joined: Result<T, tokio::task::JoinError>) -> Result<T, ChunkStoreError> {
    match joined {
        Ok(value) => Ok(value),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(ChunkStoreError::Cancelled),
    }
}
