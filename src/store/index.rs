//! The tantivy full-text index over the records: its schema, the indexer thread that
//! follows SQLite, and search.
//!
//! Invariant 4: the index is never ahead of SQLite. The indexer receives only rows the
//! writer has already committed, adds them in rowid order, and commits with the payload
//! "highest rowid indexed". On open it catches up from SQLite above that payload, so a
//! crash between the SQLite and the tantivy commit is healed, and deleting the index
//! directory simply rebuilds it. After an indexing error the indexer stops adding (its
//! uncommitted documents are dropped) rather than let the payload claim rows it lacks.
//!
//! What is indexed (docs/architecture.md: raw JSON text was the bottleneck): the *string values* of
//! the record as one `text` field (with positions: `a@b.com` is a phrase; a GUID is one
//! word, see `tokenizer.rs`), plus typed
//! fields `table`, `operation`, `workload`, `user`, `ip`, `id` (exact, operation/workload/
//! user case-insensitive) and `time` (a date, also the sort order of results). Only the
//! `rowid` is kept (as a fast field); everything shown comes from SQLite.

use super::db;
use crate::model::RecordHeader;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::error::{DeleteError, OpenReadError, OpenWriteError};
use tantivy::query::QueryParser;
use tantivy::schema::{
    DateOptions, FAST, Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, RemoveLongFilter, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument};

/// Directory name under the data dir; bump the suffix when the schema or the on-disk
/// format changes (the new one is built from SQLite, the old one removed by the writer).
/// v3: the term dictionary is tantivy's SSTable (feature `quickwit`), not an FST: building
/// the FST at every segment flush was the largest single cost of a backfill (~15 % of the
/// collect CPU, its node registry thrashing on the unique GUID terms).
/// v4: no `id` field: a record's Id is one word of `text` already (a GUID is one word),
/// and its own field held a second copy of every Id, ~10 % of the index.
/// v5: no field norms (results are never scored; see `schema`).
pub const INDEX_DIR: &str = "index-v5";
/// Index directories of earlier builds: the writable store deletes them at open.
const OLD_INDEX_DIRS: &[&str] = &["index-v2", "index-v3", "index-v4"];

/// Removes the index directories of earlier formats (never read again; they only take
/// disk). A failure is logged: the store works without it.
pub fn remove_old(data_dir: &Path) {
    for name in OLD_INDEX_DIRS {
        let dir = data_dir.join(name);
        if dir.join("meta.json").exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an old search index");
        }
    }
}
/// The fields a search query can name (`user:alice@contoso.com`), as the help and the
/// errors list them; `text` is the default of a bare word.
pub const SEARCH_FIELDS: &str = "user, ip, operation, workload, table, time, text";
const LOWER_RAW: &str = "lower_raw";
/// The `text` field's analyzer: [`super::tokenizer::RecordTokenizer`] (GUIDs whole),
/// tokens over 40 bytes dropped, lower-cased — tantivy's `default` but for GUIDs.
const RECORD_TEXT: &str = "record_text";
/// Memory budget of the index writer (tantivy's minimum is 15 MB per thread): the largest
/// single item of a collector's memory. 30 MB on one thread printed the same collect rate
/// and CPU seconds as 64 MB on two, with 80 MiB less peak RSS (`bench`); 20 MB printed the
/// same CPU seconds as 30 MB at a million records, with ~7 MiB less in use on average.
const WRITER_HEAP: usize = 20_000_000;
/// Indexing threads. With detections on, the preparers keep the second core busy while
/// one thread indexes (two threads each needed their own share of the heap).
const WRITER_THREADS: usize = 1;
/// The most documents one merge reads. A merge maps every segment it reads, so its
/// size is the collector's peak memory: with tantivy's defaults a store of a million
/// records merged ~800,000 documents at once (~300 MiB of index files resident), and
/// merges of up to 150,000 still added 40–60 MiB of file-backed RSS to a backfill.
/// Segments stop growing at about this size; a bigger store has more of them.
const MERGE_MAX_DOCS: u32 = 50_000;

/// tantivy's log merge policy, with no merge reading more than [`MERGE_MAX_DOCS`]
/// documents: a candidate that would is cut down to its smallest segments that fit
/// (nothing when fewer than two do).
#[derive(Debug)]
struct CappedMerges(tantivy::indexer::LogMergePolicy);

