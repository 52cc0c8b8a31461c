use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_uint, c_ulong};

extern "C" {
    fn sample_answer(x: c_int) -> c_int;
    /// uname(2): under qemu-user it names the emulated machine (armv7l, aarch64).
    fn uname(buf: *mut u8) -> c_int;
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

/// The machine field of Linux's struct utsname (six fields of 65 bytes).
fn machine() -> String {
    let mut buf = [0u8; 6 * 65];
    assert_eq!(unsafe { uname(buf.as_mut_ptr()) }, 0);
    let field = &buf[4 * 65..5 * 65];
    let end = field.iter().position(|&b| b == 0).unwrap_or(65);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn main() {
    if let Some(code) = std::env::args().find_map(|a| a.strip_prefix("--exit=").map(str::to_string)) {
        std::process::exit(code.parse().expect("--exit=N"));
    }
    let zlib = unsafe { CStr::from_ptr(zlibVersion()) }.to_string_lossy();
    let mut buf = itoa::Buffer::new();
    println!("answer {}", buf.format(answer(7)));
    println!("crc32(hello) {:08x}", crc(b"hello"));
    println!("zlib {} (pkg-config {})", zlib, env!("SAMPLE_ZLIB_PKG_VERSION"));
    println!("pointer width {}", std::mem::size_of::<usize>() * 8);
    println!("machine {}", machine());
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

    /// tests/ladder.rs: a test that hangs when asked (the heartbeat must kill it).
    #[test]
    fn hangs_when_asked() {
        if std::env::var_os("LADDER_HANG").is_some() {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1000));
            }
        }
    }

    #[test]
    fn runs_as_arm_code() {
        let m = machine();
        println!("machine: {m}, usize: {} bytes", std::mem::size_of::<usize>());
        assert!(m.starts_with("arm") || m.starts_with("aarch64"), "{m}");
        #[cfg(target_arch = "arm")]
        assert_eq!(std::mem::size_of::<usize>(), 4);
    }
}
