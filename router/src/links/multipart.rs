//! A streaming `multipart/form-data` reader (RFC 7578) for the upload form of edit
//! links: parts are read in order, text fields are small and kept, a file part's data
//! is handed on piece by piece as it arrives, so an upload never sits in memory whole.
//! Only what browsers send is supported: `Content-Disposition: form-data` parts with
//! a `name` and, for files, a `filename`.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};

/// Most bytes of one part's headers.
const MAX_HEADER_BYTES: usize = 16 << 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    #[error("the upload form's body ended early")]
    Truncated,
    #[error("the upload form's body is malformed: {0}")]
    Malformed(&'static str),
    #[error("a form field is longer than {0} bytes")]
    FieldTooLong(usize),
    #[error("the upload broke off: {0}")]
    Body(String),
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    if !params.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        let v = v.trim().trim_matches('"');
        (k.trim().eq_ignore_ascii_case("boundary") && (1..=70).contains(&v.len())).then(|| v.to_owned())
    })
}

/// What a part says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub name: String,
    /// Present for file inputs (empty when no file was chosen).
    pub filename: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Right after a delimiter: headers of a part follow, or the closing `--`.
    Delimiter,
    /// Inside a part's data.
    Data,
    End,
}

pub struct Multipart<S> {
    body: S,
    buf: BytesMut,
    /// `\r\n--boundary`
    delimiter: Vec<u8>,
    state: State,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut at = 0;
    while at <= last_start {
        let i = hay[at..=last_start].iter().position(|b| *b == needle[0])?;
        let p = at + i;
        if &hay[p..p + needle.len()] == needle {
            return Some(p);
        }
        at = p + 1;
    }
    None
}

