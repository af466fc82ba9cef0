//! Products have no photographs: each is shown with a placeholder drawn from its own name, a
//! shape and its initials, so that nobody mistakes it for a picture of the product and nothing
//! is fetched from anywhere.

/// Backgrounds dark enough for white initials (4.5:1 or more).
const COLOURS: [&str; 6] = ["#2f6f9f", "#327f50", "#8a5a9e", "#a3611b", "#a23d5b", "#1f6b6b"];

/// The placeholder of a product, as inline SVG (no style attributes: the Content-Security-Policy
/// allows none). Hidden from assistive technology: the product's name is beside it.
pub fn placeholder(sku: &str, name: &str) -> String {
    // FNV-1a: stable across builds and processes, unlike the standard hasher.
    let hash =
        sku.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3));
    let colour = COLOURS[(hash % COLOURS.len() as u64) as usize];
    let shape = match (hash >> 8) % 3 {
        0 => r#"<circle cx="60" cy="60" r="54""#.to_owned(),
        1 => r#"<rect x="8" y="8" width="104" height="104" rx="18""#.to_owned(),
        _ => r#"<polygon points="60,4 116,60 60,116 4,60""#.to_owned(),
    };
    format!(
        r##"<svg class="picture" viewBox="0 0 120 120" width="120" height="120" aria-hidden="true" focusable="false"><rect width="120" height="120" fill="#eef1f5"/>{shape} fill="{colour}"/><text x="60" y="60" dy="0.35em" text-anchor="middle" font-family="sans-serif" font-size="40" font-weight="bold" fill="#ffffff">{}</text></svg>"##,
        initials(name)
    )
}

/// Up to two initials, upper-case letters or digits only (so the SVG needs no escaping).
fn initials(name: &str) -> String {
    let initials: String = name
        .split_whitespace()
        .filter_map(|word| word.chars().find(|c| c.is_alphanumeric()))
        .filter(|c| c.is_ascii_alphanumeric())
        .take(2)
        .collect::<String>()
        .to_ascii_uppercase();
    if initials.is_empty() { "?".to_owned() } else { initials }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_are_safe_to_write_unescaped() {
        assert_eq!(initials("Enamel mug"), "EM");
        assert_eq!(initials("<script>alert(1)</script> & co"), "SC");
        assert_eq!(initials("   "), "?");
        assert_eq!(initials("été à Paris"), "P");
        let drawn = placeholder("MUG-001", "\"><img src=x onerror=alert(1)>");
        assert!(!drawn.contains("<img") && !drawn.contains("style"));
    }

    #[test]
    fn a_product_is_always_drawn_the_same() {
        assert_eq!(placeholder("MUG-001", "Mug"), placeholder("MUG-001", "Mug"));
    }
}
