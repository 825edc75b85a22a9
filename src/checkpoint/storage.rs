//! Where checkpoints live: a local directory by default, or any object store (S3, MinIO, GCS,
//! Azure through the `object_store` crate) for instances that come and go.
//!
//! Both write atomically: a reader sees the previous object or the whole new one, never half.
//! The local directory writes a temporary file, fsyncs it, renames it into place and fsyncs
//! the directory; an object store's put is atomic by itself.
//!
//! Checkpoints are written with [`Storage::create`], which also refuses to replace an object
//! that exists: two writers of one state location (two instances given the same `state.url`, or
//! a stalled instance that wakes after its replacement took over) cannot silently overwrite
//! each other's generations.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// A flat namespace of named objects.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Writes `name` atomically.
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Writes `name` atomically if it does not exist, else fails with
    /// [`io::ErrorKind::AlreadyExists`]; [`io::ErrorKind::Unsupported`] where the store cannot
    /// tell (an S3 endpoint without conditional writes configured).
    fn create(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    fn get(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Every name, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    fn delete(&self, name: &str) -> io::Result<()>;
}

/// How long a temporary file in a shared directory goes unmodified before it is taken for
/// the leftover of a crash. A live write takes seconds; the partition's next owner may open
/// the directory while its previous owner still finishes its last checkpoint.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// Makes each temporary name of this process unique.
static TEMP_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A directory on a local (or mounted) file system.
#[derive(Debug)]
pub struct LocalDir {
    dir: PathBuf,
    /// The lock on `.lock` of [`LocalDir::exclusive`], held while this value lives.
    _lock: Option<File>,
}

impl LocalDir {
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<LocalDir> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        // Shared with other processes, maybe on other hosts: a temporary file may be a live
        // writer's, so only one untouched for `STALE_TEMP` is taken for a crash's leftover.
        LocalDir::clean(&dir, Some(STALE_TEMP))?;
        Ok(LocalDir { dir, _lock: None })
    }

    /// The directory for this process alone: an exclusive lock on its `.lock` file, waited
    /// for at most `wait` (a process that just stopped may still be closing it), else an
    /// error of kind [`io::ErrorKind::ResourceBusy`]. The kernel drops the lock when the
    /// holder dies, even by `kill -9`, so a crash never leaves the directory locked.
    pub fn exclusive(dir: impl Into<PathBuf>, wait: std::time::Duration) -> io::Result<LocalDir> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ResourceBusy,
                        "another Spiral process holds its lock (.lock)",
                    ));
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        // Only now: the temporary files of a live writer are not ours to delete.
        LocalDir::clean(&dir, None)?;
        Ok(LocalDir {
            dir,
            _lock: Some(lock),
        })
    }

    /// A process killed mid-write leaves its temporary file behind; nobody will finish it.
    /// Removes every temporary file, or with `older_than` only those not modified for that
    /// long.
    fn clean(dir: &std::path::Path, older_than: Option<std::time::Duration>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !name
                .to_str()
                .is_some_and(|n| n.starts_with('.') && n.contains(".tmp-"))
            {
                continue;
            }
            let stale = older_than.is_none_or(|age| {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified.elapsed().is_ok_and(|e| e >= age))
            });
            if stale {
                let _ = fs::remove_file(dir.join(&name));
            }
        }
        Ok(())
    }
}

impl LocalDir {
    /// Writes `bytes` to a temporary file, fsyncs it, and `place`s it under `name`; then
    /// fsyncs the directory, so that the new name survives a power cut too.
    fn write(
        &self,
        name: &str,
        bytes: &[u8],
        place: impl FnOnce(&std::path::Path, &std::path::Path) -> io::Result<()>,
    ) -> io::Result<()> {
        // Temporary names start with a dot, so `list` never shows a half-written file. They
        // are unique to this write, and created only if new: writers in other processes (or
        // on other hosts, where process ids repeat) never truncate each other's.
        let (tmp, mut file) = loop {
            let sequence = TEMP_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let pid = std::process::id();
            let tmp = self.dir.join(format!(".{name}.tmp-{pid}-{sequence}"));
            match File::create_new(&tmp) {
                Ok(file) => break (tmp, file),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        };
        let write = || -> io::Result<()> {
            file.write_all(bytes)?;
            file.sync_all()?;
            place(&tmp, &self.dir.join(name))?;
            File::open(&self.dir)?.sync_all()
        };
        let result = write();
        // After `create` the temporary name is a second link to the file; after `put` it is gone.
        let _ = fs::remove_file(&tmp);
        result
    }
}

impl Storage for LocalDir {
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.write(name, bytes, |tmp, name| fs::rename(tmp, name))
    }

