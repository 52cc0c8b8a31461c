//! What the tool says on stderr, in cargo's style: status lines with the verb right-aligned in
//! 12 columns (bold green on a terminal), notes and warnings prefixed with the tool's name.
//! `--color` and `-q` set how, once, for the whole run.

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// `--color`, as cargo takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// 0: not set (auto), 1: always, 2: never.
static COLOR: AtomicU8 = AtomicU8::new(0);
static QUIET: AtomicBool = AtomicBool::new(false);

/// `--color`: it wins over `CARGO_TERM_COLOR` and `NO_COLOR`, as cargo's does.
pub fn set_color(c: ColorChoice) {
    let v = match c {
        ColorChoice::Auto => 0,
        ColorChoice::Always => 1,
        ColorChoice::Never => 2,
    };
    COLOR.store(v, Ordering::Relaxed);
}

/// `-q`: no notes from here on (warnings, status lines and errors still show).
pub fn set_quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Colour as `--color` says; else when stderr is a terminal, unless `CARGO_TERM_COLOR` or
/// `NO_COLOR` say otherwise.
pub fn colour() -> bool {
    match COLOR.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    match std::env::var("CARGO_TERM_COLOR").as_deref() {
        Ok("always") => return true,
        Ok("never") => return false,
        _ => {}
    }
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// `verb` right-aligned in 12 columns, then `msg`: `   Compiling foo v0.1.0`.
pub fn status_line(verb: &str, msg: impl Display, colour: bool) -> String {
    if colour {
        format!("\x1b[1m\x1b[32m{verb:>12}\x1b[0m {msg}")
    } else {
        format!("{verb:>12} {msg}")
    }
}

/// Print a status line.
pub fn status(verb: &str, msg: impl Display) {
    eprintln!("{}", status_line(verb, msg, colour()));
}

/// A continuation line under a status line, aligned with its message.
pub fn detail(msg: impl Display) {
    eprintln!("{:>12} {msg}", "");
}

/// `cargo-for-arm: note: …`: something the user should know, not a problem.
pub fn note(msg: impl Display) {
    if quiet() {
        return;
    }
    eprintln!("cargo-for-arm: note: {msg}");
}

/// `cargo-for-arm: …`: what the tool is doing or chose, and why.
pub fn say(msg: impl Display) {
    if quiet() {
        return;
    }
    eprintln!("cargo-for-arm: {msg}");
}

/// `warning: …` in cargo's style.
pub fn warn(msg: impl Display) {
    if colour() {
        eprintln!("\x1b[1m\x1b[33mwarning\x1b[0m: {msg}");
    } else {
        eprintln!("warning: {msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_right_aligned_in_twelve_columns() {
        assert_eq!(status_line("Fetching", "x", false), "    Fetching x");
        assert_eq!(status_line("Downloaded", "y", false), "  Downloaded y");
        assert_eq!(
            status_line("Report", "z", true),
            "\x1b[1m\x1b[32m      Report\x1b[0m z"
        );
    }

    #[test]
    fn color_option_wins_over_the_environment() {
        // The only test that sets the choice: it is process-wide.
        set_color(ColorChoice::Always);
        assert!(colour());
        set_color(ColorChoice::Never);
        assert!(!colour());
        set_color(ColorChoice::Auto);
    }
}
