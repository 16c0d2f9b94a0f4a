//! Sizes, offsets and modes as people type and read them.

/// Parses `4096`, `64K`, `64KiB`, `1M`, `1MiB`, `1G`, `1GiB`, `1T`, `1TiB`
/// (K = 1024; a trailing `B` is allowed: `64KB`). Zero is refused.
pub fn parse_size(text: &str) -> Result<u64, String> {
    match parse_bytes(text)? {
        0 => Err("a size must be at least 1 byte".to_owned()),
        n => Ok(n),
    }
}

/// Like [`parse_size`], but zero is allowed.
pub fn parse_offset(text: &str) -> Result<u64, String> {
    parse_bytes(text)
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "'{text}' is not a size (use e.g. 4096, 64K, 1MiB, 1G)"
        ));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{suffix}' (use K, M, G or T, optionally with iB; K = 1024)"
            ))
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is too large"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Parses permission bits in octal: `600`, `0644`, `0o640`.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("'{text}' is not an octal mode (e.g. 600 or 644)"))?;
    if mode > 0o777 {
        return Err(format!("'{text}': a mode has at most the bits 777"));
    }
    Ok(mode)
}

/// `512 B`, `4.0 KiB`, `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_people_type() {
        for (text, want) in [
            ("4096", 4096),
            ("64K", 65536),
            ("64KiB", 65536),
            ("64k", 65536),
            ("1M", 1 << 20),
            ("1MiB", 1 << 20),
            ("1G", 1 << 30),
            ("1GiB", 1 << 30),
            ("2T", 2 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_sizes() {
        for text in [
            "0",
            "-1",
            "abc",
            "10Q",
            "",
            "K",
            "1.5G",
            "99999999999999999999",
            "16777216T",
        ] {
            assert!(parse_size(text).is_err(), "{text}");
        }
        assert_eq!(parse_offset("0"), Ok(0));
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
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
