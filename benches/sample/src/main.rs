//! A fixed sample for benches/build.sh: several small, dependency-free crates.

use std::collections::HashMap;

use byteorder::{ByteOrder, LittleEndian};
use fnv::FnvHashMap;
use smallvec::SmallVec;

bitflags::bitflags! {
    struct Flags: u8 {
        const A = 1;
        const B = 2;
    }
}

cfg_if::cfg_if! {
    if #[cfg(target_pointer_width = "32")] {
        const WIDTH: &str = "32-bit";
    } else {
        const WIDTH: &str = "64-bit";
    }
}

fn main() {
    let mut ints = itoa::Buffer::new();
    let mut floats = ryu::Buffer::new();
    let text = "cargo for arm";
    let mut counts: FnvHashMap<u8, usize> = HashMap::default();
    for b in text.bytes() {
        *counts.entry(b).or_default() += 1;
    }
    let small: SmallVec<[u32; 4]> = (1..=3).collect();
    let mut buf = [0u8; 4];
    LittleEndian::write_u32(&mut buf, small.iter().sum());
    println!(
        "{} {} {:?} {} {} {}",
        ints.format(counts.len()),
        floats.format(1.5f64),
        memchr::memchr(b'f', text.as_bytes()),
        (Flags::A | Flags::B).bits(),
        LittleEndian::read_u32(&buf),
        WIDTH
    );
}
