//! The upload form's body (`multipart/form-data`, RFC 7578) as read by [`multer`]:
//! parts come out in order, text fields small and kept, a file part's data piece by
//! piece as it arrives, so an upload never sits in memory whole. What this adapter
//! adds is what multer leaves to its caller:
//!
//! * The body reaches multer one piece per poll, at most [`PIECE_BYTES`]: multer
//!   reads all that is ready before it parses, and a client that sends faster than
//!   the upload path stores would otherwise pile up in its buffer.
//! * What comes before a part's data (a preamble, the boundary, the part's headers)
//!   may take [`MAX_HEAD_BYTES`]: multer holds it in memory until the headers end.
//! * Every part is cut off past the link's upload limit (multer's per-field size
//!   limit), text fields past their own small one ([`text`]).
//! * A part must be `form-data` and have a name; errors carry the text an uploader
//!   is shown.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use multer::Field;

/// The most body bytes handed to multer at a time.
const PIECE_BYTES: usize = 64 << 10;
/// The most body bytes read while looking for a part's data.
const MAX_HEAD_BYTES: u64 = 16 << 10;
/// `head_left` while a part's data is read.
const UNLIMITED: u64 = u64::MAX;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    #[error("the upload form's body is incomplete")]
    Truncated,
    #[error("the upload form's body is malformed: {0}")]
    Malformed(String),
    #[error("a form field is longer than {0} bytes")]
    FieldTooLong(usize),
    /// A part past the most bytes one may have (the link's upload limit).
    #[error("a part of the upload form is longer than {0} bytes")]
    TooLarge(u64),
    #[error("the upload broke off: {0}")]
    Body(String),
}

/// The error the body stream gives multer when a part's headers do not end in time.
#[derive(Debug, thiserror::Error)]
#[error("a part's headers are too long")]
struct HeadTooLong;

impl From<multer::Error> for MultipartError {
    fn from(e: multer::Error) -> Self {
        use multer::Error as E;
        match e {
            E::IncompleteStream | E::IncompleteFieldData { .. } | E::IncompleteHeaders => Self::Truncated,
            E::FieldSizeExceeded { limit, .. } => Self::TooLarge(limit),
            E::StreamReadFailed(e) if e.is::<HeadTooLong>() => Self::Malformed(e.to_string()),
            E::StreamReadFailed(e) => Self::Body(e.to_string()),
            e => Self::Malformed(e.to_string()),
        }
    }
}

/// The boundary of a `multipart/form-data` content type, if it is one (with a
/// boundary of 1 to 70 characters, as RFC 2046 has them).
pub fn boundary(content_type: &str) -> Option<String> {
    multer::parse_boundary(content_type).ok().filter(|b| (1..=70).contains(&b.len()))
}

/// The body as multer reads it: one piece per poll (see the module's notes), and an
/// error once more than `head_left` bytes went by while multer looked for a part.
struct Paced<S> {
    body: S,
    /// What is left of the body's last frame.
    rest: Bytes,
    /// A piece went out on the last poll: this one says Pending (and wakes at once),
    /// so multer works on what it has before it reads on.
    handed: bool,
    head_left: Arc<AtomicU64>,
}

impl<S, E> Stream for Paced<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.handed {
            this.handed = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        while this.rest.is_empty() {
            match ready!(this.body.poll_next_unpin(cx)) {
                Some(Ok(frame)) => this.rest = frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => return Poll::Ready(None),
            }
        }
        let left = this.head_left.load(Ordering::Relaxed);
        if left == 0 {
            return Poll::Ready(Some(Err(Box::new(HeadTooLong))));
        }
        let piece = this.rest.split_to(this.rest.len().min(PIECE_BYTES));
        if left != UNLIMITED {
            this.head_left.store(left.saturating_sub(piece.len() as u64), Ordering::Relaxed);
        }
        this.handed = true;
        Poll::Ready(Some(Ok(piece)))
    }
}

/// An upload form being read.
pub struct Multipart {
    parts: multer::Multipart<'static>,
    head_left: Arc<AtomicU64>,
}