impl CappedMerges {
    fn new() -> CappedMerges {
        let mut log = tantivy::indexer::LogMergePolicy::default();
        log.set_max_docs_before_merge(MERGE_MAX_DOCS as usize);
        CappedMerges(log)
    }
}

impl tantivy::indexer::MergePolicy for CappedMerges {
    fn compute_merge_candidates(
        &self,
        segments: &[tantivy::index::SegmentMeta],
    ) -> Vec<tantivy::indexer::MergeCandidate> {
        let docs: HashMap<tantivy::index::SegmentId, u32> =
            segments.iter().map(|m| (m.id(), m.num_docs())).collect();
        self.0
            .compute_merge_candidates(segments)
            .into_iter()
            .filter_map(|c| cap_merge(c.0, &docs).map(tantivy::indexer::MergeCandidate))
            .collect()
    }
}

/// The smallest segments of a merge candidate that together hold at most
/// [`MERGE_MAX_DOCS`] documents, if at least two.
fn cap_merge<K: Copy + Eq + std::hash::Hash>(
    mut ids: Vec<K>,
    docs: &HashMap<K, u32>,
) -> Option<Vec<K>> {
    ids.sort_by_key(|id| docs.get(id).copied().unwrap_or(u32::MAX));
    let mut total = 0u64;
    ids.retain(|id| {
        total += u64::from(docs.get(id).copied().unwrap_or(u32::MAX));
        total <= u64::from(MERGE_MAX_DOCS)
    });
    (ids.len() >= 2).then_some(ids)
}

/// Commit after this many documents or this long after the first uncommitted one.
const COMMIT_DOCS: usize = 200_000;
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone, Copy)]
pub struct Fields {
    pub rowid: Field,
    pub time: Field,
    pub table: Field,
    pub operation: Field,
    pub workload: Field,
    pub user: Field,
    pub ip: Field,
    pub text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut sb = Schema::builder();
    // No field keeps norms: results are ordered by `time`, never scored, and with norms
    // tantivy works out a BM25 weight for every term it writes (flush and merge), a table
    // per term that the unique GUID terms of a backfill paid for over and over.
    let words = |tokenizer: &'static str, option: IndexRecordOption| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(option)
                .set_fieldnorms(false),
        )
    };
    let lower = words(LOWER_RAW, IndexRecordOption::Basic);
    let exact = words("raw", IndexRecordOption::Basic);
    let text = words(RECORD_TEXT, IndexRecordOption::WithFreqsAndPositions);
    let fields = Fields {
        rowid: sb.add_u64_field("rowid", FAST),
        time: sb.add_date_field("time", DateOptions::default().set_indexed().set_fast()),
        table: sb.add_text_field("table", exact.clone()),
        operation: sb.add_text_field("operation", lower.clone()),
        workload: sb.add_text_field("workload", lower.clone()),
        user: sb.add_text_field("user", lower),
        ip: sb.add_text_field("ip", exact),
        text: sb.add_text_field("text", text),
    };
    (sb.build(), fields)
}

fn register_tokenizers(index: &Index) {
    index.tokenizers().register(
        LOWER_RAW,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
    index.tokenizers().register(
        RECORD_TEXT,
        TextAnalyzer::builder(super::tokenizer::RecordTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .build(),
    );
}

/// Opens the index in `dir`, creating it (empty, payload 0) when missing.
pub fn open(dir: &Path) -> Result<(Index, Fields)> {
    let (schema, fields) = schema();
    super::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let index = if dir.join("meta.json").exists() {
        let index = Index::open_in_dir(dir)
            .with_context(|| format!("opening the search index {}", dir.display()))?;
        if index.schema() != schema {
            anyhow::bail!(
                "the search index {} has another schema; delete the directory to rebuild it",
                dir.display()
            );
        }
        index
    } else {
        Index::create_in_dir(dir, schema)
            .with_context(|| format!("creating the search index {}", dir.display()))?
    };
    register_tokenizers(&index);
    Ok((index, fields))
}

/// Opens an existing index for reading only. A directory this process cannot write
/// (evidence on read-only media, another user's store) is opened through
/// [`ReadOnlyDir`]: tantivy's readers take a lock file next to `meta.json`, which cannot be
/// created there, and nothing else may be written either.
pub fn open_read_only(dir: &Path) -> Result<Searcher> {
    let (schema, fields) = schema();
    let check = |index: &Index| -> Result<()> {
        if index.schema() != schema {
            anyhow::bail!(
                "the search index {} has another schema; delete the directory to rebuild it",
                dir.display()
            );
        }
        register_tokenizers(index);
        Ok(())
    };
    // The ordinary path keeps tantivy's lock against a writer's garbage collection; it
    // fails (without creating anything) where the lock file cannot be written.
    if let Ok(index) = Index::open_in_dir(dir)
        && check(&index).is_ok()
        && let Ok(s) = Searcher::new(index, fields)
    {
        return Ok(s);
    }
    let mmap = tantivy::directory::MmapDirectory::open(dir)
        .with_context(|| format!("opening the search index {}", dir.display()))?;
    let index = Index::open(ReadOnlyDir(mmap))
        .with_context(|| format!("opening the search index {} read-only", dir.display()))?;
    check(&index)?;
    Searcher::new(index, fields)
}

/// A tantivy directory that reads through to the files and refuses every write; its
/// locks are no-ops (nothing can change the files of a directory nobody may write).
#[derive(Clone, Debug)]
pub struct ReadOnlyDir(tantivy::directory::MmapDirectory);

fn refused(path: &Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "the search index is opened read-only; {} cannot be written",
            path.display()
        ),
    )
}

