//! SHA-256 checksums taken two streams at a time: [`Sha256`] is one checksum as it is taken,
//! and [`Sha256::update_pair`] feeds two of them at once (a unit's input and output, which
//! `engine::file` writes side by side); [`Pairing`] pairs the pieces of checksums that separate
//! threads take at the same time (copies of local files, one thread each: the fetch's from a
//! local source, uploads to a local folder). With it, the fetch of the bench's tenth of a day
//! from a local folder took 0.22-0.30 s of user CPU, against 0.40-0.47 s (docs/benchmarks.md).
//!
//! Why not `sha2::Sha256` alone: the SHA instructions of x86-64 CPUs compute a block in a chain
//! of dependent rounds, so one stream leaves the unit idle between rounds. Stepping a second
//! stream through the same rounds fills that time. Measured on this project's machine (AMD
//! EPYC, Zen 4) on 64 MB per stream: the rounds alone 1,621-1,710 MB/s for two streams one after
//! the other with `sha2`, 3,273-3,328 MB/s for both at once (1.9 to 2 times); [`Sha256`] fed in
//! 1 MiB pieces, 1,699-1,715 MB/s with `sha2`, 2,861-2,934 MB/s paired (1.67 to 1.71 times).
//! On an Intel Xeon (with AVX-512), [`Sha256`] fed in 1 MiB pieces took 1,429-1,433 MB/s one
//! stream at a time and 1,778-1,790 MB/s paired, 1.24 to 1.25 times; OpenSSL's own assembly
//! (`openssl speed -evp sha256`, 1 MiB pieces) 1,448 MB/s there, within 1.5 % of `sha2`. On
//! another Intel Xeon (2.80 GHz, AVX-512, 2026-12-07) pairing gave nothing: two 256 MB streams
//! fed in 1 MiB pieces, 1,260-1,284 MB/s paired against 1,215-1,288 MB/s one at a time (three
//! rounds; 64 KiB pieces the same): there one stream seems to keep the SHA instructions busy
//! already, and pairing neither gained nor lost in that loop.
//! SHA-256 was 14 to 22 % of `process`'s samples, most of it the input's and the output's
//! checksums, which `engine::file` takes chunk by chunk at the same time anyway. No maintained
//! crate hashes two independent streams at once (`sha2`, `ring` and `aws-lc-rs` take one; see
//! docs/benchmarks.md), so the two-stream rounds are written here, on `sha2`'s single-stream
//! compression for everything else (partial blocks, the longer stream's rest, CPUs without the
//! SHA instructions).
//! The property test below compares every result with `sha2`'s.

use sha2::digest::generic_array::GenericArray;

/// SHA-256 initial hash value.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

type Block = [u8; 64];

/// A SHA-256 checksum being taken.
#[derive(Clone)]
pub struct Sha256 {
    state: [u32; 8],
    /// The bytes of a block not complete yet: `buffer[..buffered]`.
    buffer: Block,
    buffered: usize,
    /// Bytes taken in all.
    length: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Sha256::new()
    }
}

impl Sha256 {
    pub fn new() -> Sha256 {
        Sha256 {
            state: H0,
            buffer: [0; 64],
            buffered: 0,
            length: 0,
        }
    }