impl Multipart {
    /// Reads `body`; no part may be longer than `max_part_bytes`. A form may carry
    /// several files, each up to that, so the body as a whole is not limited.
    pub fn new<S, E>(body: S, boundary: &str, max_part_bytes: u64) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let head_left = Arc::new(AtomicU64::new(UNLIMITED));
        let body = Paced { body, rest: Bytes::new(), handed: false, head_left: head_left.clone() };
        // The per-field limit holds for every part, files above all. Text fields get
        // their small one from `text`: multer's limits go by a part's name, but a part
        // is a file by its filename, whatever its name.
        let limits = multer::SizeLimit::new().per_field(max_part_bytes);
        let constraints = multer::Constraints::new().size_limit(limits);
        Self { parts: multer::Multipart::with_constraints(body, boundary, constraints), head_left }
    }

    /// The next part; None after the last. Read each part to its end (or [`skip`]
    /// it) first: what is left of it would count as the next part's headers.
    pub async fn next_part(&mut self) -> Result<Option<Field<'static>>, MultipartError> {
        self.head_left.store(MAX_HEAD_BYTES, Ordering::Relaxed);
        let next = self.parts.next_field().await;
        self.head_left.store(UNLIMITED, Ordering::Relaxed);
        let Some(part) = next? else { return Ok(None) };
        let form_data = part.headers().get(http::header::CONTENT_DISPOSITION).is_some_and(|v| {
            let kind = v.as_bytes().split(|b| *b == b';').next().unwrap_or_default();
            kind.trim_ascii().eq_ignore_ascii_case(b"form-data")
        });
        if !form_data {
            return Err(MultipartError::Malformed("a part that is not form-data".into()));
        }
        if part.name().is_none() {
            return Err(MultipartError::Malformed("a part without a name".into()));
        }
        Ok(Some(part))
    }
}

/// A part's data as it arrives; it ends after an error (multer's part would give it
/// again and again).
pub fn data(part: Field<'static>) -> impl Stream<Item = Result<Bytes, MultipartError>> + Unpin + Send {
    let mut failed = false;
    part.map(|piece| piece.map_err(MultipartError::from)).take_while(move |piece| {
        let go_on = !failed;
        failed |= piece.is_err();
        futures::future::ready(go_on)
    })
}

/// The whole data of a part as text, at most `max` bytes.
pub async fn text(mut part: Field<'_>, max: usize) -> Result<String, MultipartError> {
    let mut out = Vec::new();
    while let Some(piece) = part.chunk().await? {
        if out.len() + piece.len() > max {
            return Err(MultipartError::FieldTooLong(max));
        }
        out.extend_from_slice(&piece);
    }
    String::from_utf8(out).map_err(|_| MultipartError::Malformed("a field is not UTF-8".into()))
}