impl tantivy::Directory for ReadOnlyDir {
    fn get_file_handle(
        &self,
        path: &Path,
    ) -> std::result::Result<Arc<dyn tantivy::directory::FileHandle>, OpenReadError> {
        self.0.get_file_handle(path)
    }
    fn delete(&self, path: &Path) -> std::result::Result<(), DeleteError> {
        Err(DeleteError::IoError {
            io_error: Arc::new(refused(path)),
            filepath: path.to_path_buf(),
        })
    }
    fn exists(&self, path: &Path) -> std::result::Result<bool, OpenReadError> {
        self.0.exists(path)
    }
    fn open_write(
        &self,
        path: &Path,
    ) -> std::result::Result<tantivy::directory::WritePtr, OpenWriteError> {
        Err(OpenWriteError::wrap_io_error(
            refused(path),
            path.to_path_buf(),
        ))
    }
    fn atomic_read(&self, path: &Path) -> std::result::Result<Vec<u8>, OpenReadError> {
        self.0.atomic_read(path)
    }
    fn atomic_write(&self, path: &Path, _data: &[u8]) -> std::io::Result<()> {
        Err(refused(path))
    }
    fn sync_directory(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn acquire_lock(
        &self,
        _lock: &tantivy::directory::Lock,
    ) -> std::result::Result<tantivy::directory::DirectoryLock, tantivy::directory::error::LockError>
    {
        Ok(tantivy::directory::DirectoryLock::from(Box::new(())))
    }
    fn watch(
        &self,
        callback: tantivy::directory::WatchCallback,
    ) -> tantivy::Result<tantivy::directory::WatchHandle> {
        self.0.watch(callback)
    }
}

/// The highest records.rowid the committed index contains.
pub fn indexed_upto(index: &Index) -> Result<i64> {
    let metas = index.load_metas()?;
    Ok(metas
        .payload
        .as_deref()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0))
}

fn document(f: &Fields, rowid: i64, h: &RecordHeader, text: &str) -> TantivyDocument {
    let mut d = TantivyDocument::new();
    d.add_u64(f.rowid, rowid as u64);
    d.add_date(
        f.time,
        tantivy::DateTime::from_timestamp_secs(h.creation_time.timestamp()),
    );
    for t in h.tables() {
        d.add_text(f.table, &t);
    }
    d.add_text(f.operation, &h.operation);
    d.add_text(f.workload, &h.workload);
    if !h.user_id.is_empty() {
        d.add_text(f.user, &h.user_id);
    }
    if !h.client_ip.is_empty() {
        d.add_text(f.ip, &h.client_ip);
    }
    d.add_text(f.text, text);
    d
}

/// One committed record for the indexer.
pub struct IndexDoc {
    pub rowid: i64,
    pub header: RecordHeader,
    /// Every string value of the record, one per line ([`RecordHeader::scan`]).
    pub text: String,
}

pub enum IndexMsg {
    Docs(Vec<IndexDoc>),
    /// Commit now; replies with the highest rowid committed.
    Flush(tokio::sync::oneshot::Sender<Result<i64>>),
}

