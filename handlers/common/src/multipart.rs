//! A streaming `multipart/form-data` parser.
//!
//! Decision: the parser is a sans-IO state machine (`Parser`: push bytes in, pull events
//! out) wrapped by a thin async reader (`MultipartReader`) over any `ByteStream`. The file
//! part is never buffered: its bytes leave as soon as they cannot be the start of a
//! delimiter, so memory is one input chunk plus one delimiter. The cost is that text parts
//! must be read explicitly (`read_text`, capped) and the file part is consumed once.
//!
//! Bodies are treated as if preceded by CRLF, so the first boundary needs no special case;
//! a preamble before it and an epilogue after the close delimiter are ignored. Every
//! framing error is a `StorageError::Source` (the producer sent a broken body: 400).

use artifact_store_core::ports::{ByteStream, StorageError};

/// The largest data event the parser emits (bytes arrive in at most input-chunk sizes).
const MAX_EVENT: usize = 256 * 1024;
/// Cap on one part's header block.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Cap on the transport padding after a boundary.
const MAX_BOUNDARY_LINE: usize = 1024;

/// The headers of one part that matter to form-data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartHeaders {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    PartStart(PartHeaders),
    Data(Vec<u8>),
    PartEnd,
    /// The close delimiter was seen; anything after it is ignored.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Preamble,
    AfterDelimiter,
    Headers,
    Body,
    Done,
}

fn malformed(detail: impl Into<String>) -> StorageError {
    StorageError::Source(format!("malformed multipart body: {}", detail.into()))
}

/// The boundary parameter of a `multipart/form-data` content type.
pub fn boundary_from_content_type(content_type: &str) -> Option<String> {
    let mut parts = split_params(content_type).into_iter();
    let mime = parts.next()?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = parts.find_map(|p| param(&p, "boundary"))?;
    let ok = (1..=70).contains(&boundary.len())
        && boundary.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !boundary.ends_with(' ');
    ok.then_some(boundary)
}

/// Sans-IO parser: `push` input, `finish` at end of input, `poll` for events.
pub struct Parser {
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
    eof: bool,
}

impl Parser {
    pub fn new(boundary: &str) -> Parser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        Parser {
            delimiter,
            // The virtual CRLF that lets the first boundary match the delimiter.
            buf: b"\r\n".to_vec(),
            state: State::Preamble,
            eof: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.state != State::Done {
            self.buf.extend_from_slice(chunk);
        }
    }

    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// The next event, or `Ok(None)` when more input is needed.
    pub fn poll(&mut self) -> Result<Option<Event>, StorageError> {
        loop {
            match self.state {
                State::Done => return Ok(Some(Event::End)),
                State::Preamble => match find(&self.buf, &self.delimiter) {
                    Some(i) => {
                        self.buf.drain(..i + self.delimiter.len());
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            self.buf.drain(..self.buf.len() - keep);
                        }
                        return self.need_more("no boundary found");
                    }
                },
                State::AfterDelimiter => {
                    if self.buf.starts_with(b"--") {
                        self.state = State::Done;
                        self.buf = Vec::new();
                        return Ok(Some(Event::End));
                    }
                    match find(&self.buf, b"\r\n") {
                        Some(i) => {
                            if !self.buf[..i].iter().all(|b| *b == b' ' || *b == b'\t') {
                                return Err(malformed("garbage after boundary"));
                            }
                            self.buf.drain(..i + 2);
                            self.state = State::Headers;
                        }
                        None if self.buf.len() > MAX_BOUNDARY_LINE => {
                            return Err(malformed("boundary line too long"));
                        }
                        None => return self.need_more("truncated after boundary"),
                    }
                }
                State::Headers => {
                    let end = if self.buf.starts_with(b"\r\n") {
                        Some((0, 2))
                    } else {
                        find(&self.buf, b"\r\n\r\n").map(|i| (i, i + 4))
                    };
                    match end {
                        Some((block_end, consumed)) => {
                            let headers = parse_headers(&self.buf[..block_end])?;
                            self.buf.drain(..consumed);
                            self.state = State::Body;
                            return Ok(Some(Event::PartStart(headers)));
                        }
                        None if self.buf.len() > MAX_HEADER_BYTES => {
                            return Err(malformed("part headers too large"));
                        }
                        None => return self.need_more("truncated part headers"),
                    }
                }
                State::Body => {
                    return match find(&self.buf, &self.delimiter) {
                        Some(0) => {
                            self.buf.drain(..self.delimiter.len());
                            self.state = State::AfterDelimiter;
                            Ok(Some(Event::PartEnd))
                        }
                        Some(i) => Ok(Some(Event::Data(self.take(i)))),
                        None => {
                            // Only a tail shorter than the delimiter can still start one.
                            let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
                            if safe > 0 {
                                Ok(Some(Event::Data(self.take(safe))))
                            } else {
                                self.need_more("truncated part body")
                            }
                        }
                    };
                }
            }
        }
    }

    /// A parser inside a part whose bytes were taken elsewhere (`MultipartReader::resume`).
    fn inside_part(boundary: &str) -> Parser {
        Parser {
            buf: Vec::new(),
            state: State::Body,
            ..Parser::new(boundary)
        }
    }

    /// The raw bytes buffered inside the current part (none of them emitted yet).
    fn take_part_bytes(&mut self) -> Option<Vec<u8>> {
        (self.state == State::Body).then(|| std::mem::take(&mut self.buf))
    }

    /// Splits off up to `n` (capped) leading bytes of the buffer.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(MAX_EVENT);
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    fn need_more(&self, what: &str) -> Result<Option<Event>, StorageError> {
        if self.eof {
            Err(malformed(what))
        } else {
            Ok(None)
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let last_start = haystack.len() - needle.len();
    let mut i = 0;
    while i <= last_start {
        match haystack[i..=last_start].iter().position(|b| *b == first) {
            Some(p) => {
                let at = i + p;
                if &haystack[at..at + needle.len()] == needle {
                    return Some(at);
                }
                i = at + 1;
            }
            None => return None,
        }
    }
    None
}

fn parse_headers(block: &[u8]) -> Result<PartHeaders, StorageError> {
    let text = std::str::from_utf8(block).map_err(|_| malformed("part headers are not UTF-8"))?;
    let mut headers = PartHeaders::default();
    let mut disposition = false;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| malformed("part header without ':'"))?;
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            let mut params = split_params(value).into_iter();
            let kind = params.next().unwrap_or_default();
            if !kind.trim().eq_ignore_ascii_case("form-data") {
                return Err(malformed("part is not form-data"));
            }
            for p in params {
                if let Some(n) = param(&p, "name") {
                    headers.name = n;
                } else if let Some(f) = param(&p, "filename") {
                    headers.filename = Some(f);
                }
            }
            disposition = true;
        } else if name.trim().eq_ignore_ascii_case("content-type") {
            headers.content_type = Some(value.to_string());
        }
    }
    if !disposition || headers.name.is_empty() {
        return Err(malformed("part without a Content-Disposition name"));
    }
    Ok(headers)
}