    /// Takes `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        let blocks = self.top_up(bytes);
        let (whole, rest) = blocks.as_chunks::<64>();
        compress(&mut self.state, whole);
        self.keep(rest);
    }

    /// Takes `x` into `a` and `y` into `b`, the whole blocks of both stepped together while
    /// both have some.
    pub fn update_pair(a: &mut Sha256, x: &[u8], b: &mut Sha256, y: &[u8]) {
        let (x, y) = (a.top_up(x), b.top_up(y));
        let (xs, x_rest) = x.as_chunks::<64>();
        let (ys, y_rest) = y.as_chunks::<64>();
        let both = xs.len().min(ys.len());
        compress_pair(&mut a.state, &xs[..both], &mut b.state, &ys[..both]);
        compress(&mut a.state, &xs[both..]);
        compress(&mut b.state, &ys[both..]);
        a.keep(x_rest);
        b.keep(y_rest);
    }

    /// The checksum of every byte taken.
    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.length.wrapping_mul(8);
        let mut tail = [0u8; 128];
        let n = self.buffered;
        tail[..n].copy_from_slice(&self.buffer[..n]);
        tail[n] = 0x80;
        // The length goes in the last 8 bytes of the block that has room for it after the 0x80.
        let end = if n < 56 { 64 } else { 128 };
        tail[end - 8..end].copy_from_slice(&bits.to_be_bytes());
        let (blocks, _) = tail[..end].as_chunks::<64>();
        compress(&mut self.state, blocks);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Counts `bytes`, completes the held block from them (compressing it when full), and
    /// returns the bytes that remain.
    fn top_up<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        self.length = self.length.wrapping_add(bytes.len() as u64);
        if self.buffered == 0 {
            return bytes;
        }
        let take = (64 - self.buffered).min(bytes.len());
        self.buffer[self.buffered..self.buffered + take].copy_from_slice(&bytes[..take]);
        self.buffered += take;
        if self.buffered == 64 {
            let block = self.buffer;
            compress(&mut self.state, &[block]);
            self.buffered = 0;
        }
        &bytes[take..]
    }

    /// Holds `rest` (less than a block, taken when nothing was held) for the next bytes.
    fn keep(&mut self, rest: &[u8]) {
        if !rest.is_empty() {
            self.buffer[..rest.len()].copy_from_slice(rest);
            self.buffered = rest.len();
        }
    }
}

/// One stream's whole blocks, with `sha2`'s compression (its SHA-instruction code where the
/// CPU has them).
fn compress(state: &mut [u32; 8], blocks: &[Block]) {
    if blocks.is_empty() {
        return;
    }
    // SAFETY: `GenericArray<u8, U64>` has the layout of `[u8; 64]` (size 64, alignment 1), which
    // `sha2` relies on for the same cast.
    let blocks: &[GenericArray<u8, sha2::digest::consts::U64>] =
        unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast(), blocks.len()) };
    sha2::compress256(state, blocks);
}

