//! The floor for bake's gzip: how long zlib-rs (flate2's backend, as bake builds it) takes to
//! compress a file's bytes on N threads, cut into N equal pieces compressed as independent
//! raw deflate streams, and nothing else: no reading of inputs, no cpio, no gzip framing, no
//! writing. `scripts/bench.sh --inner-loop` times a gzip build of an image against this on
//! that image's uncompressed archive.
//!
//! Usage: cargo run --release --example deflate_floor -- FILE LEVEL THREADS
//! Prints the compressed size in bytes.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, level, threads] = &args[..] else {
        eprintln!("usage: deflate_floor FILE LEVEL THREADS");
        std::process::exit(2);
    };
    let data = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("deflate_floor: cannot read {path}: {e}");
        std::process::exit(1)
    });
    let level: u32 = level.parse().expect("LEVEL is a number");
    let threads: usize = threads.parse().expect("THREADS is a number");
    let piece = data.len().div_ceil(threads.max(1)).max(1);
    let compressed: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = data
            .chunks(piece)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
                    encoder.write_all(chunk).expect("writing to memory");
                    encoder.finish().expect("writing to memory").len()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("a worker panicked")).sum()
    });
    println!("{compressed}");
}
