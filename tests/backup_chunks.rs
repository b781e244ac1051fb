//! The content-addressed chunk store of the `directory` backup target: what it stores, what it
//! gives back, what verify and garbage collection find, and which paths it refuses.

use std::convert::Infallible;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use ceso::backup::chunks::{CHUNK_SIZE, ChunkStore, ChunkStoreError, StoredFile};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestRng};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// Pieces the size a network read typically delivers.
const NETWORK_PIECE: usize = 16 * 1024;
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut data)
        .expect("the system random generator works");
    data
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest(&SHA256, data))
}

/// `data` delivered as a stream of `piece`-byte pieces.
fn pieces(
    data: &[u8],
    piece: usize,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + Unpin + 'static {
    let pieces: Vec<_> = data
        .chunks(piece)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    stream::iter(pieces)
}

fn open_store() -> (tempfile::TempDir, ChunkStore) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = ChunkStore::open(&dir.path().join("target")).expect("the store opens");
    (dir, store)
}

async fn store_bytes(store: &ChunkStore, data: &[u8], index: &str) -> StoredFile {
    store
        .store(pieces(data, NETWORK_PIECE), index, |_| {})
        .await
        .expect("storing succeeds")
}

async fn read_back(store: &ChunkStore, index: &str) -> Result<Vec<u8>, io::Error> {
    store
        .read(index)
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
}

fn index_lines(store: &ChunkStore, index: &str) -> Vec<String> {
    fs::read_to_string(store.root().join(index))
        .expect("the index exists")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn chunk_file(store: &ChunkStore, hash: &str) -> PathBuf {
    store.root().join("chunks").join(&hash[..2]).join(hash)
}

fn chunk_files(store: &ChunkStore) -> Vec<String> {
    let mut names = Vec::new();
    for folder in fs::read_dir(store.root().join("chunks")).expect("chunks/ exists") {
        for file in fs::read_dir(folder.expect("an entry").path()).expect("a chunk folder") {
            names.push(
                file.expect("an entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8"),
            );
        }
    }
    names.sort();
    names
}

fn flip_byte(path: &Path, offset: usize) {
    let mut data = fs::read(path).expect("the chunk exists");
    data[offset] ^= 0xff;
    fs::write(path, data).expect("the chunk is writable");
}

#[tokio::test]
async fn every_size_round_trips_byte_for_byte_with_the_whole_file_sha256() {
    for size in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 5] {
        let (_dir, store) = open_store();
        let data = random_bytes(size);
        let index = format!("backups/b1/disk-{size}.index");
        let mut reported = Vec::new();
        let stored = store
            .store(pieces(&data, NETWORK_PIECE), &index, |done| {
                reported.push(done)
            })
            .await
            .expect("storing succeeds");

        let chunks = size.div_ceil(CHUNK_SIZE) as u64;
        assert_eq!(
            stored,
            StoredFile {
                size: size as u64,
                sha256: sha256_hex(&data),
                chunks,
                new_chunks: chunks,
                new_bytes: size as u64,
                index: index.clone(),
            }
        );
        let expected_progress: Vec<u64> = (1..=chunks)
            .map(|n| (n * CHUNK_SIZE as u64).min(size as u64))
            .collect();
        assert_eq!(reported, expected_progress, "progress after each chunk");
        assert_eq!(index_lines(&store, &index).len() as u64, chunks);
        let back = read_back(&store, &index).await.expect("reading succeeds");
        assert!(back == data, "read gives back the {size} bytes stored");
    }
}

