//! Sizes, offsets and modes as people type and read them.
//!
//! The rule for sizes and offsets (`sect --help` and the README say the
//! same):
//!
//! - a number alone, or with `B`, is bytes: `4096`, `4096B`;
//! - `0x` (or `0X`) and hex digits is bytes too, without a unit: `0x1000`;
//! - `K`, `M`, `G`, `T` (also `k`, `m`, `g`, `t`, as coreutils takes them)
//!   and `KiB`, `MiB`, `GiB`, `TiB` are powers of 1024;
//! - `KB` (or `kB`), `MB`, `GB`, `TB` are powers of 1000;
//! - nothing else: a lowercase `b` (`Mb`, `mb`, `kb`) may mean bits, so it
//!   is refused with a hint rather than guessed, and so are fractions and
//!   negative numbers.

/// What the error messages offer instead of a refused unit.
const UNITS_HINT: &str = "use K, M, G, T or KiB, MiB, GiB, TiB for powers of 1024, \
                          KB, MB, GB, TB for powers of 1000, B or no unit for bytes";

/// A size in bytes: at least 1. See the module docs for the units.
pub fn parse_size(text: &str) -> Result<u64, String> {
    match parse_bytes(text, "size")? {
        0 => Err("a size must be at least 1 byte".to_owned()),
        n => Ok(n),
    }
}

/// An offset or a length in bytes: like [`parse_size`], but zero is allowed.
pub fn parse_offset(text: &str) -> Result<u64, String> {
    parse_bytes(text, "byte count")
}

fn parse_bytes(text: &str, what: &str) -> Result<u64, String> {
    let t = text.trim();
    // The options take values that start with '-', so that `--size -1`
    // reaches this message instead of clap's "did you mean `-- -1`".
    if let Some(rest) = t.strip_prefix('-') {
        return Err(if rest.starts_with(|c: char| c.is_ascii_digit()) {
            format!("a {what} cannot be negative")
        } else {
            format!("not a {what}: the option needs a value (e.g. 4096, 64K)")
        });
    }
    if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("not a hexadecimal number (e.g. 0x1000; hex takes no unit)".to_owned());
        }
        return u64::from_str_radix(hex, 16).map_err(|_| "too large for 64 bits".to_owned());
    }
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("not a {what} (e.g. 4096, 0x1000, 64K, 1MiB, 1GB)"));
    }
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "a {what} is a whole number (e.g. 1536K instead of 1.5M)"
        ));
    }
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "m" | "MiB" => 1 << 20,
        "G" | "g" | "GiB" => 1 << 30,
        "T" | "t" | "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ if unit.ends_with('b') => {
            return Err(format!(
                "'{unit}' could mean bits; sizes are bytes ({UNITS_HINT})"
            ))
        }
        _ => return Err(format!("unknown unit '{unit}' ({UNITS_HINT})")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "too large for 64 bits".to_owned())?;
    n.checked_mul(multiplier)
        .ok_or_else(|| "too large for 64 bits".to_owned())
}

/// Parses permission bits in octal: `600`, `0644`, `0o640`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not an octal mode (e.g. 600 or 644)"));
    }
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("'{text}' is not an octal mode (e.g. 600 or 644)"))?;
    if mode > 0o777 {
        return Err(format!("'{text}': a mode has at most the bits 777"));
    }
    Ok(mode)
}

const BINARY_UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/// A rounded size for labels where a tenth of a unit is precise enough
/// (the bench's case names): `512 B`, `4.0 KiB`, `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    // Up a unit when the next would print as 1024.0 of this one.
    while value >= 1023.95 && unit < BINARY_UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", BINARY_UNITS[unit])
}

/// The largest binary unit not above `bytes` (`None` below 1 KiB), with
/// its size in bytes.
fn unit_of(bytes: u64) -> Option<(u64, &'static str)> {
    let mut found = None;
    let mut size = 1u64 << 10;
    for name in BINARY_UNITS {
        if bytes < size {
            break;
        }
        found = Some((size, name));
        size = size.saturating_mul(1024);
    }
    found
}

/// `bytes` in `unit` with at most three decimals, if that is exact.
fn exactly_in(bytes: u64, unit: u64) -> Option<String> {
    let whole = bytes / unit;
    let rest = u128::from(bytes % unit);
    (0..=3u32).find_map(|places| {
        let scaled = rest * 10u128.pow(places);
        (scaled % u128::from(unit) == 0).then(|| {
            if places == 0 {
                whole.to_string()
            } else {
                let frac = scaled / u128::from(unit);
                format!("{whole}.{frac:0width$}", width = places as usize)
            }
        })
    })
}