/// Two streams' whole blocks, as many of each, stepped together where the CPU has the SHA
/// instructions.
fn compress_pair(a: &mut [u32; 8], xs: &[Block], b: &mut [u32; 8], ys: &[Block]) {
    debug_assert_eq!(xs.len(), ys.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
    {
        // SAFETY: the CPU has the instructions the function is compiled for.
        unsafe { x86::compress_pair(a, xs, b, ys) };
        return;
    }
    compress(a, xs);
    compress(b, ys);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! Two SHA-256 streams through the SHA instructions, round by round: the rounds and the
    //! message schedule are `sha2`'s (`sha2::sha256::x86`), written once for each stream.

    use std::arch::x86_64::*;

    use super::Block;

    /// The round constants, four per round group.
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// The next four message words from the sixteen before them.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn schedule(v0: __m128i, v1: __m128i, v2: __m128i, v3: __m128i) -> __m128i {
        let t1 = _mm_sha256msg1_epu32(v0, v1);
        let t2 = _mm_alignr_epi8(v3, v2, 4);
        _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), v3)
    }

    /// Message words `4 i .. 4 i + 4` of `block`, as the rounds take them.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn word(block: &Block, i: usize, mask: __m128i) -> __m128i {
        let bytes = &block[16 * i..16 * i + 16];
        // SAFETY: `bytes` holds the 16 bytes an unaligned load reads.
        _mm_shuffle_epi8(unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }, mask)
    }

    /// A state in the instructions' layout: words A, B, E, F and C, D, G, H.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
        let p = state.as_ptr().cast::<__m128i>();
        // SAFETY: `state` holds the 32 bytes the two unaligned loads read.
        let (dcba, hgfe) = unsafe { (_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))) };
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        (
            _mm_alignr_epi8(cdab, efgh, 8),
            _mm_blend_epi16(efgh, cdab, 0xF0),
        )
    }

    /// The state back in its own layout.
    #[inline]
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    fn store(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        let feba = _mm_shuffle_epi32(abef, 0x1B);
        let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
        let p = state.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `state` holds the 32 bytes the two unaligned stores write.
        unsafe {
            _mm_storeu_si128(p, _mm_blend_epi16(feba, dchg, 0xF0));
            _mm_storeu_si128(p.add(1), _mm_alignr_epi8(dchg, feba, 8));
        }
    }

    /// Four rounds of one stream.
    macro_rules! rounds4 {
        ($abef:ident, $cdgh:ident, $w:expr, $k:expr) => {{
            let t = _mm_add_epi32($w, $k);
            $cdgh = _mm_sha256rnds2_epu32($cdgh, $abef, t);
            $abef = _mm_sha256rnds2_epu32($abef, $cdgh, _mm_shuffle_epi32(t, 0x0E));
        }};
    }

    /// Compresses `xs` into `a` and `ys` into `b` (as many blocks each).
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) fn compress_pair(a: &mut [u32; 8], xs: &[Block], b: &mut [u32; 8], ys: &[Block]) {
        let mask = _mm_set_epi64x(
            0x0C0D_0E0F_0809_0A0Bu64 as i64,
            0x0405_0607_0001_0203u64 as i64,
        );
        // The round constants, four to a vector.
        let mut k4 = [_mm_setzero_si128(); 16];
        for (v, k) in k4.iter_mut().zip(K.chunks_exact(4)) {
            *v = _mm_set_epi32(k[3] as i32, k[2] as i32, k[1] as i32, k[0] as i32);
        }
        let (mut abef_a, mut cdgh_a) = load(a);
        let (mut abef_b, mut cdgh_b) = load(b);
        for (x, y) in xs.iter().zip(ys) {
            let saved = (abef_a, cdgh_a, abef_b, cdgh_b);
            let mut wa = [0, 1, 2, 3].map(|i| word(x, i, mask));
            let mut wb = [0, 1, 2, 3].map(|i| word(y, i, mask));
            // Four rounds of each stream with round group `$i`'s message words, which are the
            // block's own for the first four groups; each later group's are scheduled from the
            // four before it, held in the same four slots (`$i % 4` is the oldest). Written out
            // group by group with constant slots, so that every value stays in a register: a
            // loop over the groups spilled them, and gained 1.24 times instead of 1.9.
            macro_rules! group {
                ($i:literal) => {{
                    if $i >= 4 {
                        let [w0, w1, w2, w3] = [$i % 4, ($i + 1) % 4, ($i + 2) % 4, ($i + 3) % 4];
                        wa[w0] = schedule(wa[w0], wa[w1], wa[w2], wa[w3]);
                        wb[w0] = schedule(wb[w0], wb[w1], wb[w2], wb[w3]);
                    }
                    rounds4!(abef_a, cdgh_a, wa[$i % 4], k4[$i]);
                    rounds4!(abef_b, cdgh_b, wb[$i % 4], k4[$i]);
                }};
            }
            group!(0);
            group!(1);
            group!(2);
            group!(3);
            group!(4);
            group!(5);
            group!(6);
            group!(7);
            group!(8);
            group!(9);
            group!(10);
            group!(11);
            group!(12);
            group!(13);
            group!(14);
            group!(15);
            abef_a = _mm_add_epi32(abef_a, saved.0);
            cdgh_a = _mm_add_epi32(cdgh_a, saved.1);
            abef_b = _mm_add_epi32(abef_b, saved.2);
            cdgh_b = _mm_add_epi32(cdgh_b, saved.3);
        }
        store(a, abef_a, cdgh_a);
        store(b, abef_b, cdgh_b);
    }
}

/// Pairs the pieces of checksums that threads take at the same time: a thread that hashes a
/// piece while another waits with one hashes both at once ([`Sha256::update_pair`]). A thread
/// that finds no piece waiting leaves its own, for [`PAIR_WAIT`] at most, only when another
/// thread handed in a piece within that time (so a copy held up by a slow source or target, or
/// a thread alone, never makes the others wait); otherwise, or when no partner comes, it hashes
/// its piece alone. A waiting thread uses no CPU; the piece it left is hashed in about the time
/// of the other's. `B` holds a piece's bytes (a `files::DirectReader`'s buffer), handed to the
/// thread that hashes them and back.
pub struct Pairing<B> {
    state: std::sync::Mutex<PairState<B>>,
    changed: std::sync::Condvar,
    wait: std::time::Duration,
}