/// The indexer thread: catch up from SQLite, then follow the writer until the channel
/// closes, then commit a last time.
pub struct Indexer {
    writer: Option<IndexWriter>,
    fields: Fields,
    /// Highest rowid added (committed or not).
    added: i64,
    /// Highest rowid committed (the payload).
    committed: i64,
    uncommitted: usize,
    first_uncommitted: Option<Instant>,
}

impl Indexer {
    pub fn new(index: &Index, fields: Fields) -> Result<Indexer> {
        let writer: IndexWriter = index.writer_with_num_threads(WRITER_THREADS, WRITER_HEAP).context(
            "opening the search index writer (is another m365audit collecting into this data dir?)",
        )?;
        writer.set_merge_policy(Box::new(CappedMerges::new()));
        let upto = indexed_upto(index)?;
        Ok(Indexer {
            writer: Some(writer),
            fields,
            added: upto,
            committed: upto,
            uncommitted: 0,
            first_uncommitted: None,
        })
    }

    fn add(&mut self, rowid: i64, h: &RecordHeader, text: &str) {
        if rowid <= self.added {
            return; // already indexed (catch-up and the writer's stream overlap)
        }
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let d = document(&self.fields, rowid, h, text);
        if let Err(e) = w.add_document(d) {
            self.fail(&e.into());
            return;
        }
        self.added = rowid;
        self.uncommitted += 1;
        self.first_uncommitted.get_or_insert_with(Instant::now);
    }

    fn fail(&mut self, e: &anyhow::Error) {
        tracing::error!(error = %format!("{e:#}"), "search index stopped; it is rebuilt from SQLite at next start");
        self.writer = None;
    }

    fn commit(&mut self) -> Result<i64> {
        if self.uncommitted == 0 {
            return Ok(self.committed);
        }
        let w = self
            .writer
            .as_mut()
            .context("the search index writer stopped after an error")?;
        let r = (|| -> Result<()> {
            let mut p = w.prepare_commit()?;
            p.set_payload(&self.added.to_string());
            p.commit()?;
            Ok(())
        })();
        if let Err(e) = r {
            self.fail(&e);
            return Err(e);
        }
        self.committed = self.added;
        self.uncommitted = 0;
        self.first_uncommitted = None;
        Ok(self.committed)
    }

    /// Indexes every committed record above the payload.
    pub fn catch_up(&mut self, db_path: &Path, codec: &db::Codec) -> Result<()> {
        let conn = db::open_reader(db_path)?;
        let mut text = String::new();
        loop {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {} FROM {} WHERE r.rowid > ?1 ORDER BY r.rowid LIMIT 2000",
                db::RECORD_COLUMNS,
                db::RECORD_FROM
            ))?;
            let mut rows = stmt.query([self.added])?;
            let mut n = 0;
            while let Some(row) = rows.next()? {
                let rec = db::read_record(codec, &conn, row)?;
                text.clear();
                // a stored record was scanned once already: it cannot fail now, and if it
                // did, its header columns are still indexed
                let _ = RecordHeader::scan(rec.raw.as_bytes(), &mut text);
                self.add(rec.rowid, &rec.header, &text);
                n += 1;
            }
            if n == 0 || self.writer.is_none() {
                break;
            }
            if self.uncommitted >= COMMIT_DOCS {
                self.commit()?;
            }
        }
        self.commit()?;
        Ok(())
    }

    /// Runs until the channel closes.
    pub fn run(mut self, rx: Receiver<IndexMsg>, db_path: PathBuf, codec: db::Codec) {
        if let Err(e) = self.catch_up(&db_path, &codec) {
            self.fail(&e);
        }
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(IndexMsg::Docs(docs)) => {
                    for d in &docs {
                        self.add(d.rowid, &d.header, &d.text);
                    }
                    drop(docs);
                    if self.uncommitted >= COMMIT_DOCS {
                        let _ = self.commit();
                    }
                }
                Ok(IndexMsg::Flush(reply)) => {
                    let _ = reply.send(self.commit());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self
                .first_uncommitted
                .is_some_and(|t| t.elapsed() >= COMMIT_INTERVAL)
            {
                let _ = self.commit();
            }
        }
        let _ = self.commit();
        if let Some(w) = self.writer.take()
            && let Err(e) = w.wait_merging_threads()
        {
            tracing::warn!(error = %e, "search index merge did not finish");
        }
    }
}

