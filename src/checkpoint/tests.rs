use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;

use super::*;

/// Every back end the checkpoints can use, each in a fresh place.
fn back_ends(dir: &std::path::Path) -> Vec<(&'static str, Box<dyn Storage>)> {
    let local_fs = dir.join("object-store");
    std::fs::create_dir_all(&local_fs).unwrap();
    vec![
        (
            "local dir",
            Box::new(LocalDir::new(dir.join("local")).unwrap()),
        ),
        (
            "object store in memory",
            Box::new(Objects::new(Arc::new(InMemory::new()), "spiral/checkpoints").unwrap()),
        ),
        (
            "object store on the local file system",
            Box::new(
                Objects::new(
                    Arc::new(LocalFileSystem::new_with_prefix(&local_fs).unwrap()),
                    "spiral/checkpoints",
                )
                .unwrap(),
            ),
        ),
    ]
}

#[test]
fn keeps_the_newest_generations_and_loads_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    for (what, storage) in back_ends(dir.path()) {
        let checkpoints = Checkpoints::new(storage, 3);
        assert_eq!(checkpoints.latest().unwrap(), None, "{what}: empty");
        for g in 1..=5u64 {
            checkpoints
                .save(g, format!("state {g}").as_bytes())
                .unwrap();
        }
        assert_eq!(checkpoints.generations().unwrap(), [5, 4, 3], "{what}");
        let loaded = checkpoints.latest().unwrap().unwrap();
        assert_eq!(
            (loaded.generation, &loaded.payload[..]),
            (5, &b"state 5"[..]),
            "{what}"
        );
        assert!(loaded.skipped.is_empty());
    }
}

/// Overwrites a stored object with damaged bytes, as a torn write or bit rot would.
fn damage(storage: &dyn Storage, generation: u64, how: impl Fn(&mut Vec<u8>)) {
    let name = Checkpoints::name(generation);
    let mut bytes = storage.get(&name).unwrap();
    how(&mut bytes);
    storage.put(&name, &bytes).unwrap();
}

#[test]
fn a_torn_or_flipped_checkpoint_falls_back_to_the_previous_one_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    for (what, storage) in back_ends(dir.path()) {
        let checkpoints = Checkpoints::new(storage, 3);
        for g in 1..=3u64 {
            checkpoints.save(g, &vec![g as u8; 1000]).unwrap();
        }
        damage(checkpoints.storage.as_ref(), 3, |b| b.truncate(b.len() / 2));
        let loaded = checkpoints.latest().unwrap().unwrap();
        assert_eq!(loaded.generation, 2, "{what}: torn newest → previous");
        assert_eq!(loaded.skipped.len(), 1);
        assert!(
            loaded.skipped[0].1.contains("torn"),
            "{what}: {:?}",
            loaded.skipped
        );

        damage(checkpoints.storage.as_ref(), 2, |b| b[100] ^= 0x01);
        let loaded = checkpoints.latest().unwrap().unwrap();
        assert_eq!(loaded.generation, 1, "{what}: flipped byte → older still");
        assert!(loaded.skipped[1].1.contains("checksum mismatch"), "{what}");

        damage(checkpoints.storage.as_ref(), 1, |b| b.clear());
        let err = checkpoints.latest().unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::InvalidData,
            "{what}: never silently empty"
        );
        assert!(
            err.to_string().contains("no usable checkpoint"),
            "{what}: {err}"
        );
    }
}

#[test]
fn a_full_disk_fails_the_save_and_keeps_the_previous_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let full = Arc::new(AtomicBool::new(false));
    let storage = FullDisk {
        inner: LocalDir::new(dir.path()).unwrap(),
        full: full.clone(),
    };
    let checkpoints = Checkpoints::new(Box::new(storage), 2);
    checkpoints.save(1, b"good").unwrap();
    full.store(true, Ordering::Relaxed);
    let err = checkpoints.save(2, b"lost").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    let loaded = checkpoints.latest().unwrap().unwrap();
    assert_eq!((loaded.generation, &loaded.payload[..]), (1, &b"good"[..]));
    full.store(false, Ordering::Relaxed);
    checkpoints.save(2, b"next").unwrap();
    assert_eq!(checkpoints.latest().unwrap().unwrap().generation, 2);
}

#[test]
fn a_half_written_local_file_is_never_visible_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalDir::new(dir.path()).unwrap();
    local.put("a", b"1").unwrap();
    // What a crash between write and rename leaves behind.
    std::fs::write(dir.path().join(".b.tmp-1234"), b"half").unwrap();
    assert_eq!(local.list().unwrap(), ["a"]);
}

