//! The writer on its own: rows come back from the files as they went in, files roll over
//! and partitions close under the limits, and nothing is visible before it is published.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType, UInt64Type};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::files::Files;
use super::tables::{Origin, Rows, Table, Touch};
use super::target::{Target, highest_revision, publish};
use crate::config::ExportConfig;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_767_571_200_000; // 2026-01-05

fn config(dir: &Path) -> ExportConfig {
    ExportConfig {
        dir: dir.to_path_buf(),
        url: None,
        options: Default::default(),
        row_group_rows: 1024,
        max_file_bytes: 1 << 20,
        memory_budget_bytes: 1 << 20,
    }
}

/// Publication into the local directory `dir`.
fn local(dir: &Path) -> Target {
    Target::open(&config(dir)).unwrap()
}

/// Every `.parquet` file under `dir`, relative, skipping the staging area.
fn published(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // Staging, and the empty schema file every table starts with.
            if rel.starts_with("_staging") || rel.contains("date=1970-01-01") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if rel.ends_with(".parquet") {
                found.insert(rel);
            }
        }
    }
    found
}

fn read(path: &Path) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// A touch row per (i, day): ids, times, costs and origins that say which row they were.
fn push_touches(files: &mut Files, n: u64, days: i64) {
    for i in 0..n {
        let id = format!("ev-{i:06}");
        let contact = format!("c{}", i % 7);
        // Every third touch carries a segment, every sixth a region too.
        let attributes: Vec<(Cow<str>, Cow<str>)> = [("segment", "smb"), ("region", "emea")]
            .into_iter()
            .take(usize::from(i.is_multiple_of(3)) + usize::from(i.is_multiple_of(6)))
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(format!("{v}-{}", i % 4))))
            .collect();
        let touch = Touch {
            event_id: &id,
            occurred_at: T0 + (i as i64 % days) * DAY + i as i64,
            touchpoint: "web_visit",
            channel: if i.is_multiple_of(3) {
                "offline"
            } else {
                "online"
            },
            stage: None,
            account_id: (i.is_multiple_of(2)).then_some("acme"),
            contact_id: Some(&contact),
            anonymous_id: None,
            campaign: (i.is_multiple_of(5)).then_some("spring"),
            source: None,
            cost: (i.is_multiple_of(4)).then_some(i as f64 / 8.0),
            revenue: None,
            attributes: &attributes,
            late: i.is_multiple_of(11),
            origin: Origin::Kafka {
                topic: "touchpoints",
                partition: (i % 3) as i32,
                offset: i as i64,
            },
        };
        let revision = files.revision();
        files
            .append(Table::Touches, touch.occurred_at, |rows| {
                let Rows::Touches(r) = rows else { panic!() };
                r.push(&touch, revision)
            })
            .unwrap();
    }
}

#[test]
fn rows_round_trip_through_published_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Files::open(&config(dir.path()), 7).unwrap();
    push_touches(&mut files, 30_000, 3);
    let sealed = files.seal(true).unwrap();
    assert_eq!(sealed.revision, 7);
    assert_eq!(files.revision(), 8);
    // Sealed is not published: no final name shows anything yet.
    assert!(published(dir.path()).is_empty());
    publish(&local(dir.path()), &sealed).unwrap();
    let names = published(dir.path());
    assert_eq!(names, sealed.files.iter().cloned().collect());
    assert!(names.iter().any(|n| n.contains("date=2026-01-05")));
    // Publishing again (a recovery does) changes nothing.
    publish(&local(dir.path()), &sealed).unwrap();
    assert_eq!(published(dir.path()), names);
    assert_eq!(highest_revision(&local(dir.path())).unwrap(), 7);

    let mut seen = BTreeSet::new();
    for name in &names {
        assert!(name.starts_with("touches/date=2026-01-0"), "{name}");
        assert!(name.contains("/part-000000000007-"), "{name}");
        let day = &name["touches/date=".len()..][..10];
        for batch in read(&dir.path().join(name)) {
            assert_eq!(batch.schema(), Table::Touches.schema());
            let column = |name| batch.column_by_name(name).unwrap();
            let ids = column("event_id").as_string::<i32>();
            let times = column("occurred_at").as_primitive::<TimestampMillisecondType>();
            let costs = column("cost").as_primitive::<Float64Type>();
            let attributes = column("attributes").as_map();
            let offsets = column("origin_offset").as_primitive::<Int64Type>();
            let revisions = column("revision").as_primitive::<UInt64Type>();
            for r in 0..batch.num_rows() {
                let i: u64 = ids.value(r)["ev-".len()..].parse().unwrap();
                assert_eq!(times.value(r), T0 + (i as i64 % 3) * DAY + i as i64);
                assert_eq!(crate::time::format_date(times.value(r)), day);
                assert_eq!(costs.is_valid(r), i.is_multiple_of(4));
                if i.is_multiple_of(4) {
                    assert_eq!(costs.value(r), i as f64 / 8.0);
                }
                let entries = attributes.value(r);
                let pairs: Vec<(&str, &str)> = (0..entries.len())
                    .map(|e| {
                        (
                            entries.column(0).as_string::<i32>().value(e),
                            entries.column(1).as_string::<i32>().value(e),
                        )
                    })
                    .collect();
                let suffix = format!("-{}", i % 4);
                let want: Vec<(&str, String)> = [("segment", "smb"), ("region", "emea")]
                    .into_iter()
                    .take(usize::from(i.is_multiple_of(3)) + usize::from(i.is_multiple_of(6)))
                    .map(|(k, v)| (k, format!("{v}{suffix}")))
                    .collect();
                let want: Vec<(&str, &str)> = want.iter().map(|(k, v)| (*k, v.as_str())).collect();
                assert_eq!(pairs, want, "attributes of row {i}");
                assert_eq!(offsets.value(r), i as i64);
                assert_eq!(revisions.value(r), 7);
                assert!(seen.insert(i), "row {i} twice");
            }
        }
    }
    assert_eq!(seen.len(), 30_000);
}

