//! Pages of list results: a keyset cursor on each list's index order, a capped offset for small
//! pages, and totals only when the caller asks for one.
//!
//! Why keyset: a page that counts the tenant's rows (`COUNT(*) OVER ()`) or skips `offset` rows
//! reads the whole prefix of the index, so its cost grows with the table. A page that starts
//! strictly after the last row of the previous one (`(created_at, id) < ($t, $id)`) reads only
//! the rows it returns, at any depth and any table size, and never skips or repeats a row when new
//! ones are inserted while a client pages.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::StoreError;

/// Largest page any list returns.
pub const MAX_PAGE_SIZE: i64 = 200;
const DEFAULT_PAGE_SIZE: i64 = 50;
/// Deepest row an offset page may start at; deeper reads follow `next_cursor`.
pub const MAX_OFFSET: i64 = 10_000;
/// Longest cursor accepted: the ones we hand out are under 200 characters.
const MAX_CURSOR_LEN: usize = 512;

/// Whether and how a list reports the number of matching rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountMode {
    /// No total (the default): a page costs only the rows it returns.
    #[default]
    None,
    /// `count(*)` of the filtered rows: exact, linear in their number.
    Exact,
    /// The query planner's row estimate: constant time, approximate.
    Estimate,
}

impl CountMode {
    /// `none`, `exact` or `estimate`.
    pub fn parse(raw: &str) -> Result<Self, PageError> {
        match raw {
            "none" => Ok(Self::None),
            "exact" => Ok(Self::Exact),
            "estimate" => Ok(Self::Estimate),
            other => Err(PageError::Count(other.to_owned())),
        }
    }
}

/// A page request the caller got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("offset {0} is deeper than {MAX_OFFSET}: follow next_cursor instead")]
    OffsetTooDeep(i64),
    #[error("give either cursor or offset, not both")]
    CursorWithOffset,
    #[error("count must be none, exact or estimate, not {0:?}")]
    Count(String),
    #[error("cursor is not one this list handed out")]
    Cursor,
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
    /// Start strictly after the row this cursor names (opaque to clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<PageCursor>,
    pub count: CountMode,
}

impl Page {
    /// For internal callers: missing or non-positive limits get the default, larger ones are
    /// capped at 200, the offset is clamped to `0..=MAX_OFFSET`.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Self {
        Self {
            limit: clamp_limit(limit),
            offset: offset.unwrap_or(0).clamp(0, MAX_OFFSET),
            cursor: None,
            count: CountMode::None,
        }
    }

    /// The same page, reporting a total as `count` says.
    pub fn with_count(self, count: CountMode) -> Self {
        Self { count, ..self }
    }

    /// The first `limit` rows.
    pub fn first(limit: i64) -> Self {
        Self::new(Some(limit), None)
    }

    /// A client's page request: limits are clamped as in [`Page::new`]; an offset beyond
    /// [`MAX_OFFSET`], an offset together with a cursor, an oversized or malformed cursor and an
    /// unknown count mode are refused.
    pub fn parse(
        limit: Option<i64>,
        offset: Option<i64>,
        cursor: Option<&str>,
        count: Option<&str>,
    ) -> Result<Self, PageError> {
        let offset = offset.unwrap_or(0).max(0);
        if offset > MAX_OFFSET {
            return Err(PageError::OffsetTooDeep(offset));
        }
        let cursor = cursor.filter(|c| !c.is_empty());
        if cursor.is_some() && offset > 0 {
            return Err(PageError::CursorWithOffset);
        }
        let cursor = cursor.map(PageCursor::parse).transpose()?;
        Ok(Self {
            limit: clamp_limit(limit),
            offset,
            cursor,
            count: count.map(CountMode::parse).transpose()?.unwrap_or_default(),
        })
    }
}

fn clamp_limit(limit: Option<i64>) -> i64 {
    match limit {
        Some(l) if l > 0 => l.min(MAX_PAGE_SIZE),
        _ => DEFAULT_PAGE_SIZE,
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::new(None, None)
    }
}

