#![allow(dead_code)] // Shared by the wordcount example and the benches; each uses part of it.
#![allow(unreachable_pub)] // Only ever in binaries (examples, tests, benches): `pub` is crate-wide.
//! A deterministic word-count corpus: Zipf-distributed pseudo-words, a fixed number per line,
//! in the spirit of `shared/peers/corpus.py` (same shape, not the same bytes).
//!
//! Line `i` depends only on the seed and `i`, so any line can be produced on its own.

use super::rng::SplitMix64;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Generates corpus lines.
pub struct Corpus {
    vocabulary: Vec<String>,
    /// Cumulative Zipf weights of the vocabulary, by rank.
    cumulative: Vec<f64>,
    words_per_line: usize,
    seed: u64,
}

impl Corpus {
    /// A corpus over `vocabulary_size` words with Zipf exponent 1.1.
    pub fn new(vocabulary_size: usize, words_per_line: usize, seed: u64) -> Self {
        let vocabulary = (0..vocabulary_size as u64)
            .map(|k| {
                let mut rng = SplitMix64(seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
                let len = 3 + (rng.next() % 10) as usize;
                (0..len)
                    .map(|_| (b'a' + (rng.next() % 26) as u8) as char)
                    .collect()
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (1..=vocabulary_size)
            .map(|rank| {
                total += (rank as f64).powf(-1.1);
                total
            })
            .collect();
        Corpus {
            vocabulary,
            cumulative,
            words_per_line,
            seed,
        }
    }

    /// Line `i` of the corpus.
    pub fn line(&self, i: u64) -> String {
        let mut rng = SplitMix64(
            self.seed
                .wrapping_add(i.wrapping_mul(0xd1b5_4a32_d192_ed03)),
        );
        let total = *self.cumulative.last().unwrap_or(&0.0);
        let mut line = String::with_capacity(self.words_per_line * 9);
        for w in 0..self.words_per_line {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
            let rank = self
                .cumulative
                .partition_point(|&c| c < u)
                .min(self.vocabulary.len() - 1);
            if w > 0 {
                line.push(' ');
            }
            line.push_str(&self.vocabulary[rank]);
        }
        line
    }

    /// Writes lines `0..lines` to `path`, one per line.
    pub fn write_to(&self, path: &Path, lines: u64) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
        for i in 0..lines {
            out.write_all(self.line(i).as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}