#[tokio::test]
async fn an_empty_file_has_no_chunks_and_the_sha256_of_nothing() {
    let (_dir, store) = open_store();
    let stored = store_bytes(&store, &[], "empty.index").await;
    assert_eq!((stored.size, stored.chunks), (0, 0));
    assert_eq!(stored.sha256, EMPTY_SHA256);
    assert_eq!(fs::read(store.root().join("empty.index")).unwrap(), b"");
    assert!(read_back(&store, "empty.index").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_index_lists_each_chunk_sha256_in_file_order() {
    let (_dir, store) = open_store();
    let data = random_bytes(2 * CHUNK_SIZE + 7);
    store_bytes(&store, &data, "f.index").await;
    let expected: Vec<String> = data.chunks(CHUNK_SIZE).map(sha256_hex).collect();
    assert_eq!(index_lines(&store, "f.index"), expected);
    for hash in &expected {
        let chunk = fs::read(chunk_file(&store, hash)).expect("the chunk file exists");
        assert_eq!(
            &sha256_hex(&chunk),
            hash,
            "a chunk is stored raw under its hash"
        );
    }
}

#[tokio::test]
async fn storing_the_same_data_again_writes_nothing_new() {
    let (_dir, store) = open_store();
    let data = random_bytes(3 * CHUNK_SIZE + 5);
    let first = store_bytes(&store, &data, "backups/1/disk.index").await;
    let files_before = chunk_files(&store);
    let second = store_bytes(&store, &data, "backups/2/disk.index").await;
    assert_eq!((second.new_chunks, second.new_bytes), (0, 0));
    assert_eq!((second.sha256, second.chunks), (first.sha256, first.chunks));
    assert_eq!(chunk_files(&store), files_before);
}

#[tokio::test]
async fn a_file_differing_in_one_byte_adds_exactly_one_chunk() {
    let (_dir, store) = open_store();
    let mut data = random_bytes(3 * CHUNK_SIZE + 5);
    store_bytes(&store, &data, "backups/1/disk.index").await;
    data[CHUNK_SIZE + 12345] ^= 1;
    let second = store_bytes(&store, &data, "backups/2/disk.index").await;
    assert_eq!(second.new_chunks, 1);
    assert_eq!(second.new_bytes, CHUNK_SIZE as u64);
    assert_eq!(chunk_files(&store).len(), 5);
}

#[tokio::test]
async fn repeated_content_within_one_file_is_stored_once() {
    let (_dir, store) = open_store();
    let zeros = vec![0u8; 5 * CHUNK_SIZE];
    let stored = store_bytes(&store, &zeros, "zeros.index").await;
    assert_eq!((stored.chunks, stored.new_chunks), (5, 1));
    assert_eq!(stored.new_bytes, CHUNK_SIZE as u64);
    assert_eq!(chunk_files(&store).len(), 1);
    assert!(read_back(&store, "zeros.index").await.unwrap() == zeros);
}

#[tokio::test]
async fn a_truncated_chunk_is_replaced_by_the_next_store_of_its_data() {
    let (_dir, store) = open_store();
    let data = random_bytes(2 * CHUNK_SIZE);
    store_bytes(&store, &data, "1.index").await;
    let damaged = chunk_file(&store, &sha256_hex(&data[..CHUNK_SIZE]));
    fs::write(&damaged, &data[..100]).unwrap();

    let again = store_bytes(&store, &data, "2.index").await;
    assert_eq!((again.new_chunks, again.new_bytes), (1, CHUNK_SIZE as u64));
    assert!(store.verify(&again).await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn verify_finds_an_intact_file_clean() {
    let (_dir, store) = open_store();
    let data = random_bytes(3 * CHUNK_SIZE + 5);
    let stored = store_bytes(&store, &data, "backups/1/disk.index").await;
    let report = store.verify(&stored).await.expect("verify runs");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.chunks_checked, 4);
    assert_eq!(report.bytes_checked, data.len() as u64);
}

#[tokio::test]
async fn verify_reports_a_flipped_byte_at_its_chunk_position() {
    let (_dir, store) = open_store();
    let data = random_bytes(3 * CHUNK_SIZE + 5);
    let stored = store_bytes(&store, &data, "backups/1/disk.index").await;
    let hash = sha256_hex(&data[2 * CHUNK_SIZE..3 * CHUNK_SIZE]);
    flip_byte(&chunk_file(&store, &hash), 777);

    let report = store.verify(&stored).await.expect("verify runs");
    assert_eq!(report.chunks_checked, 4);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!((problem.position, &problem.chunk), (2, &hash));
    assert!(
        problem.problem.starts_with("content hash is "),
        "{}",
        problem.problem
    );
}

#[tokio::test]
async fn verify_reports_a_deleted_chunk_as_missing() {
    let (_dir, store) = open_store();
    let data = random_bytes(3 * CHUNK_SIZE + 5);
    let stored = store_bytes(&store, &data, "backups/1/disk.index").await;
    let hash = sha256_hex(&data[3 * CHUNK_SIZE..]);
    fs::remove_file(chunk_file(&store, &hash)).unwrap();

    let report = store.verify(&stored).await.expect("verify runs");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!((problem.position, &problem.chunk), (3, &hash));
    assert_eq!(problem.problem, "missing");
}

#[tokio::test]
async fn verify_reports_a_chunk_of_the_wrong_length() {
    let (_dir, store) = open_store();
    let data = random_bytes(2 * CHUNK_SIZE);
    let stored = store_bytes(&store, &data, "disk.index").await;
    let hash = sha256_hex(&data[..CHUNK_SIZE]);
    fs::write(chunk_file(&store, &hash), b"short").unwrap();

    let report = store.verify(&stored).await.expect("verify runs");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].position, 0);
    assert_eq!(
        report.problems[0].problem,
        format!("file is 5 bytes, expected {CHUNK_SIZE}")
    );
}

#[tokio::test]
async fn verify_reports_an_index_that_does_not_describe_the_expected_file() {
    let (_dir, store) = open_store();
    let data = random_bytes(CHUNK_SIZE + 10);
    let stored = store_bytes(&store, &data, "disk.index").await;

    let other_content = StoredFile {
        sha256: sha256_hex(b"something else"),
        ..stored.clone()
    };
    let report = store.verify(&other_content).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].chunk, "", "a problem of the whole file");
    assert!(report.problems[0].problem.contains("SHA-256"));

    let longer = StoredFile {
        size: 3 * CHUNK_SIZE as u64,
        ..stored
    };
    let report = store.verify(&longer).await.unwrap();
    assert_eq!(report.problems.last().unwrap().chunk, "");
    assert!(
        report
            .problems
            .last()
            .unwrap()
            .problem
            .contains("lists 2 chunks"),
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn verify_of_a_missing_index_is_an_error() {
    let (_dir, store) = open_store();
    let stored = store_bytes(&store, b"data", "disk.index").await;
    fs::remove_file(store.root().join("disk.index")).unwrap();
    let error = store.verify(&stored).await.unwrap_err();
    assert!(matches!(error, ChunkStoreError::Io { .. }), "{error}");
}

#[tokio::test]
async fn reading_a_corrupted_chunk_yields_an_error_and_ends_the_stream() {
    let (_dir, store) = open_store();
    let data = random_bytes(3 * CHUNK_SIZE);
    store_bytes(&store, &data, "disk.index").await;
    flip_byte(
        &chunk_file(&store, &sha256_hex(&data[CHUNK_SIZE..2 * CHUNK_SIZE])),
        0,
    );

    let items: Vec<_> = store.read("disk.index").collect().await;
    assert_eq!(items.len(), 2, "the first chunk, then the error");
    assert!(items[0].as_ref().is_ok_and(|c| c[..] == data[..CHUNK_SIZE]));
    let error = items[1].as_ref().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let cause = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<ChunkStoreError>());
    assert!(
        matches!(cause, Some(ChunkStoreError::ChunkMismatch { .. })),
        "{error}"
    );
}