    /// A hard link fails if the name exists, where a rename would replace it.
    fn create(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.write(name, bytes, |tmp, name| {
            fs::hard_link(tmp, name).map_err(|e| match e.raw_os_error() {
                // A file system without hard links: `Checkpoints` falls back to `put`.
                Some(libc::EPERM | libc::EOPNOTSUPP) => {
                    io::Error::new(io::ErrorKind::Unsupported, e)
                }
                _ => e,
            })
        })
    }

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            if let Some(name) = entry.file_name().to_str()
                && !name.starts_with('.')
            {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// An object store under a prefix. Calls block on a small runtime of their own, so they must
/// be made from a plain thread (the consumer thread), not from async code.
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: tokio::runtime::Runtime,
}

impl fmt::Debug for Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Objects({} under {:?})",
            self.store,
            self.prefix.as_ref()
        )
    }
}

impl Objects {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> io::Result<Objects> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Objects {
            store,
            prefix: ObjectPath::from(prefix),
            runtime,
        })
    }

    /// The store a `section.url` names (`s3://`, `s3a://`, `file://`, `memory://`), with the
    /// builder options of `[section.options]`. S3 credentials and region come from the usual
    /// `AWS_*` variables; options override them.
    pub fn open(
        section: &str,
        url: &str,
        options: &std::collections::BTreeMap<String, String>,
    ) -> anyhow::Result<Objects> {
        use anyhow::{Context, anyhow};
        let parsed = url::Url::parse(url).with_context(|| format!("{section}.url: {url:?}"))?;
        let (store, prefix): (Arc<dyn ObjectStore>, _) = match parsed.scheme() {
            "s3" | "s3a" => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_url(url);
                for (key, value) in options {
                    let key = key
                        .parse()
                        .map_err(|e| anyhow!("{section}.options.{key}: {e}"))?;
                    builder = builder.with_config(key, value);
                }
                let prefix = parsed.path().trim_start_matches('/').to_string();
                let store = builder
                    .build()
                    .with_context(|| format!("{section}.url: cannot configure S3"))?;
                (Arc::new(store), prefix)
            }
            _ => {
                let (store, path) = object_store::parse_url_opts(&parsed, options)
                    .with_context(|| format!("{section}.url: {url:?}"))?;
                (Arc::from(store), path.to_string())
            }
        };
        Objects::new(store, &prefix)
            .with_context(|| format!("{section}.url: cannot start the object store client"))
    }

    /// `name` under the prefix; `/` in a name separates path parts.
    fn path(&self, name: &str) -> ObjectPath {
        name.split('/')
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }
}

/// Nested names (`table/date=…/part-….parquet`), for the BI export.
impl Objects {
    /// Every name under `under` (relative to the prefix, `/`-separated), in no order.
    pub fn list_under(&self, under: &str) -> io::Result<Vec<String>> {
        use futures_util::TryStreamExt;
        let base = self.path(under);
        self.run(async {
            let objects: Vec<_> = self
                .store
                .list(Some(&base))
                .try_collect()
                .await
                .map_err(io_error)?;
            Ok(objects
                .into_iter()
                .filter_map(|o| {
                    o.location
                        .prefix_match(&self.prefix)
                        .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>())
                        .map(|parts| parts.join("/"))
                })
                .collect())
        })
    }

    /// Uploads a local file as `name` (an object store's put is atomic).
    pub fn put_file(&self, name: &str, path: &std::path::Path) -> io::Result<()> {
        let bytes = fs::read(path)?;
        self.put(name, &bytes)
    }

    /// Copies `from` to `to` inside the store.
    pub fn copy(&self, from: &str, to: &str) -> io::Result<()> {
        self.run(self.store.copy(&self.path(from), &self.path(to)))
            .map_err(io_error)
    }

    /// Whether `name` exists.
    pub fn exists(&self, name: &str) -> io::Result<bool> {
        match self.run(self.store.head(&self.path(name))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_error(e)),
        }
    }
}

