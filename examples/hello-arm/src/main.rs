//! The sample crate of cargo-for-arm: a registry dependency, a build script, a unit test.

fn greeting(n: u64) -> String {
    let mut buf = itoa::Buffer::new();
    format!(
        "hello from {} ({}), {} times",
        std::env::consts::ARCH,
        env!("HELLO_BUILT_FOR"),
        buf.format(n)
    )
}

fn main() {
    println!("{}", greeting(42));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_with_the_count() {
        assert!(greeting(7).ends_with(", 7 times"));
    }
}
