//! The records store: where flattened records land, standing in for the
//! AppSync API and its DynamoDB tables (`createHandState` and friends).
//!
//! SQLite through rusqlite (bundled, so no system library is needed), either
//! in memory or in a file that survives a reopen.
//!
//! # Schema
//!
//! One table for every kind of record, so a new robot needs a transform file
//! and no migration:
//!
//! ```sql
//! CREATE TABLE records (
//!     id   INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order, never reused
//!     kind TEXT    NOT NULL,                  -- e.g. 'HandState', 'RvrTelemetry'
//!     key  TEXT    NOT NULL,                  -- the device (deviceName)
//!     ts   INTEGER NOT NULL,                  -- the record's own timestamp field
//!     body TEXT    NOT NULL CHECK (json_valid(body)) -- all fields, a JSON object
//! );
//! CREATE INDEX records_by_key  ON records (kind, key, ts, id);
//! CREATE INDEX records_by_kind ON records (kind, id);
//! PRAGMA user_version = 1;
//! ```
//!
//! `ts` is in whatever unit the transform writes (seconds, like AppSync's
//! `AWSTimestamp`, for both shipped transforms). "Newest first" orders by `ts`
//! descending with the insertion id as the tiebreak, so records stamped in the
//! same second come back in reverse arrival order. Nothing here reads the wall
//! clock: the same inserts give the same answers.
//!
//! A file written with a different `user_version` is refused
//! ([`RecordError::UnsupportedSchema`]) rather than guessed at.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use thiserror::Error;

/// The schema version this code writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT    NOT NULL,
    key  TEXT    NOT NULL,
    ts   INTEGER NOT NULL,
    body TEXT    NOT NULL CHECK (json_valid(body))
);
CREATE INDEX IF NOT EXISTS records_by_key ON records (kind, key, ts, id);
CREATE INDEX IF NOT EXISTS records_by_kind ON records (kind, id);
";

/// A flattened record, as a transform produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record type (`HandState`, `RvrTelemetry`): the AppSync model name.
    pub kind: String,
    /// The device the record belongs to (its `deviceName`).
    pub key: String,
    /// The record's own timestamp (its `timestamp` field).
    pub ts: i64,
    /// Every output field, key and timestamp included.
    pub fields: Map<String, Value>,
}

/// A record as stored, with its insertion id.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    /// Insertion order: 1, 2, 3, ... (like AppSync's generated `id`).
    pub id: i64,
    /// The record.
    pub record: Record,
}

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum RecordError {
    /// SQLite refused (not a database, disk full, constraint, ...).
    #[error("records database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The record's fields did not serialize (cannot happen for a `Map`, kept
    /// so no path panics).
    #[error("record body: {0}")]
    Json(#[from] serde_json::Error),
    /// The database was written by an incompatible version of the schema.
    #[error("records database has schema version {found}, this build reads {SCHEMA_VERSION}")]
    UnsupportedSchema {
        /// The file's `user_version`.
        found: i64,
    },
    /// A stored body is not a JSON object (the file was edited by hand).
    #[error("record {id} has a body that is not a JSON object")]
    CorruptRow {
        /// The row id.
        id: i64,
    },
    /// Opened read-only, the file is not a records store (empty, another
    /// SQLite database, or not SQLite at all).
    #[error("not a twinrig records store ({why})")]
    NotAStore {
        /// What gave it away.
        why: String,
    },
}

/// The records store.
#[derive(Debug)]
pub struct RecordStore {
    conn: Connection,
}

impl RecordStore {
    /// A fresh store in memory (gone when dropped).
    pub fn open_in_memory() -> Result<Self, RecordError> {
        Self::init(Connection::open_in_memory()?)
    }

    /// Opens (or creates) a store in a file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RecordError> {
        Self::init(Connection::open(path)?)
    }

    /// Opens an existing store to read it, never writing to the file: an
    /// empty file, another SQLite database or a file of another kind is
    /// refused ([`RecordError::NotAStore`]) instead of being given tables.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, RecordError> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let not_a_store = |why: &str| RecordError::NotAStore {
            why: why.to_owned(),
        };
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| not_a_store(&e.to_string()))?;
        match version {
            SCHEMA_VERSION => {}
            0 => return Err(not_a_store("no records schema")),
            found => return Err(RecordError::UnsupportedSchema { found }),
        }
        let has_table: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'records'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        if has_table.is_none() {
            return Err(not_a_store("no records table"));
        }
        Ok(RecordStore { conn })
    }

    fn init(mut conn: Connection) -> Result<Self, RecordError> {
        let tx = conn.transaction()?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        match version {
            0 => {
                tx.execute_batch(SCHEMA)?;
                tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
            }
            SCHEMA_VERSION => {}
            found => return Err(RecordError::UnsupportedSchema { found }),
        }
        tx.commit()?;
        Ok(RecordStore { conn })
    }

    /// Stores a record; returns its id (insertion order).
    pub fn insert(&mut self, record: &Record) -> Result<i64, RecordError> {
        let body = serde_json::to_string(&record.fields)?;
        self.conn.execute(
            "INSERT INTO records (kind, key, ts, body) VALUES (?1, ?2, ?3, ?4)",
            params![record.kind, record.key, record.ts, body],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// The newest `n` records of `kind` for device `key`: highest `ts` first,
    /// later insertion first among equal `ts`.
    pub fn list_recent(
        &self,
        kind: &str,
        key: &str,
        n: usize,
    ) -> Result<Vec<StoredRecord>, RecordError> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        self.query(
            "SELECT id, kind, key, ts, body FROM records
             WHERE kind = ?1 AND key = ?2
             ORDER BY ts DESC, id DESC LIMIT ?3",
            params![kind, key, limit],
        )
    }

    /// Every record of `kind`, in insertion order.
    pub fn list_all(&self, kind: &str) -> Result<Vec<StoredRecord>, RecordError> {
        self.query(
            "SELECT id, kind, key, ts, body FROM records WHERE kind = ?1 ORDER BY id",
            params![kind],
        )
    }

    /// The record kinds present, sorted.
    pub fn kinds(&self) -> Result<Vec<String>, RecordError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT kind FROM records ORDER BY kind")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// How many records of `kind` are stored.
    pub fn count(&self, kind: &str) -> Result<u64, RecordError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM records WHERE kind = ?1",
            params![kind],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One record by id.
    pub fn get(&self, id: i64) -> Result<Option<StoredRecord>, RecordError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, kind, key, ts, body FROM records WHERE id = ?1",
                params![id],
                raw_row,
            )
            .optional()?;
        row.map(decode).transpose()
    }

    fn query(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<StoredRecord>, RecordError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params, raw_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(decode(row?)?);
        }
        Ok(out)
    }
}

