//! The candidate scan: streams the records of one table in rowid order from their header
//! columns, and decompresses a record's raw JSON (zstd with its dictionary) only when the
//! caller asks for it — `detect` re-running detections over a large table asks only for
//! the records its prefilter accepts. It owns one read statement over `records`; it must
//! not write, and it knows nothing of detections (the caller decides what it wants).
//!
//! Why a separate scan beside `for_each_record`: that one pages with a fresh query per
//! 1000 rows, allocates a header and a `String` per record and decompresses every record.
//! Here one statement walks the table, the header (`RecordHeader`) is one reused value
//! whose strings keep their capacity, and the raw JSON is decoded into one reused buffer.

use super::{Store, db};
use crate::model::{ContentType, RecordHeader};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::Arc;

/// One row of the scan: its header columns. Valid only during the callback.
pub struct ScanRow<'r> {
    pub rowid: i64,
    /// `organization_id` is empty (not a column), as in [`super::StoredRecord`].
    pub header: &'r RecordHeader,
    pub content_type: ContentType,
    pub ingested_at: DateTime<Utc>,
}

/// The raw JSON of the current row, decompressed on first use into a reused buffer.
pub struct RawJson<'r> {
    data: &'r [u8],
    dict: i64,
    decoders: &'r mut Decoders,
    out: &'r mut Vec<u8>,
    decoded: bool,
}

impl RawJson<'_> {
    /// The record as stored (its dictionary id as the tag, the zstd frame), for
    /// unpacking elsewhere (e.g. on worker threads) with a [`PackedDecoder`].
    pub fn packed(&self) -> crate::detect::Packed<'_> {
        crate::detect::Packed {
            tag: self.dict,
            bytes: self.data,
        }
    }

    /// The record's raw JSON text exactly as received.
    pub fn bytes(&mut self) -> Result<&[u8]> {
        if !self.decoded {
            self.decoders.decode(self.dict, self.data, self.out)?;
            self.decoded = true;
        }
        Ok(self.out)
    }
}

/// One zstd decompression context per dictionary, each dictionary loaded once (the
/// `dicts` table holds a handful of rows; all are read when the scan starts).
struct Decoders {
    ctxs: HashMap<i64, zstd::bulk::Decompressor<'static>>,
}

impl Decoders {
    fn load(conn: &Connection) -> Result<Decoders> {
        let mut ctxs = HashMap::new();
        ctxs.insert(0, zstd::bulk::Decompressor::new()?);
        let mut st = conn.prepare("SELECT id, bytes FROM dicts")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let bytes = r.get_ref(1)?.as_blob()?;
            let dec = zstd::bulk::Decompressor::with_dictionary(bytes)
                .with_context(|| format!("loading compression dictionary {id}"))?;
            ctxs.insert(id, dec);
        }
        Ok(Decoders { ctxs })
    }

    fn decode(&mut self, dict: i64, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let size = zstd::zstd_safe::get_frame_content_size(data)
            .ok()
            .flatten()
            .context("stored record has no zstd frame size")? as usize;
        let dec = self
            .ctxs
            .get_mut(&dict)
            .with_context(|| format!("no compression dictionary {dict}"))?;
        out.clear();
        out.reserve(size);
        dec.decompress_to_buffer(data, out)
            .context("stored record does not decompress")?;
        Ok(())
    }
}

/// Decodes records taken with [`RawJson::packed`] on any thread: each clone keeps its own
/// zstd contexts (one per dictionary, loaded on first use) over the shared dictionaries.
pub struct PackedDecoder {
    dicts: Arc<HashMap<i64, Vec<u8>>>,
    ctxs: HashMap<i64, zstd::bulk::Decompressor<'static>>,
}

impl Clone for PackedDecoder {
    fn clone(&self) -> Self {
        PackedDecoder {
            dicts: self.dicts.clone(),
            ctxs: HashMap::new(),
        }
    }
}