/// One page of results.
#[derive(Debug, Clone, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: Page,
    /// Whether rows follow this page.
    pub has_more: bool,
    /// Where the next page starts; absent on the last page.
    pub next_cursor: Option<String>,
    /// Matching rows, only when the request asked for a count.
    pub total: Option<i64>,
}

impl<T> Paged<T> {
    /// Whether `total` is the planner's estimate rather than an exact count.
    pub fn total_is_estimate(&self) -> bool {
        self.page.count == CountMode::Estimate
    }

    /// Offset of the next page for a client paging by offset, while that stays within
    /// [`MAX_OFFSET`]; cursor clients follow `next_cursor`.
    pub fn next_offset(&self) -> Option<i64> {
        let next = self.page.offset + self.items.len() as i64;
        (self.page.cursor.is_none() && self.has_more && next <= MAX_OFFSET).then_some(next)
    }
}

/// The SQL type of one sort-key column, so a cursor's values bind with the column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Time,
    Uuid,
    Text,
    Int,
}

/// One sort-key value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyValue {
    Time(DateTime<Utc>),
    Uuid(Uuid),
    Text(String),
    Int(i64),
}

impl KeyValue {
    fn encode(&self) -> String {
        match self {
            Self::Time(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            Self::Uuid(u) => u.to_string(),
            Self::Text(s) => s.clone(),
            Self::Int(i) => i.to_string(),
        }
    }

    fn decode(kind: KeyKind, raw: &str) -> Option<Self> {
        Some(match kind {
            KeyKind::Time => {
                Self::Time(DateTime::parse_from_rfc3339(raw).ok()?.with_timezone(&Utc))
            }
            KeyKind::Uuid => Self::Uuid(Uuid::parse_str(raw).ok()?),
            KeyKind::Text => Self::Text(raw.to_owned()),
            KeyKind::Int => Self::Int(raw.parse().ok()?),
        })
    }

    fn push_bind(self, qb: &mut QueryBuilder<'_, Postgres>) {
        match self {
            Self::Time(t) => qb.push_bind(t),
            Self::Uuid(u) => qb.push_bind(u),
            Self::Text(s) => qb.push_bind(s),
            Self::Int(i) => qb.push_bind(i),
        };
    }
}

/// A list's order: the columns of its index, all descending or all ascending, ending in a
/// unique column so the order is total.
#[derive(Debug)]
pub(crate) struct Keyset {
    /// Names the list inside its cursors, so a cursor from one list is refused by another.
    pub list: &'static str,
    pub columns: &'static [(&'static str, KeyKind)],
    pub descending: bool,
}

/// A cursor as the client sent it, decoded once when the request is parsed (its values are
/// checked against the list's key types when the page is read). Serialises as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor {
    raw: String,
    decoded: RawCursor,
}