type RawRow = (i64, String, String, i64, String);

fn raw_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn decode((id, kind, key, ts, body): RawRow) -> Result<StoredRecord, RecordError> {
    let fields = match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        _ => return Err(RecordError::CorruptRow { id }),
    };
    Ok(StoredRecord {
        id,
        record: Record {
            kind,
            key,
            ts,
            fields,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(kind: &str, key: &str, ts: i64, letter: &str) -> Record {
        let fields = json!({"deviceName": key, "timestamp": ts, "letter": letter});
        Record {
            kind: kind.into(),
            key: key.into(),
            ts,
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    fn letters(rows: &[StoredRecord]) -> Vec<String> {
        rows.iter()
            .map(|r| {
                r.record.fields["letter"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn last_twenty_for_a_device_newest_first_without_other_devices() {
        let mut store = RecordStore::open_in_memory().unwrap();
        // 30 states for the right hand, interleaved with a left hand and an RVR
        // record under the same device name.
        for i in 0..30i64 {
            let letter = char::from(b'A' + (i % 26) as u8).to_string();
            store
                .insert(&rec(
                    "HandState",
                    "XIAOAmazingHandRight",
                    1_000 + i,
                    &letter,
                ))
                .unwrap();
            store
                .insert(&rec("HandState", "XIAOAmazingHandLeft", 5_000 + i, "L"))
                .unwrap();
            store
                .insert(&rec("RvrTelemetry", "XIAOAmazingHandRight", 9_000 + i, "R"))
                .unwrap();
        }
        let recent = store
            .list_recent("HandState", "XIAOAmazingHandRight", 20)
            .unwrap();
        assert_eq!(recent.len(), 20);
        let ts: Vec<i64> = recent.iter().map(|r| r.record.ts).collect();
        assert_eq!(ts, (10..30).rev().map(|i| 1_000 + i).collect::<Vec<_>>());
        assert!(
            recent
                .iter()
                .all(|r| r.record.key == "XIAOAmazingHandRight" && r.record.kind == "HandState")
        );
        assert_eq!(letters(&recent[..2]), ["D", "C"]); // i = 29, 28
    }

    #[test]
    fn equal_timestamps_fall_back_to_insertion_order() {
        let mut store = RecordStore::open_in_memory().unwrap();
        for letter in ["H", "E", "L", "L", "O"] {
            store.insert(&rec("HandState", "d", 7, letter)).unwrap();
        }
        store.insert(&rec("HandState", "d", 6, "late")).unwrap();
        let recent = store.list_recent("HandState", "d", 10).unwrap();
        assert_eq!(letters(&recent), ["O", "L", "L", "E", "H", "late"]);
        let all = store.list_all("HandState").unwrap();
        assert_eq!(letters(&all), ["H", "E", "L", "L", "O", "late"]);
        let ids: Vec<i64> = all.iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        assert_eq!(store.count("HandState").unwrap(), 6);
        assert_eq!(store.count("Other").unwrap(), 0);
        assert_eq!(
            store.get(2).unwrap().unwrap().record,
            rec("HandState", "d", 7, "E")
        );
        assert!(store.get(99).unwrap().is_none());
    }

    #[test]
    fn zero_and_huge_limits() {
        let mut store = RecordStore::open_in_memory().unwrap();
        store.insert(&rec("K", "d", 1, "A")).unwrap();
        assert!(store.list_recent("K", "d", 0).unwrap().is_empty());
        assert_eq!(store.list_recent("K", "d", usize::MAX).unwrap().len(), 1);
        assert!(store.list_recent("K", "nobody", 5).unwrap().is_empty());
    }

    #[test]
    fn persists_to_a_file_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.sqlite");
        {
            let mut store = RecordStore::open(&path).unwrap();
            store.insert(&rec("HandState", "d", 1, "A")).unwrap();
            store.insert(&rec("HandState", "d", 2, "B")).unwrap();
        }
        let mut store = RecordStore::open(&path).unwrap();
        assert_eq!(
            letters(&store.list_recent("HandState", "d", 20).unwrap()),
            ["B", "A"]
        );
        // Ids keep counting after the reopen.
        assert_eq!(store.insert(&rec("HandState", "d", 3, "C")).unwrap(), 3);
    }

    #[test]
    fn garbage_files_and_foreign_schemas_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.sqlite");
        std::fs::write(&junk, b"this is not a database, not even close........").unwrap();
        assert!(matches!(
            RecordStore::open(&junk),
            Err(RecordError::Sqlite(_))
        ));

        let future = dir.path().join("future.sqlite");
        Connection::open(&future)
            .unwrap()
            .execute_batch("PRAGMA user_version = 42")
            .unwrap();
        assert!(matches!(
            RecordStore::open(&future),
            Err(RecordError::UnsupportedSchema { found: 42 })
        ));
    }

    #[test]
    fn a_hand_edited_body_is_a_typed_error() {
        let mut store = RecordStore::open_in_memory().unwrap();
        let id = store.insert(&rec("K", "d", 1, "A")).unwrap();
        store
            .conn
            .execute(
                "UPDATE records SET body = '[1,2]' WHERE id = ?1",
                params![id],
            )
            .unwrap();
        assert!(matches!(
            store.list_all("K"),
            Err(RecordError::CorruptRow { id: 1 })
        ));
        // Not JSON at all is refused by the CHECK constraint.
        assert!(
            store
                .conn
                .execute(
                    "UPDATE records SET body = 'nope' WHERE id = ?1",
                    params![id]
                )
                .is_err()
        );
    }

    #[test]
    fn opening_read_only_never_writes_and_refuses_what_is_not_a_store() {
        let dir = tempfile::tempdir().unwrap();
        // An empty file would be an empty database to SQLite: refused, and left empty.
        let empty = dir.path().join("empty.sqlite");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            RecordStore::open_read_only(&empty),
            Err(RecordError::NotAStore { .. })
        ));
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "not written");
        // Another application's database: refused, untouched.
        let other = dir.path().join("other.sqlite");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');")
            .unwrap();
        let before = std::fs::read(&other).unwrap();
        assert!(matches!(
            RecordStore::open_read_only(&other),
            Err(RecordError::NotAStore { .. })
        ));
        assert_eq!(std::fs::read(&other).unwrap(), before);
        // Not SQLite at all.
        let junk = dir.path().join("junk.sqlite");
        std::fs::write(&junk, b"this is not a database, not even close........").unwrap();
        assert!(RecordStore::open_read_only(&junk).is_err());
        // A real store reads.
        let real = dir.path().join("real.sqlite");
        RecordStore::open(&real)
            .unwrap()
            .insert(&rec("K", "d", 1, "A"))
            .unwrap();
        let store = RecordStore::open_read_only(&real).unwrap();
        assert_eq!(store.list_all("K").unwrap().len(), 1);
    }
}
