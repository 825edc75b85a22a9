//! Where the BI files go once sealed, and how they become visible: the staging area, the
//! publication of a sealed revision under its final names, and what is already published.
//!
//! A local directory publishes by renaming (atomic) and fsyncing; an object store
//! (`export.url`) holds the staging area too: a sealed revision is uploaded under
//! `_staging/rN/` before its checkpoint is written and copied to its final names after.

#[cfg(not(target_os = "linux"))]
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::tables::Table;
use crate::checkpoint::{Objects, Storage};
use crate::config::ExportConfig;

pub(super) const STAGING: &str = "_staging";

/// The files of one revision, complete and durable under their staging names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sealed {
    pub revision: u64,
    /// Final names, relative to the export directory.
    pub files: Vec<String>,
}

/// Where files are published: the local directory they are written in, or an object store
/// (`export.url`), where a sealed revision is uploaded under `_staging/` before its
/// checkpoint and copied to its final names after, so that an instance that comes and goes
/// loses nothing with its disk.
#[derive(Clone, Debug)]
pub struct Target {
    /// Where files are written (and, without a store, published).
    dir: PathBuf,
    store: Option<Arc<Objects>>,
}

impl Target {
    pub fn open(config: &ExportConfig) -> io::Result<Target> {
        let store = match &config.url {
            Some(url) => Some(Arc::new(
                Objects::open("export", url, &config.options).map_err(io::Error::other)?,
            )),
            None => None,
        };
        Ok(Target {
            dir: config.dir.clone(),
            store,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes what earlier runs left in staging: it was never published, and the state that
    /// made it is being read again.
    pub(super) fn clear_staging(&self) -> io::Result<()> {
        match fs::remove_dir_all(self.dir.join(STAGING)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if let Some(store) = &self.store {
            for name in store.list_under(STAGING)? {
                store.delete(&name)?;
            }
        }
        Ok(())
    }

    /// A published file's bytes.
    pub(super) fn read(&self, name: &str) -> io::Result<bytes::Bytes> {
        match &self.store {
            Some(store) => store.get(name).map(bytes::Bytes::from),
            None => fs::read(self.dir.join(name)).map(bytes::Bytes::from),
        }
    }

    /// With a store: moves a sealed revision's local files into the store's staging area.
    pub(super) fn upload(&self, revision: u64, files: &[String]) -> io::Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let local = staging(&self.dir, revision);
        for name in files {
            store.put_file(&staging_name(revision, name), &local.join(name))?;
        }
        match fs::remove_dir_all(&local) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn staging_name(revision: u64, name: &str) -> String {
    format!("{STAGING}/r{revision:012}/{name}")
}

/// Makes `files` under `root` durable, with their directory entries. On Linux one `syncfs`
/// of the file system does it: a backfill writes thousands of small date partitions, and an
/// fsync each cost seconds.
pub(super) fn sync(root: &Path, files: &[String]) -> io::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let dir = File::open(root)?;
        // SAFETY: `syncfs` only reads the descriptor, which `dir` keeps open.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for name in files {
            File::open(root.join(name))?.sync_all()?;
        }
        for dir in directories(root, files) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Name of the empty file a table starts with: revision 0, in a date partition of its own.
const SCHEMA_FILE: &str = "date=1970-01-01/part-000000000000-000.parquet";

/// Gives every table without files an empty one (no rows, just its schema), so that the views
/// and any `read_parquet('table/*/*.parquet')` work before the first row of that table exists
/// (a glob that matches nothing is an error in DuckDB).
pub(super) fn schema_files(target: &Target, props: &WriterProperties) -> io::Result<()> {
    let dir = &target.dir;
    for table in Table::ALL {
        let name = format!("{}/{SCHEMA_FILE}", table.name());
        let exists = match &target.store {
            Some(store) => !store.list_under(table.name())?.is_empty(),
            None => dir.join(table.name()).exists(),
        };
        if exists {
            continue;
        }
        let tmp = dir.join(format!(".{}.tmp", table.name()));
        let writer = ArrowWriter::try_new(File::create(&tmp)?, table.schema(), Some(props.clone()))
            .map_err(io::Error::other)?;
        writer.into_inner().map_err(io::Error::other)?.sync_all()?;
        match &target.store {
            Some(store) => {
                store.put_file(&name, &tmp)?;
                fs::remove_file(&tmp)?;
            }
            None => {
                let path = dir.join(&name);
                fs::create_dir_all(path.parent().expect("a file has a directory"))?;
                fs::rename(&tmp, &path)?;
            }
        }
    }
    Ok(())
}

pub(super) fn staging(dir: &Path, revision: u64) -> PathBuf {
    dir.join(STAGING).join(format!("r{revision:012}"))
}

/// Every directory that holds one of `files` under `root`, and the ones above them up to it.
#[cfg(not(target_os = "linux"))]
fn directories(root: &Path, files: &[String]) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::new();
    for name in files {
        let mut path = root.join(name);
        while path.pop() && path.starts_with(root) {
            dirs.insert(path.clone());
        }
    }
    dirs
}

/// Moves a sealed revision's files to their final names. Idempotent: a recovery calls it
/// again for the revisions of the checkpoint it starts from, and files already moved are
/// skipped.
pub fn publish(target: &Target, sealed: &Sealed) -> io::Result<()> {
    let missing = |name: &str, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("staged file {name} of revision {}: {e}", sealed.revision),
        )
    };
    if let Some(store) = &target.store {
        for name in &sealed.files {
            let staged = staging_name(sealed.revision, name);
            match store.copy(&staged, name) {
                Ok(()) => store.delete(&staged)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound && store.exists(name)? => {}
                Err(e) => return Err(missing(name, &e)),
            }
        }
        return Ok(());
    }
    let dir = &target.dir;
    let root = staging(dir, sealed.revision);
    for name in &sealed.files {
        let (from, to) = (root.join(name), dir.join(name));
        match fs::metadata(&from) {
            Ok(_) => {
                fs::create_dir_all(to.parent().expect("a file has a directory"))?;
                fs::rename(&from, &to)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && to.exists() => {}
            Err(e) => return Err(missing(name, &e)),
        }
    }
    sync(dir, &sealed.files)?;
    match fs::remove_dir_all(&root) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // The staging area itself goes once nothing else waits in it.
    let _ = fs::remove_dir(dir.join(STAGING));
    Ok(())
}

/// The highest revision among the published files under `dir` (0 when there are none), so
/// that a start without a checkpoint never writes a revision that older files already hold.
pub fn highest_revision(target: &Target) -> io::Result<u64> {
    let mut names = Vec::new();
    for table in Table::ALL {
        if let Some(store) = &target.store {
            names.extend(store.list_under(table.name())?);
            continue;
        }
        let Ok(dates) = fs::read_dir(target.dir.join(table.name())) else {
            continue;
        };
        for date in dates {
            for file in fs::read_dir(date?.path())? {
                names.push(file?.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let revision = |name: &str| {
        let file = name.rsplit('/').next()?;
        file.strip_prefix("part-")?
            .split('-')
            .next()?
            .parse::<u64>()
            .ok()
    };
    Ok(names.iter().filter_map(|n| revision(n)).max().unwrap_or(0))
}