/// The read side: parse a query, return matching rowids, newest record first.
#[derive(Clone)]
pub struct Searcher {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl Searcher {
    pub fn new(index: Index, fields: Fields) -> Result<Searcher> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Searcher {
            index,
            reader,
            fields,
        })
    }

    /// Returns the number of matches and the rowids of the newest `limit` of them.
    /// A query names fields of [`SEARCH_FIELDS`]; a bare word searches the text.
    pub fn search(&self, query: &str, limit: usize) -> Result<(usize, Vec<i64>)> {
        self.reader.reload()?;
        let f = &self.fields;
        let mut qp = QueryParser::for_index(&self.index, vec![f.text]);
        qp.set_conjunction_by_default();
        let q = qp.parse_query(query).map_err(|e| {
            let hint = match &e {
                tantivy::query::QueryParserError::FieldDoesNotExist(_) => format!(
                    " (fields: {SEARCH_FIELDS}; a record's Id is one word of its text: \
                     search for it without a field)"
                ),
                _ => String::new(),
            };
            crate::UsageError(format!("bad search query {query:?}: {e}{hint}"))
        })?;
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit.max(1))
            .order_by_fast_field::<tantivy::DateTime>("time", Order::Desc);
        // A query that parses may still ask what the schema cannot answer (`ip:*` wants a
        // fast field, `nosuch:*` a field): that is the query's fault too, not the store's.
        let (total, docs) = searcher.search(&q, &(Count, top)).map_err(|e| match e {
            tantivy::TantivyError::SchemaError(_)
            | tantivy::TantivyError::InvalidArgument(_)
            | tantivy::TantivyError::FieldNotFound(_) => anyhow::Error::new(crate::UsageError(
                format!("bad search query {query:?}: {e}"),
            )),
            e => e.into(),
        })?;
        Ok((total, rowids_of(&searcher, docs, limit)?))
    }

    /// Rowids of the records whose typed field (`user`, `ip`, `operation`, …) equals
    /// `value` (case-insensitive where the field is), newest first.
    pub fn rowids_for_term(&self, field: &str, value: &str, limit: usize) -> Result<Vec<i64>> {
        self.reader.reload()?;
        let q = self.term_query(field, value)?;
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit.max(1))
            .order_by_fast_field::<tantivy::DateTime>("time", Order::Desc);
        let docs = searcher.search(&q, &top)?;
        rowids_of(&searcher, docs, limit)
    }

    /// Every record whose typed field (`user`, `ip`, …) equals `value` (case-insensitive
    /// where the field is): (rowid, CreationTime seconds) each, in no particular order.
    /// One pass over the term's postings, no sort: for the pages that tally all of a
    /// user's or an address's records (tens of thousands) and show one page of them.
    pub fn rows_for_term(&self, field: &str, value: &str) -> Result<Vec<(i64, i64)>> {
        self.reader.reload()?;
        let q = self.term_query(field, value)?;
        Ok(self.reader.searcher().search(&q, &RowTimes)?)
    }

    /// The most frequent term of a typed field (`ip`, `user`, …) in the committed index
    /// and the number of documents holding it, from the term dictionaries' document
    /// frequencies (no document is read); ties go to the smallest term.
    pub fn most_frequent_term(&self, field: &str) -> Result<Option<(String, u64)>> {
        self.reader.reload()?;
        let f = self.index.schema().get_field(field)?;
        let mut freq: std::collections::HashMap<Vec<u8>, u64> = Default::default();
        for seg in self.reader.searcher().segment_readers() {
            let inv = seg.inverted_index(f)?;
            let mut terms = inv.terms().stream()?;
            while terms.advance() {
                *freq.entry(terms.key().to_vec()).or_default() += u64::from(terms.value().doc_freq);
            }
        }
        Ok(freq
            .into_iter()
            .max_by(|x, y| x.1.cmp(&y.1).then(y.0.cmp(&x.0)))
            .map(|(k, n)| (String::from_utf8_lossy(&k).into_owned(), n)))
    }

    fn term_query(&self, field: &str, value: &str) -> Result<tantivy::query::TermQuery> {
        let f = self.index.schema().get_field(field)?;
        let value = if [
            self.fields.user,
            self.fields.operation,
            self.fields.workload,
        ]
        .contains(&f)
        {
            value.to_lowercase()
        } else {
            value.to_string()
        };
        Ok(tantivy::query::TermQuery::new(
            tantivy::Term::from_field_text(f, &value),
            IndexRecordOption::Basic,
        ))
    }

    pub fn indexed_upto(&self) -> Result<i64> {
        indexed_upto(&self.index)
    }

    /// Number of documents in the last committed state.
    pub fn num_docs(&self) -> Result<u64> {
        self.reader.reload()?;
        Ok(self.reader.searcher().num_docs())
    }
}