impl PageCursor {
    fn parse(raw: &str) -> Result<Self, PageError> {
        Ok(Self {
            raw: raw.to_owned(),
            decoded: RawCursor::decode(raw)?,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl Serialize for PageCursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

/// A cursor's wire form: base64url of `{"l": list, "k": [key values as text]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RawCursor {
    l: String,
    k: Vec<String>,
}

impl RawCursor {
    fn decode(raw: &str) -> Result<Self, PageError> {
        if raw.len() > MAX_CURSOR_LEN {
            return Err(PageError::Cursor);
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| PageError::Cursor)?;
        serde_json::from_slice(&bytes).map_err(|_| PageError::Cursor)
    }
}

impl Keyset {
    fn encode(&self, key: &[KeyValue]) -> String {
        let raw = RawCursor {
            l: self.list.to_owned(),
            k: key.iter().map(KeyValue::encode).collect(),
        };
        // Serialising two strings and a list of strings cannot fail.
        let json = serde_json::to_vec(&raw).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// The key values `cursor` names, when it is one of this list's.
    fn keys(&self, cursor: &PageCursor) -> Result<Vec<KeyValue>, StoreError> {
        let invalid = || StoreError::InvalidCursor(PageError::Cursor.to_string());
        let cursor = &cursor.decoded;
        if cursor.l != self.list || cursor.k.len() != self.columns.len() {
            return Err(invalid());
        }
        self.columns
            .iter()
            .zip(&cursor.k)
            .map(|((_, kind), raw)| KeyValue::decode(*kind, raw).ok_or_else(invalid))
            .collect()
    }

    /// ` AND (c1, c2) < (v1, v2)` (or `>` ascending) for a page after `after`.
    fn push_after(&self, qb: &mut QueryBuilder<'_, Postgres>, after: Vec<KeyValue>) {
        let columns: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
        qb.push(format!(" AND ({}) ", columns.join(", ")));
        qb.push(if self.descending { "< (" } else { "> (" });
        for (i, value) in after.into_iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            value.push_bind(qb);
        }
        qb.push(")");
    }

    fn push_order(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        let dir = if self.descending { " DESC" } else { "" };
        let order: Vec<String> = self
            .columns
            .iter()
            .map(|(c, _)| format!("{c}{dir}"))
            .collect();
        qb.push(format!(" ORDER BY {}", order.join(", ")));
    }
}

/// Which projection a list's query should select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Select {
    /// The row's columns, for the page itself.
    Rows,
    /// A constant, for counting and estimating.
    Count,
}

impl Select {
    /// Starts a list query: `SELECT <columns, or 1 for counting> <from>`, where `from` ends in
    /// the tenant comparison (`FROM plans WHERE tenant_id = `), then binds `tenant`.
    pub(crate) fn head(
        self,
        qb: &mut QueryBuilder<'_, Postgres>,
        columns: &str,
        from: &str,
        tenant: &crate::model::TenantId,
    ) {
        qb.push(format!("SELECT {} {from}", self.columns(columns)))
            .push_bind(tenant.as_str().to_owned());
    }

    /// `columns` for rows, `1` for counting.
    pub(crate) fn columns(self, columns: &str) -> &str {
        match self {
            Self::Rows => columns,
            Self::Count => "1",
        }
    }
}

/// One page of a list. `query` pushes `SELECT <projection> FROM … WHERE <filters>` (its WHERE
/// clause must be present, since the keyset condition is appended with `AND`); rows are mapped
/// by `map`, and `key` gives a row's sort-key values in `keyset` order for the next cursor.
pub(crate) async fn fetch_page<'q, T>(
    pool: &PgPool,
    page: Page,
    keyset: &Keyset,
    query: impl Fn(&mut QueryBuilder<'q, Postgres>, Select),
    mut map: impl FnMut(&PgRow) -> Result<T, StoreError>,
    key: impl Fn(&T) -> Vec<KeyValue>,
) -> Result<Paged<T>, StoreError> {
    let after = page
        .cursor
        .as_ref()
        .map(|cursor| keyset.keys(cursor))
        .transpose()?;
    let mut qb = QueryBuilder::new("");
    query(&mut qb, Select::Rows);
    let keyed = after.is_some();
    if let Some(after) = after {
        keyset.push_after(&mut qb, after);
    }
    keyset.push_order(&mut qb);
    qb.push(" LIMIT ").push_bind(page.limit + 1);
    if !keyed && page.offset > 0 {
        qb.push(" OFFSET ").push_bind(page.offset);
    }
    let rows = qb.build().fetch_all(pool).await?;
    let has_more = rows.len() as i64 > page.limit;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows.iter().take(page.limit as usize) {
        items.push(map(row)?);
    }
    let next_cursor = if has_more {
        items.last().map(|last| keyset.encode(&key(last)))
    } else {
        None
    };
    let total = match page.count {
        CountMode::None => None,
        CountMode::Exact => {
            let mut qb = QueryBuilder::new("SELECT count(*) FROM (");
            query(&mut qb, Select::Count);
            qb.push(") counted");
            let (n,): (i64,) = qb.build_query_as().fetch_one(pool).await?;
            Some(n)
        }
        CountMode::Estimate => {
            let mut qb = QueryBuilder::new("EXPLAIN (FORMAT JSON) ");
            query(&mut qb, Select::Count);
            // Not cached: a cached statement may get a generic plan, whose row estimate ignores
            // the tenant and filter values.
            let (plan,): (serde_json::Value,) = qb
                .build_query_as()
                .persistent(false)
                .fetch_one(pool)
                .await?;
            let rows = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0);
            Some(rows.round() as i64)
        }
    };
    Ok(Paged {
        items,
        page,
        has_more,
        next_cursor,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLANS: Keyset = Keyset {
        list: "plans",
        columns: &[("created_at", KeyKind::Time), ("plan_id", KeyKind::Uuid)],
        descending: true,
    };

    #[test]
    fn clamps_internal_pages() {
        assert_eq!(Page::new(None, None).limit, 50);
        let p = Page::new(Some(0), Some(-5));
        assert_eq!((p.limit, p.offset), (50, 0));
        let p = Page::new(Some(10_000), Some(7));
        assert_eq!((p.limit, p.offset), (200, 7));
        assert_eq!(Page::new(None, Some(1 << 40)).offset, MAX_OFFSET);
    }

    #[test]
    fn refuses_what_a_client_gets_wrong() {
        assert_eq!(
            Page::parse(None, Some(MAX_OFFSET + 1), None, None),
            Err(PageError::OffsetTooDeep(MAX_OFFSET + 1))
        );
        let cursor = PLANS.encode(&[KeyValue::Time(Utc::now()), KeyValue::Uuid(Uuid::nil())]);
        assert_eq!(
            Page::parse(None, Some(5), Some(&cursor), None),
            Err(PageError::CursorWithOffset)
        );
        assert_eq!(
            Page::parse(None, None, None, Some("all")),
            Err(PageError::Count("all".into()))
        );
        assert_eq!(
            Page::parse(None, None, Some("not base64!"), None),
            Err(PageError::Cursor)
        );
        assert_eq!(
            Page::parse(None, None, Some(&"A".repeat(600)), None),
            Err(PageError::Cursor)
        );
        let ok = Page::parse(Some(10), None, Some(&cursor), Some("estimate")).unwrap();
        assert_eq!(ok.count, CountMode::Estimate);
        assert_eq!(
            ok.cursor.as_ref().map(PageCursor::as_str),
            Some(cursor.as_str())
        );
    }

    #[test]
    fn cursors_round_trip_and_name_their_list() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T07:01:02.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Uuid::new_v4();
        let cursor = PLANS.encode(&[KeyValue::Time(at), KeyValue::Uuid(id)]);
        assert_eq!(
            PLANS.keys(&PageCursor::parse(&cursor).unwrap()).unwrap(),
            vec![KeyValue::Time(at), KeyValue::Uuid(id)]
        );
        let audit = Keyset {
            list: "audit",
            columns: &[("seq", KeyKind::Int)],
            descending: true,
        };
        assert!(matches!(
            audit.keys(&PageCursor::parse(&cursor).unwrap()),
            Err(StoreError::InvalidCursor(_))
        ));
        // A cursor naming the right list with a value of the wrong type is refused too.
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"l":"plans","k":["yesterday","x"]}"#);
        assert!(matches!(
            PLANS.keys(&PageCursor::parse(&forged).unwrap()),
            Err(StoreError::InvalidCursor(_))
        ));
    }

    #[test]
    fn next_offset_only_for_offset_clients_within_the_cap() {
        let some_cursor = PLANS.encode(&[KeyValue::Time(Utc::now()), KeyValue::Uuid(Uuid::nil())]);
        let page = |offset, cursor: Option<&str>| Paged {
            items: vec![1, 2],
            page: Page {
                cursor: cursor.map(|c| PageCursor::parse(c).unwrap()),
                ..Page::new(Some(2), Some(offset))
            },
            has_more: true,
            next_cursor: Some("c".into()),
            total: None,
        };
        assert_eq!(page(0, None).next_offset(), Some(2));
        assert_eq!(page(0, Some(&some_cursor)).next_offset(), None);
        assert_eq!(page(MAX_OFFSET - 1, None).next_offset(), None);
        let last = Paged {
            has_more: false,
            ..page(0, None)
        };
        assert_eq!(last.next_offset(), None);
    }
}