/// Reads past a part's data.
pub async fn skip(mut part: Field<'_>) -> Result<(), MultipartError> {
    while part.chunk().await?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Body = futures::stream::BoxStream<'static, Result<Bytes, std::convert::Infallible>>;

    /// `text` in pieces of `piece` bytes, all ready at once (as a fast client's).
    fn body(text: &[u8], piece: usize) -> Body {
        let pieces: Vec<_> = text.chunks(piece.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures::stream::iter(pieces).boxed()
    }

    /// (name, filename) and data of each part, and the largest piece of data seen.
    async fn parts(
        body: Body,
        max_part: u64,
    ) -> Result<(Vec<(String, Option<String>, Vec<u8>)>, usize), MultipartError> {
        let mut form = Multipart::new(body, "XyZ", max_part);
        let mut out = Vec::new();
        let mut largest = 0;
        while let Some(part) = form.next_part().await? {
            let (name, filename) = (part.name().unwrap().to_owned(), part.file_name().map(str::to_owned));
            let mut pieces = data(part);
            let mut got = Vec::new();
            while let Some(piece) = pieces.next().await {
                let piece = piece?;
                largest = largest.max(piece.len());
                got.extend_from_slice(&piece);
            }
            out.push((name, filename, got));
        }
        Ok((out, largest))
    }

    fn file_bytes(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn parts_and_data_come_out_whatever_the_piece_sizes() {
        let mut file = file_bytes(5000);
        // Bytes that look like a delimiter's start inside the data.
        file[100..106].copy_from_slice(b"\r\n--Xy");
        let mut text = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\ns3cret\r\n--XyZ\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            .to_vec();
        text.extend_from_slice(&file);
        text.extend_from_slice(b"\r\n--XyZ--\r\n");
        for piece in [1, 2, 3, 7, 64, 1000, 100_000] {
            let (got, _) = parts(body(&text, piece), u64::MAX).await.unwrap();
            assert_eq!(got.len(), 2, "piece {piece}");
            assert_eq!((got[0].0.as_str(), got[0].1.as_deref()), ("password", None));
            assert_eq!(got[0].2, b"s3cret");
            assert_eq!(got[1].1.as_deref(), Some("a \"b\".bin"));
            assert!(got[1].2 == file, "piece {piece}: the file's bytes, exactly");
        }
    }

    #[tokio::test]
    async fn a_file_comes_out_piece_by_piece_however_fast_it_is_sent() {
        let file = file_bytes(4 << 20);
        let mut text = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big\"\r\n\r\n".to_vec();
        text.extend_from_slice(&file);
        text.extend_from_slice(b"\r\n--XyZ--\r\n");
        // One frame of it all, and many small ones, all ready at once.
        for frame in [text.len(), 16 << 10] {
            let (got, largest) = parts(body(&text, frame), u64::MAX).await.unwrap();
            assert!(got[0].2 == file);
            // At most a piece, and what was left of the one before.
            assert!(largest <= 2 * PIECE_BYTES, "frame {frame}: a piece of {largest} bytes");
        }
        // A body that never ends and is always ready is read as far as it is asked.
        let head = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"endless\"\r\n\r\n";
        let endless: Body = futures::stream::once(async { Ok(Bytes::from_static(head)) })
            .chain(futures::stream::repeat(Bytes::from(vec![b'x'; 100_000])).map(Ok))
            .boxed();
        let mut form = Multipart::new(endless, "XyZ", u64::MAX);
        let mut pieces = data(form.next_part().await.unwrap().unwrap());
        for _ in 0..10 {
            assert!(pieces.next().await.unwrap().unwrap().len() <= 2 * PIECE_BYTES);
        }
    }

    #[tokio::test]
    async fn broken_bodies_are_errors_not_data() {
        let cut = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nhalf a fi";
        assert_eq!(parts(body(cut, 4), u64::MAX).await, Err(MultipartError::Truncated));
        let no_name = b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--";
        assert!(matches!(parts(body(no_name, 4), u64::MAX).await, Err(MultipartError::Malformed(_))));
        let no_disposition = b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--";
        assert!(matches!(parts(body(no_disposition, 4), u64::MAX).await, Err(MultipartError::Malformed(_))));
        let not_form_data = b"--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--";
        assert!(matches!(parts(body(not_form_data, 4), u64::MAX).await, Err(MultipartError::Malformed(_))));
        assert_eq!(parts(body(b"no boundary at all", 4), u64::MAX).await, Err(MultipartError::Truncated));
        assert_eq!(parts(body(b"--XyZ--\r\n", 3), u64::MAX).await, Ok((vec![], 0)));
    }

    #[tokio::test]
    async fn what_comes_before_a_parts_data_is_limited() {
        let headers_too_long = MultipartError::Malformed(HeadTooLong.to_string());
        // Headers that never end, and a body with no boundary in it, are refused once
        // a little of them went by (not read to the end into memory).
        let mut long = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\nX-Pad: ".to_vec();
        long.extend(std::iter::repeat_n(b'p', 1 << 20));
        assert_eq!(parts(body(&long, 1000), u64::MAX).await, Err(headers_too_long.clone()));
        let no_boundary = futures::stream::repeat(Bytes::from_static(b"no boundary here ")).map(Ok).boxed();
        assert_eq!(parts(no_boundary, u64::MAX).await, Err(headers_too_long));
        // Headers of a good size, in small pieces, are read.
        let mut fine = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: ".to_vec();
        fine.extend(std::iter::repeat_n(b'p', 8000));
        fine.extend_from_slice(b"\r\n\r\nvalue\r\n--XyZ--\r\n");
        assert_eq!(parts(body(&fine, 100), u64::MAX).await.unwrap().0[0].2, b"value");
    }

    #[tokio::test]
    async fn parts_and_text_fields_have_their_limits() {
        let form = |value: &[u8]| {
            let mut text = b"--XyZ\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n".to_vec();
            text.extend_from_slice(value);
            text.extend_from_slice(b"\r\n--XyZ--\r\n");
            text
        };
        async fn read_text(text: Vec<u8>, max: usize) -> Result<String, MultipartError> {
            let mut form = Multipart::new(body(&text, 10), "XyZ", 1000);
            super::text(form.next_part().await?.unwrap(), max).await
        }
        assert_eq!(read_text(form(b"a/b"), 3).await.as_deref(), Ok("a/b"));
        assert_eq!(read_text(form(b"a/bc"), 3).await, Err(MultipartError::FieldTooLong(3)));
        assert!(matches!(read_text(form(b"\xff\xfe"), 3).await, Err(MultipartError::Malformed(_))));
        // The most a part may have, and one byte more.
        assert_eq!(read_text(form(&[b'x'; 1000]), 2000).await.map(|t| t.len()), Ok(1000));
        assert_eq!(read_text(form(&[b'x'; 1001]), 2000).await, Err(MultipartError::TooLarge(1000)));
        assert_eq!(parts(body(&form(&[b'x'; 1000]), 7), 1000).await.unwrap().0[0].2, [b'x'; 1000]);
        assert_eq!(parts(body(&form(&[b'x'; 1001]), 7), 1000).await, Err(MultipartError::TooLarge(1000)));
    }

    #[test]
    fn boundaries_come_from_the_content_type() {
        assert_eq!(boundary("multipart/form-data; boundary=----abc").as_deref(), Some("----abc"));
        assert_eq!(boundary("Multipart/Form-Data; charset=x; boundary=\"q r\"").as_deref(), Some("q r"));
        assert_eq!(boundary("application/x-www-form-urlencoded"), None);
        assert_eq!(boundary("multipart/form-data"), None);
        assert_eq!(boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))), None);
    }
}