impl Objects {
    /// Runs a store call to completion on this client's own runtime. Called from inside
    /// another runtime (the service restores while starting up on Tokio), it runs on a
    /// thread of its own, since a runtime cannot block inside another.
    fn run<T: Send>(&self, call: impl Future<Output = T> + Send) -> T {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.runtime.block_on(call);
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.runtime.block_on(call))
                .join()
                .expect("an object store call panicked")
        })
    }
}

fn io_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        other => io::Error::other(other),
    }
}

impl Storage for Objects {
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let payload = PutPayload::from(bytes.to_vec());
        self.run(self.store.put(&self.path(name), payload))
            .map(|_| ())
            .map_err(io_error)
    }

    fn create(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        use object_store::{PutMode, PutOptions};
        let payload = PutPayload::from(bytes.to_vec());
        let options = PutOptions::from(PutMode::Create);
        match self.run(self.store.put_opts(&self.path(name), payload, options)) {
            Ok(_) => Ok(()),
            Err(e @ object_store::Error::AlreadyExists { .. }) => {
                Err(io::Error::new(io::ErrorKind::AlreadyExists, e))
            }
            Err(e @ object_store::Error::NotImplemented { .. }) => {
                Err(io::Error::new(io::ErrorKind::Unsupported, e))
            }
            Err(e) => Err(io_error(e)),
        }
    }

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        self.run(async {
            let result = self.store.get(&self.path(name)).await.map_err(io_error)?;
            Ok(result.bytes().await.map_err(io_error)?.to_vec())
        })
    }

    fn list(&self) -> io::Result<Vec<String>> {
        use futures_util::TryStreamExt;
        self.run(async {
            let objects: Vec<_> = self
                .store
                .list(Some(&self.prefix))
                .try_collect()
                .await
                .map_err(io_error)?;
            Ok(objects
                .into_iter()
                .filter_map(|o| o.location.filename().map(str::to_string))
                .collect())
        })
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        match self.run(self.store.delete(&self.path(name))) {
            Err(object_store::Error::NotFound { .. }) | Ok(()) => Ok(()),
            Err(e) => Err(io_error(e)),
        }
    }
}

/// A storage whose writes fail while `full` is set, like a full disk: for fault injection
/// (the tests use it; so can a staging deployment that wants to see the alerts fire).
#[derive(Debug)]
pub struct FullDisk<S> {
    pub inner: S,
    pub full: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<S> FullDisk<S> {
    fn check(&self) -> io::Result<()> {
        if self.full.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "No space left on device (injected)",
            ));
        }
        Ok(())
    }
}

impl<S: Storage> Storage for FullDisk<S> {
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.put(name, bytes)
    }

    fn create(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.create(name, bytes)
    }

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.get(name)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        self.inner.list()
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        self.inner.delete(name)
    }
}

/// One part of a shared state location: names prefixed with `{prefix}.`, so that the
/// checkpoints of each stage partition (scale-out) keep their own generations beside the
/// others'.
#[derive(Debug)]
pub struct Part {
    inner: Arc<dyn Storage>,
    prefix: String,
}

impl Part {
    pub fn new(inner: Arc<dyn Storage>, prefix: &str) -> Part {
        Part {
            inner,
            prefix: format!("{prefix}."),
        }
    }

    fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

impl Storage for Part {
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.inner.put(&self.name(name), bytes)
    }

    fn create(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.inner.create(&self.name(name), bytes)
    }

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        self.inner.get(&self.name(name))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self
            .inner
            .list()?
            .into_iter()
            .filter_map(|n| n.strip_prefix(&self.prefix).map(str::to_string))
            .collect())
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        self.inner.delete(&self.name(name))
    }
}
