//! Helpers of the real-corpus test: the in-process service, the expected outcome of each
//! file, word recall and the EDI check.

mod expected;

use apex_common::Shutdown;
use apex_parser::ParserSettings;
use apex_proto::parser::v1::ParsedDocument;
use apex_proto::parser::v1::parser_service_client::ParserServiceClient;
use tonic::Code;
use tonic::transport::Channel;

pub(crate) use apex_parser::quality::recall;
pub(crate) use expected::expected;

/// What the service answered.
pub(crate) enum Outcome {
    Read(Box<ParsedDocument>),
    Refused(Code, String),
}

impl Outcome {
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Read(d) => format!(
                "read as {}: {} words, {} chunks, {} records, {} parts, warnings {:?}",
                d.format,
                all_words(d),
                d.chunks.len(),
                d.records.len(),
                d.parts.len(),
                d.warnings
                    .iter()
                    .map(|w| w.chars().take(90).collect::<String>())
                    .collect::<Vec<_>>()
            ),
            Self::Refused(code, message) => format!("refused {code:?}: {message}"),
        }
    }
}

/// Words of a document and of its parts.
pub(crate) fn all_words(d: &ParsedDocument) -> usize {
    d.text.split_whitespace().count() + d.parts.iter().map(all_words).sum::<usize>()
}

/// The outcome a user agrees with.
pub(crate) enum Expect {
    /// Read, with at least this many words (parts included).
    Read { min_words: usize },
    /// Read, no text and `no_text_layer`.
    NoText,
    /// Refused with this code, the message containing this reason.
    Refused { code: Code, reason: &'static str },
}

impl Expect {
    pub(crate) fn check(&self, outcome: &Outcome) -> Result<(), String> {
        match (self, outcome) {
            (Self::Read { min_words }, Outcome::Read(d)) => {
                let n = all_words(d);
                if n < *min_words {
                    return Err(format!("{n} words, expected at least {min_words}"));
                }
                if n > 0 && d.chunks.is_empty() && d.parts.iter().all(|p| p.chunks.is_empty()) {
                    return Err("text but no chunks".to_owned());
                }
                Ok(())
            }
            (Self::NoText, Outcome::Read(d)) if d.text.is_empty() && d.no_text_layer => Ok(()),
            (Self::NoText, Outcome::Read(_)) => {
                Err("expected no text and no_text_layer".to_owned())
            }
            (Self::Refused { code, reason }, Outcome::Refused(c, m)) => {
                if c != code || !m.contains(reason) {
                    return Err(format!("expected {code:?} with {reason:?}"));
                }
                Ok(())
            }
            (Self::Refused { code, reason }, Outcome::Read(_)) => Err(format!(
                "read, but expected a refusal {code:?} with {reason:?}"
            )),
            (_, Outcome::Refused(..)) => Err("refused, but expected it read".to_owned()),
        }
    }
}

/// Words as letters only (two or more; one Han or kana character each), NFKC-folded and
/// lower-cased: ligatures and presentation forms compare equal, and digits and maths (which
/// the libraries map differently) do not count.
/// The manifest's sets (`835x3` = three 835s) each read into a record with its envelope.
pub(crate) fn edi_records(doc: &ParsedDocument, sets: &str) -> Result<(), String> {
    let mut want: Vec<String> = Vec::new();
    for s in sets.split(',').map(str::trim) {
        let (id, n) = s
            .split_once('x')
            .map_or((s, 1), |(i, n)| (i, n.parse().unwrap_or(1)));
        want.extend(std::iter::repeat_n(id.to_owned(), n));
    }
    let mut got: Vec<String> = doc
        .records
        .iter()
        .filter_map(|r| r.kind.strip_prefix("edi-x12/").map(str::to_owned))
        .collect();
    want.sort();
    got.sort();
    if got != want {
        return Err(format!("EDI records {got:?}, the manifest says {want:?}"));
    }
    for r in &doc.records {
        for key in [
            "sender",
            "receiver",
            "isa_control",
            "gs_control",
            "st_control",
        ] {
            if r.fields.get(key).is_none_or(|v| v.is_empty()) {
                return Err(format!(
                    "EDI record {} lacks its envelope field {key}",
                    r.kind
                ));
            }
        }
    }
    Ok(())
}

/// The parser service on 127.0.0.1 port 0, with default settings (PDFium, OCR on).
pub(crate) struct Server {
    channel: Channel,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = ParserSettings::default();
        settings.service.blob_url = dir.path().display().to_string();
        // The 400-page book takes a while in a debug build.
        settings.parse_timeout_secs = 300;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(apex_parser::run(settings, listener, None, shutdown.clone()));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connect");
        Self {
            channel,
            shutdown,
            task,
            _dir: dir,
        }
    }

    pub(crate) fn client(&self) -> ParserServiceClient<Channel> {
        ParserServiceClient::new(self.channel.clone())
            .max_decoding_message_size(256 * 1024 * 1024)
            .max_encoding_message_size(256 * 1024 * 1024)
    }

    pub(crate) async fn stop(self) {
        self.shutdown.trigger();
        self.task.await.expect("join").expect("server ran cleanly");
    }
}