#[tokio::test]
async fn reading_a_missing_chunk_or_index_yields_an_error() {
    let (_dir, store) = open_store();
    let data = random_bytes(CHUNK_SIZE);
    store_bytes(&store, &data, "disk.index").await;
    fs::remove_file(chunk_file(&store, &sha256_hex(&data))).unwrap();
    let error = read_back(&store, "disk.index").await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(error.to_string().contains("missing"), "{error}");

    let error = read_back(&store, "no-such.index").await.unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
}

#[tokio::test]
async fn an_input_error_fails_the_store_and_leaves_no_index() {
    let (_dir, store) = open_store();
    let data = random_bytes(CHUNK_SIZE + 1000);
    let broken = stream::iter(
        data.chunks(NETWORK_PIECE)
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .chain([Err("connection reset by peer")]),
    );

    let error = store
        .store(broken, "backups/1/disk.index", |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ChunkStoreError::Input(m) if m.contains("connection reset")),
        "{error}"
    );
    let folder = store.root().join("backups/1");
    let left: Vec<_> = fs::read_dir(&folder).unwrap().collect();
    assert!(
        left.is_empty(),
        "neither the index nor its temporary file: {left:?}"
    );
}

#[tokio::test]
async fn storing_and_reading_can_run_on_spawned_tasks() {
    let (_dir, store) = open_store();
    let data = random_bytes(CHUNK_SIZE + 1);
    let body: futures::stream::BoxStream<'static, Result<Bytes, io::Error>> =
        pieces(&data, NETWORK_PIECE)
            .map_err(io::Error::other)
            .boxed();
    let writer = store.clone();
    let stored = tokio::spawn(async move { writer.store(body, "spawned.index", |_| {}).await })
        .await
        .expect("the task finishes")
        .expect("storing succeeds");
    assert_eq!(stored.sha256, sha256_hex(&data));
    let chunks = store.read("spawned.index").map_ok(Vec::from);
    let back = tokio::spawn(chunks.try_concat())
        .await
        .expect("the task finishes");
    assert!(back.expect("reading succeeds") == data);
}

