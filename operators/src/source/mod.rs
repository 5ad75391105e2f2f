//! Built-in sources.

mod collection;
mod file;
mod file_rescale;
mod generator;
mod identity;

pub use identity::InputError;

pub use collection::CollectionSource;
pub use file::TextFileSource;
pub use generator::GeneratorSource;

use snapflow_engine::SourcePosition;
use std::ops::Range;

/// Decodes an [`index_position`] and checks that it lies in `range` (the task's share).
pub(crate) fn seek_index(position: &SourcePosition, range: &Range<u64>) -> Result<u64, String> {
    let bytes: [u8; 8] = position
        .offset
        .as_slice()
        .try_into()
        .map_err(|_| format!("position {:?} is not an index", position.description))?;
    let next = u64::from_le_bytes(bytes);
    if next < range.start || next > range.end {
        return Err(format!(
            "position {} lies outside this task's share {}..{}",
            next, range.start, range.end
        ));
    }
    Ok(next)
}

/// The position of a reader that emits items by index: the index of the next one.
pub(crate) fn index_position(next: u64, what: &str) -> SourcePosition {
    SourcePosition {
        offset: next.to_le_bytes().to_vec(),
        description: format!("{what} {next}"),
    }
}

/// Task `index`'s share of `len` items split evenly over `parallelism` tasks: contiguous, and
/// together the shares cover `0..len` exactly once.
pub(crate) fn share(len: u64, index: usize, parallelism: usize) -> Range<u64> {
    let bound = |i: usize| (u128::from(len) * i as u128 / parallelism as u128) as u64;
    bound(index)..bound(index + 1)
}

#[cfg(test)]
mod tests {
    use super::share;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shares_cover_everything_once(len in 0u64..10_000, p in 1usize..16) {
            let mut next = 0;
            for i in 0..p {
                let r = share(len, i, p);
                prop_assert_eq!(r.start, next);
                next = r.end;
            }
            prop_assert_eq!(next, len);
        }
    }
}