impl PackedDecoder {
    /// The raw JSON of a record stored as `data` with dictionary `dict`, into `out`.
    pub fn decode(&mut self, dict: i64, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if !self.ctxs.contains_key(&dict) {
            let dec = if dict == 0 {
                zstd::bulk::Decompressor::new()?
            } else {
                let bytes = self
                    .dicts
                    .get(&dict)
                    .with_context(|| format!("no compression dictionary {dict}"))?;
                zstd::bulk::Decompressor::with_dictionary(bytes)?
            };
            self.ctxs.insert(dict, dec);
        }
        let mut d = Decoders {
            ctxs: std::mem::take(&mut self.ctxs),
        };
        let r = d.decode(dict, data, out);
        self.ctxs = d.ctxs;
        r
    }
}

fn set(dst: &mut String, src: rusqlite::types::ValueRef<'_>) -> Result<()> {
    dst.clear();
    dst.push_str(src.as_str()?);
    Ok(())
}

impl Store {
    /// Unpackers for `detect::Grouper::stream_with`: one [`PackedDecoder`] per worker.
    pub fn unpackers(
        &self,
    ) -> Result<impl Fn() -> Result<Box<dyn crate::detect::Unpack>> + Sync + use<>> {
        let d = self.packed_decoder()?;
        Ok(move || Ok(Box::new(d.clone()) as Box<dyn crate::detect::Unpack>))
    }

    /// A decoder for [`RawJson::packed`] records (the dictionaries are read once here).
    pub fn packed_decoder(&self) -> Result<PackedDecoder> {
        self.with_conn(|c| {
            let mut dicts = HashMap::new();
            let mut st = c.prepare("SELECT id, bytes FROM dicts")?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                dicts.insert(r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?);
            }
            Ok(PackedDecoder {
                dicts: Arc::new(dicts),
                ctxs: HashMap::new(),
            })
        })
    }

    /// Streams the records of one table (docs/architecture.md, Tables) with rowid > `after_rowid`, in
    /// rowid order. `f(row, raw)` sees every record's header; `raw.bytes()` decompresses
    /// its JSON only when called. `f` returns false to stop.
    pub fn for_each_candidate(
        &self,
        table: &str,
        after_rowid: i64,
        mut f: impl FnMut(&ScanRow, &mut RawJson) -> Result<bool>,
    ) -> Result<()> {
        let (cond, params) = db::known_table_filter(table)?;
        let mut args: Vec<rusqlite::types::Value> = params.into_iter().map(Into::into).collect();
        args.push(after_rowid.into());
        self.with_conn(|c| {
            let sql = format!(
                "SELECT r.rowid, r.id, r.creation_time, r.workload, r.operation, r.record_type, \
                 r.user_id, r.client_ip, r.content_type, r.ingested_at, r.dict, r.raw \
                 FROM records r WHERE ({cond}) AND r.rowid > ? ORDER BY r.rowid"
            );
            let mut st = c.prepare(&sql)?;
            let mut rows = st.query(rusqlite::params_from_iter(args))?;
            let mut header = RecordHeader {
                id: String::new(),
                creation_time: DateTime::<Utc>::UNIX_EPOCH,
                workload: String::new(),
                operation: String::new(),
                record_type: 0,
                user_id: String::new(),
                client_ip: String::new(),
                organization_id: String::new(),
            };
            let mut decoders = Decoders::load(c)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                set(&mut header.id, row.get_ref(1)?)?;
                header.creation_time = db::secs_to_time(row.get(2)?);
                set(&mut header.workload, row.get_ref(3)?)?;
                set(&mut header.operation, row.get_ref(4)?)?;
                header.record_type = row.get(5)?;
                set(&mut header.user_id, row.get_ref(6)?)?;
                set(&mut header.client_ip, row.get_ref(7)?)?;
                let scan_row = ScanRow {
                    rowid: row.get(0)?,
                    header: &header,
                    content_type: db::content_type_from_code(row.get(8)?),
                    ingested_at: db::secs_to_time(row.get(9)?),
                };
                let mut raw = RawJson {
                    data: row.get_ref(11)?.as_blob()?,
                    dict: row.get(10)?,
                    decoders: &mut decoders,
                    out: &mut out,
                    decoded: false,
                };
                if !f(&scan_row, &mut raw)? {
                    break;
                }
            }
            Ok(())
        })
    }
}