#[tokio::test]
async fn garbage_collection_keeps_live_chunks_and_removes_the_rest() {
    let (_dir, store) = open_store();
    let kept = random_bytes(2 * CHUNK_SIZE);
    let dropped = random_bytes(CHUNK_SIZE + 3);
    let kept_file = store_bytes(&store, &kept, "backups/kept/disk.index").await;
    store_bytes(&store, &dropped, "backups/dropped/disk.index").await;
    let stale_chunk_temp = store
        .root()
        .join("chunks/ab/abcd.tmp-0123456789abcdef0123456789abcdef");
    fs::create_dir_all(stale_chunk_temp.parent().unwrap()).unwrap();
    fs::write(&stale_chunk_temp, b"partial").unwrap();
    let stale_index_temp = store
        .root()
        .join("backups/kept/disk.index.tmp-fedcba9876543210fedcba9876543210");
    fs::write(&stale_index_temp, b"partial").unwrap();
    store.remove("backups/dropped").await.unwrap();

    let report = store
        .collect_garbage(&["backups/kept/disk.index".to_owned()])
        .await
        .expect("garbage collection runs");
    assert_eq!(report.chunks_removed, 2);
    assert_eq!(report.temp_files_removed, 2);
    assert_eq!(report.bytes_freed, dropped.len() as u64 + 2 * 7);
    assert!(!stale_chunk_temp.exists() && !stale_index_temp.exists());
    let mut expected: Vec<String> = kept.chunks(CHUNK_SIZE).map(sha256_hex).collect();
    expected.sort();
    assert_eq!(chunk_files(&store), expected);
    assert!(store.verify(&kept_file).await.unwrap().problems.is_empty());
}

#[tokio::test]
async fn garbage_collection_deletes_nothing_when_a_live_index_is_missing() {
    let (_dir, store) = open_store();
    store_bytes(&store, b"some data", "a.index").await;
    let error = store
        .collect_garbage(&["a.index".to_owned(), "gone.index".to_owned()])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ChunkStoreError::LiveIndexMissing { path } if path.ends_with("gone.index")),
        "{error}"
    );
    assert_eq!(chunk_files(&store).len(), 1);
}

#[tokio::test]
async fn small_files_are_written_whole_listed_and_removed() {
    let (_dir, store) = open_store();
    store
        .write_file("backups/b2/record.json", b"{\"v\":1}")
        .await
        .unwrap();
    store
        .write_file("backups/b2/record.json", b"{\"v\":2}")
        .await
        .unwrap();
    store
        .write_file("backups/b1/record.json", b"{}")
        .await
        .unwrap();
    assert_eq!(
        store.read_file("backups/b2/record.json").await.unwrap(),
        b"{\"v\":2}"
    );
    assert_eq!(store.list_dir("backups").await.unwrap(), ["b1", "b2"]);
    assert_eq!(
        store.list_dir("backups/b2").await.unwrap(),
        ["record.json"],
        "no temporary file is left behind"
    );
    assert!(store.list_dir("nothing/here").await.unwrap().is_empty());

    store.remove("backups/b2/record.json").await.unwrap();
    store.remove("backups/b1").await.unwrap();
    store.remove("backups/never-existed").await.unwrap();
    assert_eq!(store.list_dir("backups").await.unwrap(), ["b2"]);
    assert!(store.list_dir("backups/b2").await.unwrap().is_empty());
    assert!(matches!(
        store.read_file("backups/b2/record.json").await,
        Err(ChunkStoreError::Io { .. })
    ));
}

#[tokio::test]
async fn paths_leaving_the_store_are_refused() {
    let (dir, store) = open_store();
    let outside = dir.path().join("outside");
    fs::write(&outside, b"precious").unwrap();
    let refused = |result: Result<_, ChunkStoreError>| {
        matches!(result, Err(ChunkStoreError::PathOutsideStore { .. }))
    };
    for rel in [
        "../outside",
        "/etc/passwd",
        "a/../../outside",
        "",
        ".",
        "a/..",
    ] {
        assert!(
            refused(store.write_file(rel, b"x").await.map(drop)),
            "{rel:?}"
        );
        assert!(refused(store.read_file(rel).await.map(drop)), "{rel:?}");
        assert!(refused(store.remove(rel).await), "{rel:?}");
        assert!(refused(store.list_dir(rel).await.map(drop)), "{rel:?}");
        assert!(
            refused(store.store(pieces(b"x", 1), rel, |_| {}).await.map(drop)),
            "{rel:?}"
        );
        assert!(
            refused(store.collect_garbage(&[rel.to_owned()]).await.map(drop)),
            "{rel:?}"
        );
        assert!(read_back(&store, rel).await.is_err(), "{rel:?}");
    }
    assert_eq!(fs::read(&outside).unwrap(), b"precious");
}

