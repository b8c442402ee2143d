//! Attachments: an uploaded file's identity and description, and the checks an upload passes.

use super::error::ChatError;
use super::name::is_invisible_format;
use serde::{Deserialize, Serialize};

/// An uploaded file's unguessable identity: 128 random bits, hex-encoded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FileId(String);

impl FileId {
    /// Checks the form of a file id (32 lowercase hex digits).
    pub fn parse(raw: &str) -> Result<FileId, ChatError> {
        if raw.len() == 32 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(FileId(raw.to_owned()))
        } else {
            Err(ChatError::NoSuchFile)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FileId {
    type Error = ChatError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        FileId::parse(&value)
    }
}

impl From<FileId> for String {
    fn from(value: FileId) -> Self {
        value.0
    }
}

/// A file attached to a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Where it is served: `/files/{id}`.
    pub id: FileId,
    /// The name it was uploaded with (checked with [`parse_file_name`]).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The type it is served with, decided from its content.
    pub content_type: String,
    /// True for PNG, JPEG, GIF and WebP images, which are shown as previews.
    pub image: bool,
}

impl Attachment {
    /// The address the file is served at.
    pub fn url(&self) -> String {
        format!("/files/{}", self.id.as_str())
    }
}

/// Checks an uploaded file's name: trimmed, 1 to 200 characters, no path separators, no
/// control or invisible characters.
pub fn parse_file_name(raw: &str) -> Result<String, ChatError> {
    let name = raw.trim();
    if name.is_empty()
        || name.chars().count() > 200
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control() || is_invisible_format(c))
    {
        return Err(ChatError::FileNameInvalid);
    }
    Ok(name.to_owned())
}

/// Recognises the images Flack previews by their first bytes, whatever their name says.
pub fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A size in bytes as people read it: "512 B", "2.5 KB", "10 MB".
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    // Whole numbers only: formatting floating point would add its own code to the browser's
    // WebAssembly for this one label.
    let (unit, name) = match bytes {
        0..KIB => return format!("{bytes} B"),
        KIB..1_048_576 => (KIB, "KB"),
        _ => (KIB * KIB, "MB"),
    };
    let tenths = (u128::from(bytes) * 10 + u128::from(unit / 2)) / u128::from(unit);
    format!("{}.{} {name}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Images are recognised by their content, not their name; file names with separators or
    /// control characters are refused.
    #[test]
    fn files_are_checked() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff_image(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff_image(b"GIF89a.."), Some("image/gif"));
        assert_eq!(sniff_image(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_image(b"<svg onload=alert(1)>"), None);
        assert_eq!(parse_file_name(" report.pdf ").unwrap(), "report.pdf");
        for bad in ["", "../etc/passwd", "a\\b", "x\u{0}y", "rtl\u{202E}fdp.exe"] {
            assert_eq!(
                parse_file_name(bad),
                Err(ChatError::FileNameInvalid),
                "{bad:?}"
            );
        }
        assert_eq!(human_size(10 * 1024 * 1024), "10.0 MB");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KB");
        assert_eq!(human_size(1536), "1.5 KB");
        assert_eq!(human_size(1_048_575), "1024.0 KB");
        assert_eq!(human_size(5 * 1024 * 1024 + 52_429), "5.1 MB");
        assert!(FileId::parse("../../etc").is_err());
    }
}
