//! Percent-encoding of one URL component (a path segment, a query value, a header's file
//! name): the escaping every address the app builds, and every file name it sends, agrees on.

/// Percent-encodes a string for use as one URL path segment: everything but the unreserved
/// characters (letters, digits, `-`, `_`, `.`, `~`) becomes `%XX` of its UTF-8 bytes.
pub fn encode_path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Decodes a percent-encoded URL path segment; invalid escapes are kept as they are.
pub fn decode_path_segment(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoding undoes the escapes and keeps invalid ones as they are.
    #[test]
    fn segments_decode() {
        assert_eq!(decode_path_segment("%C3%A9%3C"), "é<");
        assert_eq!(decode_path_segment("dev%20ops"), "dev ops");
        assert_eq!(decode_path_segment("plain"), "plain");
        assert_eq!(decode_path_segment("bad%2"), "bad%2");
        assert_eq!(decode_path_segment("%zz"), "%zz");
    }
}
