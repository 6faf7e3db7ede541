//! Pages of a list, with opaque cursors: a cursor names the entry a page
//! ended on, so a list that changes between calls (a queue, the saved
//! threads) goes on from where the client was, not from an offset.

use tiller_app_server_protocol::{ErrorCode, JsonRpcError};

/// What a backwards cursor starts with: the named entry is included again.
const INCLUSIVE: &str = "incl:";

/// One page.
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    /// Where the next page starts (after the last entry); `None` at the end.
    pub(crate) next: Option<String>,
    /// For the opposite order: from this page's first entry, included.
    pub(crate) back: Option<String>,
}

/// The page of `items` (in the order they are listed) after `cursor`, at
/// most `limit` long. A cursor that names no entry is refused: the entry
/// is gone and the client should list again from the start.
pub(crate) fn page<T: Clone>(
    items: &[T],
    key: impl Fn(&T) -> &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<T>, JsonRpcError> {
    let start = match cursor {
        None => 0,
        Some(cursor) => {
            let (id, inclusive) = match cursor.strip_prefix(INCLUSIVE) {
                Some(id) => (id, true),
                None => (cursor, false),
            };
            let at = items.iter().position(|item| key(item) == id).ok_or_else(|| {
                JsonRpcError::new(
                    ErrorCode::InvalidParams,
                    format!("cursor {cursor} names nothing in the list any more; list again without a cursor"),
                )
            })?;
            if inclusive { at } else { at + 1 }
        }
    };
    let rest = &items[start..];
    let taken: Vec<T> = rest.iter().take(limit.max(1)).cloned().collect();
    let next = (rest.len() > taken.len())
        .then(|| taken.last().map(|item| key(item).to_string()))
        .flatten();
    let back = taken
        .first()
        .map(|item| format!("{INCLUSIVE}{}", key(item)));
    Ok(Page {
        items: taken,
        next,
        back,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn pages_follow_their_cursors_and_a_gone_cursor_is_refused() {
        let items = list(&["a", "b", "c", "d", "e"]);
        let first = page(&items, String::as_str, None, 2).unwrap();
        assert_eq!(first.items, list(&["a", "b"]));
        assert_eq!(first.next.as_deref(), Some("b"));
        let second = page(&items, String::as_str, first.next.as_deref(), 2).unwrap();
        assert_eq!(second.items, list(&["c", "d"]));
        let last = page(&items, String::as_str, second.next.as_deref(), 2).unwrap();
        assert_eq!(last.items, list(&["e"]));
        assert_eq!(last.next, None);
        // Backwards from the last page, its first entry included.
        let reversed: Vec<String> = items.iter().rev().cloned().collect();
        let back = page(&reversed, String::as_str, last.back.as_deref(), 2).unwrap();
        assert_eq!(back.items, list(&["e", "d"]));
        let gone = page(&items, String::as_str, Some("zz"), 2).err().unwrap();
        assert_eq!(gone.code, -32602);
        // A limit of 0 is a page of one.
        let one = page(&items, String::as_str, None, 0).unwrap();
        assert_eq!(one.items, list(&["a"]));
    }
}