/// `detect` reads candidates through this (the detect module cannot name store types).
impl crate::detect::Unpack for PackedDecoder {
    fn unpack(&mut self, p: crate::detect::Packed<'_>, out: &mut Vec<u8>) -> Result<()> {
        self.decode(p.tag, p.bytes, out)
    }
}

impl crate::detect::command::RawSource for RawJson<'_> {
    fn bytes(&mut self) -> Result<&[u8]> {
        RawJson::bytes(self)
    }

    fn packed(&self) -> Option<crate::detect::Packed<'_>> {
        Some(RawJson::packed(self))
    }
}

#[cfg(test)]
mod tests {
    use crate::detect::Detections;
    use crate::store::Store;
    use std::sync::Arc;

    #[test]
    fn scan_sees_every_header_and_decodes_only_on_request_the_same_text() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Arc::new(Detections::empty())).unwrap();
        // enough records to train the dictionary, then more that use it
        let raws: Vec<String> = (0..2600)
            .map(|i| {
                let op = if i % 3 == 0 { "UserLoggedIn" } else { "FileAccessed" };
                format!(
                    "{{\"Id\":\"r{i}\",\"CreationTime\":\"2026-11-20T10:{:02}:00\",\"Workload\":\"SharePoint\",\"Operation\":\"{op}\",\"UserId\":\"u{}@contoso.com\"}}",
                    i % 60,
                    i % 17
                )
            })
            .collect();
        for chunk in raws.chunks(500) {
            s.import_records("t", chunk.to_vec()).wait().unwrap();
        }
        s.flush().wait().unwrap();
        let mut all = Vec::new();
        s.for_each_record(crate::model::TABLE_ALL, 0, |r| {
            all.push(r);
            Ok(true)
        })
        .unwrap();
        assert_eq!(all.len(), raws.len());
        let mut seen = 0;
        s.for_each_candidate(crate::model::TABLE_ALL, 0, |row, raw| {
            let want = &all[seen];
            assert_eq!(row.rowid, want.rowid);
            assert_eq!(row.header, &want.header);
            assert_eq!(row.content_type, want.content_type);
            assert_eq!(row.ingested_at, want.ingested_at);
            if row.header.operation == "UserLoggedIn" {
                assert_eq!(raw.bytes().unwrap(), want.raw.as_bytes());
                // a second call gives the same text without decoding again
                assert_eq!(raw.bytes().unwrap(), want.raw.as_bytes());
            }
            seen += 1;
            Ok(seen < 2000)
        })
        .unwrap();
        assert_eq!(seen, 2000, "returning false stops the scan");
        let mut auth = 0;
        s.for_each_candidate(crate::model::TABLE_AUTH, all[10].rowid, |row, _| {
            assert!(row.rowid > all[10].rowid);
            assert_eq!(row.header.operation, "UserLoggedIn");
            auth += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!(auth, (11..2600).filter(|i| i % 3 == 0).count());
        // detections over the scan, decoded on the workers, give what the plain records give
        let d = Detections::load_embedded(crate::detect::Vars::default());
        let mut plain = crate::detect::Grouper::new(&d);
        for r in &all {
            plain.add_record(&r.header, r.raw.as_bytes());
        }
        let plain = plain.finish();
        let make = s.unpackers().unwrap();
        let (scanned, packed) = crate::detect::Grouper::stream_with(&d, Some(&make), |g| {
            s.for_each_candidate(crate::model::TABLE_ALL, 0, |row, raw| {
                g.add_packed(row.header, raw.packed())?;
                Ok(true)
            })
        });
        scanned.unwrap();
        assert!(plain.detections.iter().any(|r| r.hits > 0));
        assert_eq!(plain, packed);
        s.close().unwrap();
    }
}