/// A size as text output shows it, exact to the byte: `512 B`, `4 KiB`,
/// `1.5 GiB`, `4.25 KiB`; where no unit gives it exactly in three
/// decimals, the byte count with the rounded size after it:
/// `4097 B (~4.0 KiB)`.
pub fn exact(bytes: u64) -> String {
    match unit_of(bytes) {
        None => format!("{bytes} B"),
        Some((unit, name)) => match exactly_in(bytes, unit) {
            Some(value) => format!("{value} {name}"),
            None => format!("{bytes} B (~{})", human(bytes)),
        },
    }
}

/// A size with its byte count, for `info`: `4096 bytes (4 KiB)`,
/// `4097 bytes (~4.0 KiB)`, `512 bytes`.
pub fn exact_with_bytes(bytes: u64) -> String {
    match unit_of(bytes) {
        None => format!("{bytes} bytes"),
        Some((unit, name)) => match exactly_in(bytes, unit) {
            Some(value) => format!("{bytes} bytes ({value} {name})"),
            None => format!("{bytes} bytes (~{})", human(bytes)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_people_type() {
        for (text, want) in [
            ("4096", 4096),
            ("4096B", 4096),
            ("64K", 65536),
            ("64k", 65536),
            ("64KiB", 65536),
            ("64KB", 64_000),
            ("64kB", 64_000),
            ("1M", 1 << 20),
            ("1m", 1 << 20),
            ("1MiB", 1 << 20),
            ("1MB", 1_000_000),
            ("1G", 1 << 30),
            ("1GiB", 1 << 30),
            ("1GB", 1_000_000_000),
            ("2T", 2 << 40),
            ("2TiB", 2 << 40),
            ("2TB", 2_000_000_000_000),
            ("0x1000", 4096),
            ("0X1f", 31),
            (" 8K ", 8192),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_sizes() {
        for text in [
            "0",
            "0x0",
            "abc",
            "10Q",
            "",
            "K",
            "0x",
            "0x10K",
            "0xg",
            "99999999999999999999",
            "16777216T",
            "0x10000000000000000",
            "1KIB",
            "1Ki",
            "1mB",
        ] {
            assert!(parse_size(text).is_err(), "{text}");
        }
        assert_eq!(parse_offset("0"), Ok(0));
        assert_eq!(parse_offset("0x0"), Ok(0));
    }

    #[test]
    fn ambiguous_units_are_refused_with_the_accepted_forms() {
        for text in ["1mb", "1Mb", "1kb", "1Kb", "1gb", "1b", "1Mib"] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("bits"), "{text}: {err}");
            assert!(err.contains("MiB") && err.contains("MB"), "{text}: {err}");
        }
    }

    #[test]
    fn negative_and_fractional_sizes_say_so() {
        let err = parse_size("-1").unwrap_err();
        assert!(err.contains("cannot be negative"), "{err}");
        let err = parse_offset("-0x10").unwrap_err();
        assert!(err.contains("cannot be negative"), "{err}");
        let err = parse_size("--hold").unwrap_err();
        assert!(err.contains("needs a value"), "{err}");
        let err = parse_size("1.5G").unwrap_err();
        assert!(err.contains("whole number"), "{err}");
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        assert!(parse_mode("800").is_err());
        assert!(parse_mode("7777").is_err());
        assert!(parse_mode("rw").is_err());
    }

    #[test]
    fn human_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(4096), "4.0 KiB");
        assert_eq!(human(1_048_575), "1.0 MiB", "not 1024.0 KiB");
        assert_eq!(human(1_048_524), "1023.9 KiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn sizes_are_shown_exactly() {
        for (bytes, want) in [
            (0, "0 B"),
            (512, "512 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (4096, "4 KiB"),
            (4097, "4097 B (~4.0 KiB)"),
            (4352, "4.25 KiB"),
            (4224, "4.125 KiB"),
            (3 << 29, "1.5 GiB"),
            ((1 << 30) + 4096, "1073745920 B (~1.0 GiB)"),
            (4 << 40, "4 TiB"),
            (u64::MAX, "18446744073709551615 B (~16384.0 PiB)"),
        ] {
            assert_eq!(exact(bytes), want, "{bytes}");
        }
        assert_eq!(exact_with_bytes(512), "512 bytes");
        assert_eq!(exact_with_bytes(8192), "8192 bytes (8 KiB)");
        assert_eq!(exact_with_bytes(4097), "4097 bytes (~4.0 KiB)");
    }
}
