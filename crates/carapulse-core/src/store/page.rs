//! Limit/offset pagination with a hard cap, shared by every list query.

use serde::Serialize;

/// Largest page any list returns.
pub const MAX_PAGE_SIZE: i64 = 200;
const DEFAULT_PAGE_SIZE: i64 = 50;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    /// Missing or non-positive limits get the default; larger ones are capped at 200.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Self {
        let limit = match limit {
            Some(l) if l > 0 => l.min(MAX_PAGE_SIZE),
            _ => DEFAULT_PAGE_SIZE,
        };
        Self {
            limit,
            offset: offset.unwrap_or(0).max(0),
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Self::new(None, None)
    }
}

/// One page of results with the total matching (for this tenant).
#[derive(Debug, Clone, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: Page,
}

impl<T> Paged<T> {
    /// Offset of the next page, if there is one.
    pub fn next_offset(&self) -> Option<i64> {
        let next = self.page.offset + self.items.len() as i64;
        (next < self.total && !self.items.is_empty()).then_some(next)
    }
}

/// Rows of a query selecting `COUNT(*) OVER () AS total` into a page, each row through `map`.
pub(crate) fn paged_rows<T>(
    rows: Vec<sqlx::postgres::PgRow>,
    page: Page,
    mut map: impl FnMut(&sqlx::postgres::PgRow) -> Result<T, super::StoreError>,
) -> Result<Paged<T>, super::StoreError> {
    use sqlx::Row;
    let mut total = 0;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        total = row.try_get("total")?;
        items.push(map(row)?);
    }
    Ok(Paged { items, total, page })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps() {
        assert_eq!(
            Page::new(None, None),
            Page {
                limit: 50,
                offset: 0
            }
        );
        assert_eq!(
            Page::new(Some(0), Some(-5)),
            Page {
                limit: 50,
                offset: 0
            }
        );
        assert_eq!(
            Page::new(Some(10_000), Some(7)),
            Page {
                limit: 200,
                offset: 7
            }
        );
        let p = Paged {
            items: vec![1, 2],
            total: 5,
            page: Page::new(Some(2), Some(0)),
        };
        assert_eq!(p.next_offset(), Some(2));
        let p = Paged {
            items: vec![5],
            total: 5,
            page: Page::new(Some(2), Some(4)),
        };
        assert_eq!(p.next_offset(), None);
    }
}
