//! The commands on top: `rootfs …` and `doctor`. They may use every room below them; nothing
//! below uses them.

pub mod doctor;
pub mod rootfs;
pub mod run;
