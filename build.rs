//! Links the `spiral` binary with packed relative relocations (`DT_RELR`) on GNU/Linux.
//!
//! A position-independent executable is relocated by the loader at start: with classic
//! `RELA` entries that is 1.2 MB of relocation records read into memory (about 52 000
//! pointers, mostly from the Kafka, Arrow and Parquet code linked in), and every resident
//! byte counts against issue #2's memory budget. Packed, the records take 14 KB, and the
//! replay's peak RSS falls by about 1.4 MB, while the binary keeps address-space layout
//! randomisation (linking it non-PIE would save 0.6 MB more and lose that).
//!
//! It needs binutils ≥ 2.38 to link (an older `ld` warns and ignores the option) and glibc
//! ≥ 2.36 to run: Debian bookworm, as in the `Dockerfile`'s builder and runtime stages.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