/// How long a piece waits for another to be hashed with. A copy of a local file reads 4 MiB
/// pieces past the page cache (`files::DirectReader`: 4.8 ms each at the 874 MB/s that `dd`
/// read past it from this project's disk) and writes each before it reads the next. Fetching
/// the synthetic day (2,500 files, 5.7 GB) from a local folder not in the page cache, eight
/// copies at a time, took 2.86-2.89 s of user CPU with 6 ms, 2.89-3.55 s with 2 ms (three runs
/// each, alternating).
pub const PAIR_WAIT: std::time::Duration = std::time::Duration::from_millis(6);

/// A piece handed in: its owner's ticket, checksum, bytes and which of them to hash.
type Piece<B> = (u64, Sha256, B, std::ops::Range<usize>);

struct PairState<B> {
    /// Threads taking a checksum through this pairing ([`Pairing::join`]).
    members: usize,
    /// The piece a thread left to be hashed with another.
    left: Option<Piece<B>>,
    /// Pieces another thread hashed, for the threads that left them to take back.
    done: Vec<Piece<B>>,
    /// Tickets of pieces whose hashing thread stopped (panicked) with them.
    lost: Vec<u64>,
    tickets: u64,
    /// The member that handed in a piece last, and when.
    last: Option<(u64, std::time::Instant)>,
    /// Pieces hashed with another's, and pieces left to wait: counted for the tests.
    paired: u64,
    waited: u64,
}

impl<B> Default for Pairing<B> {
    fn default() -> Self {
        Pairing::new()
    }
}

impl<B> Pairing<B> {
    pub const fn new() -> Pairing<B> {
        Pairing::with_wait(PAIR_WAIT)
    }

    /// A pairing whose pieces wait `wait` at most for a partner.
    pub const fn with_wait(wait: std::time::Duration) -> Pairing<B> {
        Pairing {
            state: std::sync::Mutex::new(PairState {
                members: 0,
                left: None,
                done: Vec::new(),
                lost: Vec::new(),
                tickets: 0,
                last: None,
                paired: 0,
                waited: 0,
            }),
            changed: std::sync::Condvar::new(),
            wait,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PairState<B>> {
        // The state is consistent at every unlock: a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A thread's place in the pairing while it takes a checksum; left when dropped.
    pub fn join(&self) -> Member<'_, B> {
        let mut st = self.lock();
        st.members += 1;
        st.tickets += 1;
        Member {
            pairing: self,
            id: st.tickets,
        }
    }
}

/// A thread taking a checksum through a [`Pairing`].
pub struct Member<'p, B> {
    pairing: &'p Pairing<B>,
    id: u64,
}

/// Said of a piece when the thread hashing it with its own stops before handing it back.
struct Hashing<'p, B> {
    pairing: &'p Pairing<B>,
    ticket: u64,
}

impl<B> Drop for Hashing<'_, B> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.pairing.lock().lost.push(self.ticket);
            self.pairing.changed.notify_all();
        }
    }
}

