//! The bytes CSV's syntax turns on (quote, line feed, delimiter) found 64 at a time, as bit
//! masks ([`masks`]): framing reads them block after block (`starts`), and the parser asks an
//! [`Index`] for the next quote (with the line feeds before it), or the next delimiter or line
//! feed, where it searched the bytes anew for each (a `memchr` and a line count set up for every
//! quoted field, and for every stretch of one between two quotes). A block's masks are found
//! once, and each answer is a bit search.

/// Bytes looked at together.
pub(super) const BLOCK: usize = 64;

/// A block's quotes, line feeds and delimiters: bit k for byte k.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Masks {
    pub quote: u64,
    pub line_feed: u64,
    pub delimiter: u64,
}

/// Bit k of the result: the parity of the bits up to and including k.
pub(super) fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

#[cfg(target_arch = "x86_64")]
pub(super) fn masks(block: &[u8; BLOCK], quote: u8, delimiter: u8) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    // SAFETY: SSE2 is part of x86-64, so every CPU this runs on has these instructions; each
    // unaligned load reads 16 bytes of `part`, which holds 16.
    unsafe {
        let (q, lf, d) = (
            _mm_set1_epi8(quote as i8),
            _mm_set1_epi8(b'\n' as i8),
            _mm_set1_epi8(delimiter as i8),
        );
        for (i, part) in block.chunks_exact(16).enumerate() {
            let v = _mm_loadu_si128(part.as_ptr().cast());
            let at = 16 * i;
            m.quote |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, q)) as u16) << at;
            m.line_feed |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf)) as u16) << at;
            m.delimiter |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, d)) as u16) << at;
        }
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
pub(super) fn masks(block: &[u8; BLOCK], quote: u8, delimiter: u8) -> Masks {
    masks_of(block, quote, delimiter)
}

/// [`masks`] of up to [`BLOCK`] bytes, a byte at a time.
fn masks_of(bytes: &[u8], quote: u8, delimiter: u8) -> Masks {
    let mut m = Masks::default();
    for (k, &b) in bytes.iter().enumerate().take(BLOCK) {
        m.quote |= u64::from(b == quote) << k;
        m.line_feed |= u64::from(b == b'\n') << k;
        m.delimiter |= u64::from(b == delimiter) << k;
    }
    m
}

/// The masks of `data`'s blocks (at multiples of [`BLOCK`] from its start), found as the
/// searches reach them; the last block found is kept, so searches that go forward through a
/// record find each block's masks once.
pub(super) struct Index<'d> {
    data: &'d [u8],
    quote: u8,
    delimiter: u8,
    /// The block whose masks are held (`usize::MAX`: none yet).
    at: usize,
    m: Masks,
}

impl<'d> Index<'d> {
    pub(super) fn new(data: &'d [u8], quote: u8, delimiter: u8) -> Index<'d> {
        Index {
            data,
            quote,
            delimiter,
            at: usize::MAX,
            m: Masks::default(),
        }
    }

    /// The masks of the block at `at`.
    #[inline]
    fn block(&mut self, at: usize) -> Masks {
        if at != self.at {
            self.at = at;
            let rest = self.data.get(at..).unwrap_or_default();
            self.m = match rest.first_chunk::<BLOCK>() {
                Some(b) => masks(b, self.quote, self.delimiter),
                None => masks_of(rest, self.quote, self.delimiter),
            };
        }
        self.m
    }

    /// The first byte in `from..end` whose bit `pick` sets.
    #[inline]
    fn find(&mut self, from: usize, end: usize, pick: impl Fn(Masks) -> u64) -> Option<usize> {
        let mut p = from;
        while p < end {
            let at = p - p % BLOCK;
            let bits = pick(self.block(at)) >> (p - at);
            if bits != 0 {
                let k = p + bits.trailing_zeros() as usize;
                return (k < end).then_some(k);
            }
            p = at + BLOCK;
        }
        None
    }

    /// The first quote in `from..end` (`None`: there is none), with the line feeds from
    /// `from` up to it (or to `end`): the end of a quoted stretch and the lines it spans, in
    /// one walk through its blocks.
    #[inline]
    pub(super) fn quote_after_lines(&mut self, from: usize, end: usize) -> (Option<usize>, u64) {
        let mut lines = 0;
        let mut p = from;
        while p < end {
            let at = p - p % BLOCK;
            let m = self.block(at);
            let skip = p - at;
            // The bytes of this block up to `end`, from `p`.
            let width = (end - at).min(BLOCK) - skip;
            let within = match width {
                BLOCK => u64::MAX,
                w => (1u64 << w) - 1,
            };
            let quotes = (m.quote >> skip) & within;
            let feeds = (m.line_feed >> skip) & within;
            if quotes != 0 {
                let k = quotes.trailing_zeros();
                let before = feeds & ((1u64 << k) - 1);
                return (Some(p + k as usize), lines + u64::from(before.count_ones()));
            }
            lines += u64::from(feeds.count_ones());
            p = at + BLOCK;
        }
        (None, lines)
    }

    /// The first delimiter or line feed in `from..end`.
    #[inline]
    pub(super) fn delimiter_or_line_feed(&mut self, from: usize, end: usize) -> Option<usize> {
        self.find(from, end, |m| m.delimiter | m.line_feed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every search gives what a search of the bytes gives, from any place to any end.
        #[test]
        fn an_index_finds_what_a_byte_search_finds(
            data in proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b','), Just(b'"'), Just(b'\n'), Just(b';')],
                0..300,
            ),
            ranges in proptest::collection::vec((0usize..320, 0usize..320), 1..20),
        ) {
            let mut index = Index::new(&data, b'"', b',');
            for (from, end) in ranges {
                let end = end.min(data.len());
                let hay = data.get(from..end).unwrap_or_default();
                let first = |f: &dyn Fn(u8) -> bool| hay.iter().position(|&b| f(b)).map(|i| from + i);
                prop_assert_eq!(
                    index.delimiter_or_line_feed(from, end),
                    first(&|b| b == b',' || b == b'\n')
                );
                let quote = first(&|b| b == b'"');
                let before = &hay[..quote.map_or(hay.len(), |q| q - from)];
                prop_assert_eq!(
                    index.quote_after_lines(from, end),
                    (quote, before.iter().filter(|&&b| b == b'\n').count() as u64)
                );
            }
        }
    }
}