/// Splits `a; b="x;y"; c` on `;` outside quotes.
fn split_params(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in value.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                cur.push(c);
                escaped = true;
            }
            '"' => {
                cur.push(c);
                quoted = !quoted;
            }
            ';' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The value of `key=value` (value optionally quoted with `\` escapes) when the key matches.
fn param(p: &str, key: &str) -> Option<String> {
    let (k, v) = p.trim().split_once('=')?;
    if !k.trim().eq_ignore_ascii_case(key) {
        return None;
    }
    let v = v.trim();
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    out.extend(chars.next());
                } else {
                    out.push(c);
                }
            }
            Some(out)
        }
        None => Some(v.to_string()),
    }
}

/// Async reader of parts over a body stream.
pub struct MultipartReader<S> {
    body: S,
    parser: Parser,
    /// `true` while the current part's data has not been consumed to its end.
    in_part: bool,
    ended: bool,
}

impl<S: ByteStream> MultipartReader<S> {
    pub fn new(body: S, boundary: &str) -> MultipartReader<S> {
        MultipartReader {
            body,
            parser: Parser::new(boundary),
            in_part: false,
            ended: false,
        }
    }

    async fn event(&mut self) -> Result<Event, StorageError> {
        loop {
            if let Some(ev) = self.parser.poll()? {
                return Ok(ev);
            }
            match self.body.next_chunk().await? {
                Some(chunk) => self.parser.push(&chunk),
                None => self.parser.finish(),
            }
        }
    }

    /// The next part's headers (skipping what is left of the current part), or `None`
    /// after the close delimiter.
    pub async fn next_part(&mut self) -> Result<Option<PartHeaders>, StorageError> {
        while self.in_part {
            self.next_data().await?;
        }
        if self.ended {
            return Ok(None);
        }
        match self.event().await? {
            Event::PartStart(h) => {
                self.in_part = true;
                Ok(Some(h))
            }
            Event::End => {
                self.ended = true;
                Ok(None)
            }
            ev => Err(malformed(format!("unexpected {ev:?}"))),
        }
    }

    /// The next bytes of the current part; `None` at its end.
    pub async fn next_data(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        if !self.in_part {
            return Ok(None);
        }
        loop {
            match self.event().await? {
                Event::Data(d) if d.is_empty() => continue,
                Event::Data(d) => return Ok(Some(d)),
                Event::PartEnd => {
                    self.in_part = false;
                    return Ok(None);
                }
                ev => return Err(malformed(format!("unexpected {ev:?}"))),
            }
        }
    }

    /// The current part as UTF-8 text of at most `cap` bytes.
    pub async fn read_text(&mut self, cap: usize) -> Result<String, StorageError> {
        let mut out = Vec::new();
        while let Some(d) = self.next_data().await? {
            if out.len() + d.len() > cap {
                return Err(malformed(format!("text part longer than {cap} bytes")));
            }
            out.extend_from_slice(&d);
        }
        String::from_utf8(out).map_err(|_| malformed("text part is not UTF-8"))
    }

    /// The current part's bytes as a `ByteStream` (ends at the part's delimiter).
    pub fn part_stream(&mut self) -> PartStream<'_, S> {
        PartStream { reader: self }
    }

    /// Hands over the current part's bytes, to be moved elsewhere by a declared length:
    /// the bytes already read past its headers (none parsed as data yet) and the body
    /// stream after them. `resume` then checks that the part ends where declared.
    pub fn into_part_bytes(mut self) -> Result<(Vec<u8>, S), StorageError> {
        match (self.in_part, self.parser.take_part_bytes()) {
            (true, Some(held)) => Ok((held, self.body)),
            _ => Err(malformed("no part to hand over")),
        }
    }

    /// The reader over a body whose current part's bytes were taken elsewhere: `body`
    /// continues right after them.
    pub fn resume(body: S, boundary: &str) -> MultipartReader<S> {
        MultipartReader {
            body,
            parser: Parser::inside_part(boundary),
            in_part: true,
            ended: false,
        }
    }

    /// After a part taken by its declared length: the part must end right there (a
    /// delimiter next), and the form may go on only with parts other than `once` (skipped)
    /// up to its end.
    pub async fn finish_after_part(mut self, once: &str) -> Result<(), StorageError> {
        if self.next_data().await?.is_some() {
            return Err(malformed(format!(
                "the `{once}` part is longer than its declared size"
            )));
        }
        while let Some(part) = self.next_part().await? {
            if part.name == once {
                return Err(malformed(format!("more than one `{once}` part")));
            }
        }
        Ok(())
    }
}

/// A form's file part whose size and sha256 the form declared before it, to be moved
/// host-side by that size (`upload::store_declared`); `finish` then reads the rest of the
/// form and refuses it unless the part ended exactly there.
pub struct DeclaredPart {
    /// The body, holding the part's bytes the parser had already read (sent first).
    pub body: crate::body::RawBody,
    /// Bytes read past the part's declared end, put back before `finish` reads on.
    after: Vec<u8>,
    boundary: String,
}

impl DeclaredPart {
    pub fn new(
        reader: MultipartReader<crate::body::RawBody>,
        size: u64,
        boundary: &str,
    ) -> Result<DeclaredPart, StorageError> {
        let (mut held, mut body) = reader.into_part_bytes()?;
        let after = held.split_off(usize::try_from(size).unwrap_or(usize::MAX).min(held.len()));
        body.hold(held);
        Ok(DeclaredPart {
            body,
            after,
            boundary: boundary.to_string(),
        })
    }

    /// Once the part's bytes are gone: the part ends at its declared size, and the rest of
    /// the form is well-formed with no second `file`.
    pub async fn finish(&mut self) -> Result<(), StorageError> {
        self.body.hold(std::mem::take(&mut self.after));
        MultipartReader::resume(&mut self.body, &self.boundary)
            .finish_after_part("file")
            .await
    }
}

pub struct PartStream<'a, S> {
    reader: &'a mut MultipartReader<S>,
}

impl<S: ByteStream> ByteStream for PartStream<'_, S> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        self.reader.next_data().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Chunks(std::collections::VecDeque<Vec<u8>>);

    impl ByteStream for Chunks {
        async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
            Ok(self.0.pop_front())
        }
    }

    fn split_at(body: &[u8], cuts: &[usize]) -> Chunks {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort();
        cuts.dedup();
        let mut out = std::collections::VecDeque::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([body.len()]) {
            if c > prev {
                out.push_back(body[prev..c].to_vec());
                prev = c;
            }
        }
        Chunks(out)
    }

    #[derive(Debug, PartialEq)]
    struct Parsed {
        texts: Vec<(String, String)>,
        file: Option<(PartHeaders, Vec<u8>)>,
        max_chunk: usize,
    }

    fn parse(body: Chunks, boundary: &str) -> Result<Parsed, StorageError> {
        futures::executor::block_on(async {
            let mut r = MultipartReader::new(body, boundary);
            let mut parsed = Parsed {
                texts: vec![],
                file: None,
                max_chunk: 0,
            };
            while let Some(h) = r.next_part().await? {
                if h.name == "file" {
                    let mut bytes = Vec::new();
                    let mut s = r.part_stream();
                    while let Some(c) = s.next_chunk().await? {
                        assert!(!c.is_empty());
                        parsed.max_chunk = parsed.max_chunk.max(c.len());
                        bytes.extend(c);
                    }
                    parsed.file = Some((h, bytes));
                } else {
                    let t = r.read_text(4096).await?;
                    parsed.texts.push((h.name, t));
                }
            }
            Ok(parsed)
        })
    }

    fn body(boundary: &str, file: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"relative_path\"\r\n\r\nreports/a.json\r\n").as_bytes());
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"sha256\"\r\n\r\nabc\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.json\"\r\nContent-Type: application/json\r\n\r\n").as_bytes());
        b.extend_from_slice(file);
        b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        b
    }

    fn expected(file: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        (
            vec![
                ("relative_path".into(), "reports/a.json".into()),
                ("sha256".into(), "abc".into()),
            ],
            file.to_vec(),
        )
    }

    #[test]
    fn whole_body_in_one_chunk() {
        let file = b"hello\r\n--not-the-boundary\r\nworld";
        let p = parse(split_at(&body("XyZ", file), &[]), "XyZ").unwrap();
        let (texts, bytes) = expected(file);
        assert_eq!(p.texts, texts);
        let (h, got) = p.file.unwrap();
        assert_eq!(got, bytes);
        assert_eq!(h.filename.as_deref(), Some("a;b.json"));
        assert_eq!(h.content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn byte_by_byte() {
        let file: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
        let b = body("b0undary", &file);
        let cuts: Vec<usize> = (0..b.len()).collect();
        let p = parse(split_at(&b, &cuts), "b0undary").unwrap();
        assert_eq!(p.file.unwrap().1, file);
    }

    #[test]
    fn file_containing_near_boundaries() {
        // Prefixes of the delimiter inside the data, right where chunks split.
        let file = b"\r\n--b\r\n--bo\r\n--bou\r--bound\n--boundar";
        let b = body("boundary", file);
        for cut in 0..b.len() {
            let p = parse(split_at(&b, &[cut]), "boundary").unwrap();
            assert_eq!(p.file.unwrap().1, file.to_vec(), "cut at {cut}");
        }
    }

    #[test]
    fn preamble_epilogue_and_padding() {
        let mut b = b"preamble\r\n".to_vec();
        b.extend(
            b"--q  \r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nX\r\n--q--\r\nepilogue"
                .iter(),
        );
        let p = parse(split_at(&b, &[3, 12]), "q").unwrap();
        assert_eq!(p.file.unwrap().1, b"X");
    }

    #[test]
    fn empty_file_part() {
        let p = parse(split_at(&body("zz", b""), &[]), "zz").unwrap();
        assert_eq!(p.file.unwrap().1, Vec::<u8>::new());
    }

    #[test]
    fn truncated_bodies_fail() {
        let b = body("zz", b"0123456789");
        for len in 0..b.len() - 4 {
            let r = parse(split_at(&b[..len], &[len / 2]), "zz");
            assert!(
                matches!(r, Err(StorageError::Source(_))),
                "len {len}: {r:?}"
            );
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            &b"--zz\r\nno colon here\r\n\r\nX\r\n--zz--"[..],
            b"--zz\r\nContent-Disposition: attachment; name=\"f\"\r\n\r\nX\r\n--zz--",
            b"--zzjunk\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nX\r\n--zz--",
            b"no boundary at all",
        ] {
            assert!(parse(split_at(bad, &[]), "zz").is_err());
        }
    }

    #[test]
    fn large_chunks_are_split() {
        let file = vec![7u8; 1_000_000];
        let p = parse(split_at(&body("zz", &file), &[]), "zz").unwrap();
        assert!(p.max_chunk <= MAX_EVENT);
        assert_eq!(p.file.unwrap().1, file);
    }

    #[test]
    fn boundary_parsing() {
        assert_eq!(
            boundary_from_content_type("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary_from_content_type("Multipart/Form-Data;charset=utf-8; boundary=\"a b;c\"")
                .as_deref(),
            Some("a b;c")
        );
        assert_eq!(boundary_from_content_type("application/json"), None);
        assert_eq!(boundary_from_content_type("multipart/form-data"), None);
        assert_eq!(
            boundary_from_content_type(&format!(
                "multipart/form-data; boundary={}",
                "x".repeat(71)
            )),
            None
        );
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_parts(
            file in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'-'), Just(b'B'), any::<u8>()], 0..2000),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            // A real client picks a boundary that the data does not contain.
            prop_assume!(find(&[&b"\r\n"[..], &file].concat(), b"\r\n--BB").is_none());
            let b = body("BB", &file);
            let p = parse(split_at(&b, &cuts), "BB").unwrap();
            let (texts, bytes) = expected(&file);
            prop_assert_eq!(p.texts, texts);
            prop_assert_eq!(p.file.unwrap().1, bytes);
        }
    }
}