impl<B: AsRef<[u8]>> Member<'_, B> {
    /// Takes `bytes[piece]` into `sum`, paired with another thread's piece when one is there
    /// or comes within the pairing's wait; gives `bytes` back.
    pub fn update(&self, sum: &mut Sha256, bytes: B, piece: std::ops::Range<usize>) -> B {
        let p = self.pairing;
        let mut st = p.lock();
        let now = std::time::Instant::now();
        let others_busy = st
            .last
            .is_some_and(|(id, at)| id != self.id && now.duration_since(at) < p.wait);
        st.last = Some((self.id, now));
        if let Some((ticket, mut other, other_bytes, other_piece)) = st.left.take() {
            st.paired += 2;
            drop(st);
            let guard = Hashing { pairing: p, ticket };
            let theirs = &other_bytes.as_ref()[other_piece.clone()];
            Sha256::update_pair(sum, &bytes.as_ref()[piece], &mut other, theirs);
            std::mem::forget(guard);
            p.lock()
                .done
                .push((ticket, other, other_bytes, other_piece));
            p.changed.notify_all();
            return bytes;
        }
        if st.members < 2 || !others_busy {
            drop(st);
            sum.update(&bytes.as_ref()[piece]);
            return bytes;
        }
        st.tickets += 1;
        st.waited += 1;
        let ticket = st.tickets;
        st.left = Some((ticket, std::mem::take(sum), bytes, piece));
        let until = now + p.wait;
        loop {
            if let Some(i) = st.done.iter().position(|d| d.0 == ticket) {
                let (_, s, b, _) = st.done.swap_remove(i);
                *sum = s;
                return b;
            }
            if st.lost.contains(&ticket) {
                panic!("the thread hashing a piece with this one stopped");
            }
            let now = std::time::Instant::now();
            if now >= until || st.members < 2 {
                match st.left.take() {
                    // Still there: hashed alone.
                    Some((t, s, b, piece)) if t == ticket => {
                        drop(st);
                        *sum = s;
                        sum.update(&b.as_ref()[piece]);
                        return b;
                    }
                    other => st.left = other,
                }
            }
            // Until the wait is over; then, its piece being hashed by another thread, until
            // that thread hands it back.
            let wait = if now < until { until - now } else { p.wait };
            st = p
                .changed
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl<B> Drop for Member<'_, B> {
    fn drop(&mut self) {
        let mut st = self.pairing.lock();
        st.members -= 1;
        // A member gone hands in nothing more.
        if st.last.is_some_and(|(id, _)| id == self.id) {
            st.last = None;
        }
        drop(st);
        // A thread waiting for a partner need not wait for one that is not coming.
        self.pairing.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest;

    fn reference(bytes: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(bytes).into()
    }

    /// `data` through `member` in pieces whose sizes follow `seed`: its checksum.
    fn through(member: &Member<'_, Vec<u8>>, data: &[u8], seed: usize) -> [u8; 32] {
        let mut sum = Sha256::new();
        let mut at = 0;
        // A buffer longer than the piece, which starts `seed` bytes in: a pairing hashes the
        // range of the buffer it is given, wherever it is.
        let mut buf = vec![0u8; 100_000];
        let skip = seed % 4_096;
        while at < data.len() {
            let n = ((at / 7 + seed * 7_919) % 90_000 + 1).min(data.len() - at);
            buf[skip..skip + n].copy_from_slice(&data[at..at + n]);
            buf = member.update(&mut sum, buf, skip..skip + n);
            assert_eq!(&buf[skip..skip + n], &data[at..at + n]);
            at += n;
        }
        sum.finalize()
    }

    /// Threads each taking twenty checksums of different lengths in pieces of different sizes
    /// through one pairing, joining and leaving it as they go: every checksum is `sha2`'s,
    /// whichever pieces were paired. With a long wait, pieces are paired; several wait at once
    /// and come back to their own threads.
    #[test]
    fn checksums_taken_through_a_pairing_are_sha2s() {
        for (threads, wait) in [(6usize, PAIR_WAIT), (3, std::time::Duration::from_secs(1))] {
            let pairing = Pairing::<Vec<u8>>::with_wait(wait);
            std::thread::scope(|s| {
                for t in 0..threads {
                    let pairing = &pairing;
                    s.spawn(move || {
                        for file in 0..20usize {
                            let len = (t * 7_919 + file * 104_729) % 400_000;
                            let data: Vec<u8> =
                                (0..len).map(|i| (i * 31 + t * 7 + file) as u8).collect();
                            let member = pairing.join();
                            assert_eq!(through(&member, &data, t + file), reference(&data));
                        }
                    });
                }
            });
            let st = pairing.lock();
            assert_eq!((st.members, st.left.is_none(), st.done.len()), (0, true, 0));
            // With the short wait, whether two pieces meet depends on the machine's load (none
            // met once while a build ran beside the tests); with the long one, they must.
            if wait > PAIR_WAIT {
                assert!(st.paired > 0, "no piece was paired");
            }
        }
    }

    /// A thread alone hashes every piece at once, and so does one whose partner has joined but
    /// hands in nothing (held up reading a slow source, say): neither leaves a piece to wait.
    #[test]
    fn a_piece_with_no_partner_is_hashed_alone() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let pairing = Pairing::<Vec<u8>>::with_wait(std::time::Duration::from_secs(10));
        {
            let alone = pairing.join();
            assert_eq!(through(&alone, &data, 1), reference(&data));
        }
        let idle = pairing.join();
        let busy = pairing.join();
        assert_eq!(through(&busy, &data, 2), reference(&data));
        drop((idle, busy));
        let st = pairing.lock();
        assert_eq!(
            (
                st.members,
                st.left.is_none(),
                st.done.len(),
                st.paired,
                st.waited
            ),
            (0, true, 0, 0, 0)
        );
    }

    #[test]
    fn known_answers() {
        let hex = |b: [u8; 32]| hex::encode(b);
        assert_eq!(
            hex(Sha256::new().finalize()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut s = Sha256::new();
        s.update(b"abc");
        assert_eq!(
            hex(s.finalize()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Every length around the padding's edges (55, 56, 63, 64 bytes), alone and paired.
        for n in 0..200 {
            let x: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
            let y: Vec<u8> = (0..(n * 3 + 1)).map(|i| (i * 17) as u8).collect();
            let (mut a, mut b) = (Sha256::new(), Sha256::new());
            Sha256::update_pair(&mut a, &x, &mut b, &y);
            assert_eq!(a.finalize(), reference(&x), "{n} bytes");
            assert_eq!(b.finalize(), reference(&y), "{} bytes", n * 3 + 1);
        }
    }

    /// The two-stream rounds against `sha2`'s one-stream compression, block by block, on this
    /// CPU when it has the SHA instructions (the paths above reach them only through
    /// `compress_pair`'s detection).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_two_stream_rounds_are_sha2s_rounds() {
        if !(std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3"))
        {
            eprintln!("this CPU has no SHA instructions: the two-stream rounds are not used");
            return;
        }
        let blocks = |seed: u8| -> Vec<Block> {
            (0..37u8)
                .map(|i| std::array::from_fn(|j| seed ^ i.wrapping_mul(31) ^ (j as u8)))
                .collect()
        };
        let (xs, ys) = (blocks(1), blocks(200));
        for n in [0, 1, 2, 37] {
            let (mut a, mut b) = (H0, [7u32; 8]);
            // SAFETY: the CPU has the instructions (checked above).
            unsafe { x86::compress_pair(&mut a, &xs[..n], &mut b, &ys[..n]) };
            let (mut a1, mut b1) = (H0, [7u32; 8]);
            compress(&mut a1, &xs[..n]);
            compress(&mut b1, &ys[..n]);
            assert_eq!((a, b), (a1, b1), "{n} blocks");
        }
    }

    proptest! {
        /// Two streams fed in pieces of any sizes, some pieces paired and some alone, give
        /// `sha2`'s checksums of the whole of each.
        #[test]
        fn pieces_paired_or_alone_give_sha2s_checksums(
            x in proptest::collection::vec(any::<u8>(), 0..5000),
            y in proptest::collection::vec(any::<u8>(), 0..5000),
            cuts in proptest::collection::vec((0usize..700, 0usize..700, any::<bool>()), 0..20),
        ) {
            let (mut a, mut b) = (Sha256::new(), Sha256::new());
            let (mut i, mut j) = (0, 0);
            for (m, n, paired) in cuts {
                let (m, n) = (m.min(x.len() - i), n.min(y.len() - j));
                if paired {
                    Sha256::update_pair(&mut a, &x[i..i + m], &mut b, &y[j..j + n]);
                } else {
                    a.update(&x[i..i + m]);
                    b.update(&y[j..j + n]);
                }
                (i, j) = (i + m, j + n);
            }
            Sha256::update_pair(&mut a, &x[i..], &mut b, &y[j..]);
            prop_assert_eq!(a.finalize(), reference(&x));
            prop_assert_eq!(b.finalize(), reference(&y));
        }
    }
}
