use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_ulong};

extern "C" {
    fn sample_answer(x: c_int) -> c_int;
}

#[link(name = "z")]
extern "C" {
    fn zlibVersion() -> *const c_char;
    fn crc32(crc: c_ulong, buf: *const u8, len: c_uint) -> c_ulong;
}

fn answer(x: i32) -> i32 {
    unsafe { sample_answer(x) }
}

fn crc(data: &[u8]) -> u64 {
    unsafe { crc32(0, data.as_ptr(), data.len() as c_uint) as u64 }
}

fn main() {
    // `--exit=N`: end with code N (the tests check that it reaches the caller).
    if let Some(code) = std::env::args().find_map(|a| a.strip_prefix("--exit=").map(str::to_string)) {
        std::process::exit(code.parse().expect("--exit=N"));
    }
    let zlib = unsafe { CStr::from_ptr(zlibVersion()) }.to_string_lossy();
    let mut buf = itoa::Buffer::new();
    println!("answer {}", buf.format(answer(7)));
    println!("crc32(hello) {:08x}", crc(b"hello"));
    println!("zlib {} (pkg-config {})", zlib, env!("SAMPLE_ZLIB_PKG_VERSION"));
    println!("pointer width {}", std::mem::size_of::<usize>() * 8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_code_is_linked() {
        assert_eq!(answer(7), 42 + std::mem::size_of::<usize>() as i32);
    }

    #[test]
    fn zlib_from_the_rootfs_works() {
        assert_eq!(crc(b"hello"), 0x3610a686);
    }

    #[test]
    fn runs_on_arm() {
        let m = std::process::Command::new("uname").arg("-m").output().unwrap();
        let m = String::from_utf8(m.stdout).unwrap();
        println!("machine: {}", m.trim());
        assert!(m.starts_with("arm") || m.starts_with("aarch64"), "{m}");
    }
}
