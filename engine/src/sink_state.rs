//! Several sinks' states in one task's snapshot: for a sink writer that drives more than one
//! sink (the ledger's writer feeds a balances sink and a dead-letter sink), whose task can store
//! one state only. [`combine`] packs what each inner writer's `snapshot` returned, [`split`]
//! unpacks a restored payload, and [`split_restored`] gives each inner committer its own
//! [`RestoredState`].

use crate::contract::restored::RestoredState;

/// Starts a combined state, so that it is told apart from any one sink's state.
const MAGIC: &[u8; 8] = b"SFCOMBO1";

/// Packs the states of several sinks (in a fixed order) into one payload.
pub fn combine(parts: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(parts.len() as u32).to_le_bytes());
    for part in parts {
        match part {
            None => out.extend_from_slice(&u64::MAX.to_le_bytes()),
            Some(bytes) => {
                out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }
    out
}

/// Unpacks a payload made by [`combine`]; `None` when `bytes` is not one.
pub fn split(bytes: &[u8]) -> Option<Vec<Option<Vec<u8>>>> {
    let mut rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (count, tail) = rest.split_first_chunk::<4>()?;
    rest = tail;
    let mut parts = Vec::new();
    for _ in 0..u32::from_le_bytes(*count) {
        let (len, tail) = rest.split_first_chunk::<8>()?;
        rest = tail;
        let len = u64::from_le_bytes(*len);
        if len == u64::MAX {
            parts.push(None);
            continue;
        }
        let (part, tail) = rest.split_at_checked(usize::try_from(len).ok()?)?;
        parts.push(Some(part.to_vec()));
        rest = tail;
    }
    rest.is_empty().then_some(parts)
}

/// The restored state of inner sink `index` of a writer whose tasks stored [`combine`]d
/// states: each old task's part `index`, where it had one.
///
/// # Errors
/// A payload that is not a combined state (the checkpoint was written by another job graph).
pub fn split_restored(restored: &RestoredState, index: usize) -> Result<RestoredState, String> {
    let mut payloads = Vec::new();
    for payload in restored.payloads() {
        let parts = split(payload).ok_or_else(|| {
            format!(
                "checkpoint {}: a sink's state is not the combined state of several sinks",
                restored.checkpoint()
            )
        })?;
        payloads.extend(parts.into_iter().nth(index).flatten());
    }
    Ok(RestoredState::from_payloads(
        restored.checkpoint(),
        restored.key_groups().clone(),
        payloads,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_states_round_trip_and_every_truncation_is_refused() {
        let parts = vec![Some(b"abc".to_vec()), None, Some(Vec::new())];
        let bytes = combine(&parts);
        assert_eq!(split(&bytes), Some(parts));
        for n in 0..bytes.len() {
            assert_eq!(split(&bytes[..n]), None, "cut at {n}");
        }
        assert_eq!(split(b"SFFSINK1..."), None);
    }
}