/// Deterministic pseudo-random bytes, so a failing case can be replayed.
fn seeded_bytes(seed: [u8; 32], len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    TestRng::from_seed(RngAlgorithm::ChaCha, &seed).fill_bytes(&mut data);
    data
}

/// `data` cut at the successive `sizes` (cycled; a 0 is an empty piece).
fn split_at_sizes(data: &[u8], sizes: &[usize]) -> Vec<Result<Bytes, Infallible>> {
    let mut pieces = Vec::new();
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(Ok(Bytes::copy_from_slice(piece)));
        rest = tail;
    }
    pieces
}

fn piece_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        0..=64usize,
        1..=256 * 1024usize,
        CHUNK_SIZE - 8..=CHUNK_SIZE + 8,
        1..=3 * CHUNK_SIZE,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// However the input is split, the same chunks are stored and the same bytes come back.
    #[test]
    fn any_split_of_any_input_stores_the_same_chunks_and_round_trips(
        seed in any::<[u8; 32]>(),
        len in prop_oneof![0..=100usize, 0..=2 * CHUNK_SIZE + 100],
        sizes in prop::collection::vec(piece_size(), 1..8),
    ) {
        // At least one non-empty piece size, so the input ends.
        prop_assume!(sizes.iter().any(|&s| s > 0));
        let data = seeded_bytes(seed, len);
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let (_dir, store) = open_store();
        let stored = runtime.block_on(store.store(
            stream::iter(split_at_sizes(&data, &sizes)),
            "split.index",
            |_| {},
        )).expect("storing succeeds");
        let whole: Vec<String> = data.chunks(CHUNK_SIZE).map(sha256_hex).collect();
        prop_assert_eq!(index_lines(&store, "split.index"), whole);
        prop_assert_eq!(stored.size, len as u64);
        prop_assert_eq!(stored.sha256, sha256_hex(&data));
        let back = runtime.block_on(read_back(&store, "split.index")).expect("reading succeeds");
        prop_assert!(back == data);
    }
}

/// Peak resident memory of this process so far, in MiB (Linux).
fn peak_rss_mib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// A stream of `total` distinct-looking bytes in network-sized pieces, made as it is read
/// (a 1 MiB random pattern, each piece stamped with its number), so the input itself takes no
/// memory and every chunk is new.
fn generated_input(total: usize) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + Unpin {
    let pattern = Bytes::from(random_bytes(1024 * 1024));
    let count = total / NETWORK_PIECE;
    stream::iter(0..count).map(move |n| {
        let start = (n * NETWORK_PIECE) % pattern.len();
        let mut piece = pattern[start..start + NETWORK_PIECE].to_vec();
        piece[..8].copy_from_slice(&(n as u64).to_le_bytes());
        Ok(Bytes::from(piece))
    })
}

/// Not a timed assertion: prints the store's throughput next to plainly writing the same stream
/// to one file. Run it alone, in release, for meaningful figures:
/// `cargo test --release --test backup_chunks throughput -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_of_storing_a_stream_is_printed() {
    let total = if cfg!(debug_assertions) { 64 } else { 512 } * 1024 * 1024;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    let mib = total as f64 / (1024.0 * 1024.0);

    let plain_path = dir.path().join("plain");
    let started = Instant::now();
    // Like curl: plain write(2) calls into the page cache, one fsync at the end.
    let mut plain = fs::File::create(&plain_path).unwrap();
    let mut input = generated_input(total);
    while let Some(Ok(piece)) = input.next().await {
        plain.write_all(&piece).unwrap();
    }
    plain.sync_all().unwrap();
    let plain_rate = mib / started.elapsed().as_secs_f64();
    fs::remove_file(&plain_path).unwrap();

    let store = ChunkStore::open(&dir.path().join("store")).unwrap();
    let started = Instant::now();
    let stored = store
        .store(generated_input(total), "big.index", |_| {})
        .await
        .unwrap();
    let store_rate = mib / started.elapsed().as_secs_f64();
    assert_eq!(stored.new_bytes, total as u64);

    let started = Instant::now();
    let read = store
        .read("big.index")
        .try_fold(0u64, |n, chunk| async move { Ok(n + chunk.len() as u64) })
        .await
        .unwrap();
    let read_rate = mib / started.elapsed().as_secs_f64();
    assert_eq!(read, total as u64);

    println!(
        "{mib:.0} MiB: plain write + fsync {plain_rate:.0} MiB/s, store {store_rate:.0} MiB/s \
         ({:.0}%), read back {read_rate:.0} MiB/s, peak RSS {} MiB",
        100.0 * store_rate / plain_rate,
        peak_rss_mib().map_or("?".into(), |m| m.to_string()),
    );
}