/// The value of parameter `key` in a `Content-Disposition` header (quoted strings with
/// backslash escapes, or tokens).
fn disposition_param(value: &str, key: &str) -> Option<String> {
    let mut rest = value;
    while let Some(i) = rest.find(';') {
        rest = rest[i + 1..].trim_start();
        let (k, after) = rest.split_once('=')?;
        let k = k.trim();
        let (v, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, &quoted[end?..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        if k.eq_ignore_ascii_case(key) {
            return Some(v);
        }
        rest = tail;
    }
    None
}

impl<S, E> Multipart<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(body: S, boundary: &str) -> Self {
        let mut buf = BytesMut::with_capacity(64 << 10);
        // So that a body starting with the first delimiter matches like any other.
        buf.extend_from_slice(b"\r\n");
        Self { body, buf, delimiter: format!("\r\n--{boundary}").into_bytes(), state: State::Preamble }
    }

    /// Reads more of the body; false at its end.
    async fn fill(&mut self) -> Result<bool, MultipartError> {
        loop {
            match self.body.next().await {
                Some(Ok(piece)) if piece.is_empty() => continue,
                Some(Ok(piece)) => {
                    self.buf.extend_from_slice(&piece);
                    return Ok(true);
                }
                Some(Err(e)) => return Err(MultipartError::Body(e.to_string())),
                None => return Ok(false),
            }
        }
    }

    /// The next piece of the current part's data; None at its end (or outside a part).
    pub async fn data(&mut self) -> Result<Option<Bytes>, MultipartError> {
        if self.state != State::Data {
            return Ok(None);
        }
        loop {
            if let Some(at) = find(&self.buf, &self.delimiter) {
                if at > 0 {
                    return Ok(Some(self.buf.split_to(at).freeze()));
                }
                self.buf.advance(self.delimiter.len());
                self.state = State::Delimiter;
                return Ok(None);
            }
            // Everything but a possible start of the delimiter is data.
            let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
            if safe > 0 {
                return Ok(Some(self.buf.split_to(safe).freeze()));
            }
            if !self.fill().await? {
                return Err(MultipartError::Truncated);
            }
        }
    }

    /// The whole data of the current part as text, at most `max` bytes.
    pub async fn text(&mut self, max: usize) -> Result<String, MultipartError> {
        let mut out = Vec::new();
        while let Some(piece) = self.data().await? {
            if out.len() + piece.len() > max {
                return Err(MultipartError::FieldTooLong(max));
            }
            out.extend_from_slice(&piece);
        }
        String::from_utf8(out).map_err(|_| MultipartError::Malformed("a field is not UTF-8"))
    }

    /// Moves to the next part (skipping what is left of the current one); None after
    /// the last.
    pub async fn next_part(&mut self) -> Result<Option<PartInfo>, MultipartError> {
        loop {
            match self.state {
                State::End => return Ok(None),
                State::Data => while self.data().await?.is_some() {},
                State::Preamble => match find(&self.buf, &self.delimiter) {
                    Some(at) => {
                        self.buf.advance(at + self.delimiter.len());
                        self.state = State::Delimiter;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            self.buf.advance(self.buf.len() - keep);
                        }
                        if !self.fill().await? {
                            return Err(MultipartError::Truncated);
                        }
                    }
                },
                State::Delimiter => return self.part_headers().await,
            }
        }
    }

    async fn part_headers(&mut self) -> Result<Option<PartInfo>, MultipartError> {
        while self.buf.len() < 2 {
            if !self.fill().await? {
                return Err(MultipartError::Truncated);
            }
        }
        if self.buf.starts_with(b"--") {
            self.state = State::End;
            return Ok(None);
        }
        let end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at;
            }
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(MultipartError::Malformed("a part's headers are too long"));
            }
            if !self.fill().await? {
                return Err(MultipartError::Truncated);
            }
        };
        let head = self.buf.split_to(end + 4);
        let text = std::str::from_utf8(&head).map_err(|_| MultipartError::Malformed("part headers are not UTF-8"))?;
        // The line after the delimiter is empty (or transport padding).
        let mut lines = text.split("\r\n");
        if !lines.next().is_some_and(|l| l.trim().is_empty()) {
            return Err(MultipartError::Malformed("no line break after a boundary"));
        }
        let disposition = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
            .map(|(_, v)| v.trim())
            .ok_or(MultipartError::Malformed("a part without Content-Disposition"))?;
        if !disposition.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("form-data")) {
            return Err(MultipartError::Malformed("a part that is not form-data"));
        }
        let name = disposition_param(disposition, "name").ok_or(MultipartError::Malformed("a part without a name"))?;
        let filename = disposition_param(disposition, "filename");
        self.state = State::Data;
        Ok(Some(PartInfo { name, filename }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &[u8], piece: usize) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Unpin {
        let pieces: Vec<_> = text.chunks(piece.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures::stream::iter(pieces)
    }

    async fn parts(text: &[u8], piece: usize) -> Result<Vec<(PartInfo, Vec<u8>)>, MultipartError> {
        let mut mp = Multipart::new(body(text, piece), "XyZ");
        let mut out = Vec::new();
        while let Some(info) = mp.next_part().await? {
            let mut data = Vec::new();
            while let Some(d) = mp.data().await? {
                data.extend_from_slice(&d);
            }
            out.push((info, data));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn parts_and_data_come_out_whatever_the_piece_sizes() {
        let mut file = vec![0u8; 5000];
        for (i, b) in file.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        // Bytes that look like a delimiter's start inside the data.
        file[100..106].copy_from_slice(b"\r\n--Xy");
        let mut text = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\ns3cret\r\n--XyZ\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            .to_vec();
        text.extend_from_slice(&file);
        text.extend_from_slice(b"\r\n--XyZ--\r\n");
        for piece in [1, 2, 3, 7, 64, 1000, 100_000] {
            let got = parts(&text, piece).await.unwrap();
            assert_eq!(got.len(), 2, "piece {piece}");
            assert_eq!(got[0].0, PartInfo { name: "password".into(), filename: None });
            assert_eq!(got[0].1, b"s3cret");
            assert_eq!(got[1].0.filename.as_deref(), Some("a \"b\".bin"));
            assert!(got[1].1 == file, "piece {piece}: the file's bytes, exactly");
        }
    }

    #[tokio::test]
    async fn broken_bodies_are_errors_not_data() {
        let cut = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nhalf a fi";
        assert_eq!(parts(cut, 4).await, Err(MultipartError::Truncated));
        let no_name = b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--";
        assert!(matches!(parts(no_name, 4).await, Err(MultipartError::Malformed(_))));
        assert_eq!(parts(b"--XyZ--\r\n", 3).await, Ok(vec![]));
    }

    #[test]
    fn boundaries_come_from_the_content_type() {
        assert_eq!(boundary("multipart/form-data; boundary=----abc").as_deref(), Some("----abc"));
        assert_eq!(boundary("Multipart/Form-Data; charset=x; boundary=\"q r\"").as_deref(), Some("q r"));
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }
}