/// The `rowid` fast field of the first `limit` documents found, in their order. Each
/// segment's column is opened once: opening it decodes the column's block headers, which
/// per document cost more than the whole search.
fn rowids_of<S>(
    searcher: &tantivy::Searcher,
    docs: Vec<(S, tantivy::DocAddress)>,
    limit: usize,
) -> Result<Vec<i64>> {
    let mut rowids = Vec::with_capacity(docs.len().min(limit));
    let mut cols: Vec<Option<tantivy::columnar::Column<u64>>> = Vec::new();
    for (_, addr) in docs.into_iter().take(limit) {
        let seg = addr.segment_ord as usize;
        if cols.len() <= seg {
            cols.resize_with(seg + 1, || None);
        }
        let col = match &mut cols[seg] {
            Some(c) => c,
            slot => slot.insert(
                searcher
                    .segment_reader(addr.segment_ord)
                    .fast_fields()
                    .u64("rowid")?,
            ),
        };
        if let Some(r) = col.first(addr.doc_id) {
            rowids.push(r as i64);
        }
    }
    Ok(rowids)
}

/// Collects (rowid, CreationTime seconds) of every match, in no order: the fast fields
/// are read once per segment and nothing is sorted or scored.
struct RowTimes;

struct RowTimesSegment {
    rowid: tantivy::columnar::Column<u64>,
    time: tantivy::columnar::Column<tantivy::DateTime>,
    out: Vec<(i64, i64)>,
}

impl tantivy::collector::Collector for RowTimes {
    type Fruit = Vec<(i64, i64)>;
    type Child = RowTimesSegment;

    fn for_segment(
        &self,
        _ord: tantivy::SegmentOrdinal,
        segment: &tantivy::SegmentReader,
    ) -> tantivy::Result<RowTimesSegment> {
        let ff = segment.fast_fields();
        Ok(RowTimesSegment {
            rowid: ff.u64("rowid")?,
            time: ff.date("time")?,
            out: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<(i64, i64)>>) -> tantivy::Result<Vec<(i64, i64)>> {
        Ok(fruits.concat())
    }
}

impl tantivy::collector::SegmentCollector for RowTimesSegment {
    type Fruit = Vec<(i64, i64)>;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        // Every document has both (see `document`); one without a rowid names no record.
        if let (Some(r), Some(t)) = (self.rowid.first(doc), self.time.first(doc)) {
            self.out.push((r as i64, t.into_timestamp_secs()));
        }
    }

    fn harvest(self) -> Vec<(i64, i64)> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_reads_at_most_the_cap_smallest_segments_first() {
        let cap = MERGE_MAX_DOCS;
        let docs: HashMap<u8, u32> = [(1, cap * 6 / 10), (2, cap * 3 / 10), (3, cap / 5), (4, cap)]
            .into_iter()
            .collect();
        // the two smallest fit, adding the next would not
        assert_eq!(cap_merge(vec![1, 2, 3, 4], &docs), Some(vec![3, 2]));
        // under the cap: all of it
        let small: HashMap<u8, u32> = [(1, 10), (2, 20), (3, 30)].into_iter().collect();
        assert_eq!(cap_merge(vec![3, 1, 2], &small), Some(vec![1, 2, 3]));
        // one segment alone is no merge
        let big: HashMap<u8, u32> = [(1, cap * 9 / 10), (2, cap * 2 / 3)].into_iter().collect();
        assert_eq!(cap_merge(vec![1, 2], &big), None);
    }

    #[test]
    fn the_search_fields_named_to_users_are_the_indexed_fields() {
        let (schema, _) = schema();
        let mut indexed: Vec<&str> = schema
            .fields()
            .filter(|(_, e)| e.is_indexed())
            .map(|(_, e)| e.name())
            .collect();
        indexed.sort();
        let mut named: Vec<&str> = SEARCH_FIELDS.split(", ").collect();
        named.sort();
        assert_eq!(named, indexed);
    }
}