#[test]
fn files_roll_over_by_size_and_partitions_beyond_the_open_limit_close() {
    let dir = tempfile::tempdir().unwrap();
    let config = ExportConfig {
        max_file_bytes: 256 << 10,
        ..config(dir.path())
    };
    let mut files = Files::open(&config, 1).unwrap();
    // 200 days of one row each: more partitions than files may be open at once.
    push_touches(&mut files, 200, 200);
    // Then enough rows on one day to pass max_file_bytes (256 KiB) several times.
    push_touches(&mut files, 80_000, 1);
    let sealed = files.seal(true).unwrap();
    publish(&local(dir.path()), &sealed).unwrap();
    let names = published(dir.path());
    let first_day: Vec<_> = names
        .iter()
        .filter(|n| n.contains("date=2026-01-05/"))
        .collect();
    assert!(first_day.len() >= 3, "{first_day:?}");
    assert!(names.iter().filter(|n| n.contains("date=")).count() >= 200);
    let rows: usize = names
        .iter()
        .flat_map(|n| read(&dir.path().join(n)))
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 80_200);
    for name in first_day {
        let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
        assert!(size < 1 << 20, "{name}: {size} bytes");
    }
}

#[test]
fn a_new_start_removes_what_an_earlier_one_left_in_staging() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Files::open(&config(dir.path()), 3).unwrap();
    push_touches(&mut files, 100, 2);
    let sealed = files.seal(true).unwrap();
    // Crash before publishing: the next start (from the previous checkpoint) clears it.
    drop(files);
    assert!(dir.path().join("_staging").exists());
    let files = Files::open(&config(dir.path()), 3).unwrap();
    assert!(!dir.path().join("_staging").exists());
    assert!(published(dir.path()).is_empty());
    assert!(
        publish(&local(dir.path()), &sealed).is_err(),
        "its staged files are gone"
    );
    drop(files);
}

#[test]
fn every_table_starts_with_an_empty_file_of_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    drop(Files::open(&config(dir.path()), 1).unwrap());
    for table in Table::ALL {
        let path = dir
            .path()
            .join(table.name())
            .join("date=1970-01-01/part-000000000000-000.parquet");
        let batches = read(&path);
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.schema(), &table.schema());
    }
    assert_eq!(highest_revision(&local(dir.path())).unwrap(), 0);
}

#[test]
fn a_write_that_fails_fails_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Files::open(&config(dir.path()), 1).unwrap();
    // A file where the staging directory must go: every file create fails.
    std::fs::write(dir.path().join("_staging"), b"in the way").unwrap();
    push_touches(&mut files, 20_000, 2);
    let err = files.seal(true).unwrap_err();
    assert!(!err.to_string().is_empty());
    assert!(published(dir.path()).is_empty());
    // The revision is spent: the caller stops, and a restart writes its rows again.
    assert_eq!(files.revision(), 2);
}

#[test]
fn with_an_object_store_revisions_are_uploaded_staged_then_published() {
    let (scratch, bucket) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = ExportConfig {
        url: Some(format!("file://{}/bi", bucket.path().display())),
        ..config(scratch.path())
    };
    std::fs::create_dir_all(bucket.path().join("bi")).unwrap();
    let mut files = Files::open(&config, 5).unwrap();
    push_touches(&mut files, 20_000, 3);
    let sealed = files.seal(true).unwrap();
    let store = bucket.path().join("bi");
    // Sealed means uploaded to the store's staging area, nothing left on the scratch disk.
    assert!(published(&store).is_empty());
    assert!(store.join("_staging/r000000000005").is_dir());
    assert!(!scratch.path().join("_staging/r000000000005").exists());
    let target = Target::open(&config).unwrap();
    publish(&target, &sealed).unwrap();
    publish(&target, &sealed).unwrap();
    assert_eq!(published(&store), sealed.files.iter().cloned().collect());
    let rows: usize = sealed
        .files
        .iter()
        .flat_map(|n| read(&store.join(n)))
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 20_000);
    assert_eq!(highest_revision(&target).unwrap(), 5);
    // Schema files went to the store too, and a new start clears the store's staging.
    assert!(
        store
            .join("journeys/date=1970-01-01/part-000000000000-000.parquet")
            .exists()
    );
    let mut files = Files::open(&config, 6).unwrap();
    push_touches(&mut files, 100, 1);
    files.seal(true).unwrap();
    drop(files);
    Files::open(&config, 7).unwrap();
    // (A file system store may leave empty directories; no object is left.)
    let left = std::process::Command::new("find")
        .args([store.join("_staging").to_str().unwrap(), "-type", "f"])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&left.stdout)
    );
}