/// A stage partition's next owner opens the shared directory while its previous owner still
/// writes its last checkpoint: the writer's temporary file must survive that, or its rename
/// fails. Only a file untouched for an hour is a crash's leftover.
#[test]
fn a_shared_local_dir_leaves_a_live_writers_temporary_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join(".part-3.tmp-999-0");
    let left = dir.path().join(".part-4.tmp-998-7");
    std::fs::write(&live, b"being written").unwrap();
    std::fs::write(&left, b"crashed").unwrap();
    let hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&left)
        .unwrap()
        .set_modified(hours_ago)
        .unwrap();
    let shared = LocalDir::new(dir.path()).unwrap();
    assert!(live.exists(), "a live writer's temporary file is kept");
    assert!(!left.exists(), "a crash's leftover is removed");
    drop(shared);
    // The one process that holds the lock owns every temporary file.
    let exclusive = LocalDir::exclusive(dir.path(), std::time::Duration::ZERO).unwrap();
    assert!(!live.exists());
    exclusive.put("a", b"1").unwrap();
    assert_eq!(exclusive.list().unwrap(), ["a"]);
}

/// A back end's name and two handles on one place in it.
type Shared = (&'static str, Box<dyn Storage>, Box<dyn Storage>);

/// Two handles on each back end's one place, as two processes sharing a state location have.
fn shared_back_ends(dir: &std::path::Path) -> Vec<Shared> {
    let local_fs = dir.join("object-store");
    std::fs::create_dir_all(&local_fs).unwrap();
    let memory = Arc::new(InMemory::new());
    let objects = |store: Arc<dyn object_store::ObjectStore>| -> Box<dyn Storage> {
        Box::new(Objects::new(store, "spiral/checkpoints").unwrap())
    };
    let local_fs_store = || Arc::new(LocalFileSystem::new_with_prefix(&local_fs).unwrap());
    vec![
        (
            "local dir",
            Box::new(LocalDir::new(dir.join("local")).unwrap()),
            Box::new(LocalDir::new(dir.join("local")).unwrap()),
        ),
        (
            "object store in memory",
            objects(memory.clone()),
            objects(memory),
        ),
        (
            "object store on the local file system",
            objects(local_fs_store()),
            objects(local_fs_store()),
        ),
    ]
}

fn is_fenced(result: io::Result<usize>) -> bool {
    matches!(result, Err(e) if Checkpoints::is_fenced(&e))
}

#[test]
fn create_never_replaces_an_object() {
    let dir = tempfile::tempdir().unwrap();
    for (what, storage) in back_ends(dir.path()) {
        storage.create("a", b"first").unwrap();
        let again = storage.create("a", b"second").unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists, "{what}");
        assert_eq!(storage.get("a").unwrap(), b"first", "{what}");
        assert_eq!(
            storage.list().unwrap(),
            ["a"],
            "{what}: no temporary file left"
        );
    }
}

#[test]
fn a_second_writer_of_one_state_location_is_refused_not_interleaved() {
    let dir = tempfile::tempdir().unwrap();
    for (what, first, second) in shared_back_ends(dir.path()) {
        let (a, b) = (Checkpoints::new(first, 3), Checkpoints::new(second, 3));
        a.save(1, b"a1").unwrap();
        // `b` started when generation 1 was the newest, so it writes 2 next; `a` got there first.
        a.save(2, b"a2").unwrap();
        assert!(is_fenced(b.save(2, b"b2")), "{what}: same generation");
        a.save(3, b"a3").unwrap();
        assert!(is_fenced(b.save(3, b"b3")), "{what}: same generation again");
        a.save(5, b"a5").unwrap();
        assert!(
            is_fenced(b.save(4, b"b4")),
            "{what}: a newer generation exists"
        );
        let latest = a.latest().unwrap().unwrap();
        assert_eq!(
            (latest.generation, &latest.payload[..]),
            (5, &b"a5"[..]),
            "{what}"
        );
        assert_eq!(
            b.generations().unwrap(),
            [5, 3, 2],
            "{what}: nothing of b's"
        );
    }
}

#[test]
fn a_local_state_directory_serves_one_process_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let wait = std::time::Duration::from_millis(200);
    let first = LocalDir::exclusive(dir.path(), wait).unwrap();
    let busy = LocalDir::exclusive(dir.path(), wait).unwrap_err();
    assert_eq!(busy.kind(), io::ErrorKind::ResourceBusy);
    assert!(
        busy.to_string().contains("another Spiral process"),
        "{busy}"
    );
    // The lock file is no checkpoint.
    assert!(first.list().unwrap().is_empty());
    drop(first);
    LocalDir::exclusive(dir.path(), wait).expect("free once the first lets go");
}
