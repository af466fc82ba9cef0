//! A real SMTP server on loopback for the tests: it speaks enough of RFC 5321 for lettre, keeps
//! every message it accepts, and can be told to refuse mail (451) or to stall mid-conversation.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// Answers MAIL FROM with a temporary failure.
    Refuse,
    /// Stops answering after the greeting, as a hung server does.
    Stall,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let prefix = format!("{}:", name.to_lowercase());
        head.lines()
            .find(|line| line.to_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim().to_owned())
    }

    pub fn message_id(&self) -> String {
        self.header("Message-ID").unwrap_or_default()
    }

    /// The decoded text of every MIME part (quoted-printable and base64 undone).
    pub fn decoded_body(&self) -> String {
        let mut decoded = String::new();
        for part in self.data.split("\r\n--") {
            let Some((head, body)) = part.split_once("\r\n\r\n") else { continue };
            let head = head.to_lowercase();
            let body = body.trim_end_matches("--").trim_end();
            if head.contains("content-transfer-encoding: base64") {
                let joined: String = body.lines().map(str::trim).collect();
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(joined) {
                    decoded.push_str(&String::from_utf8_lossy(&bytes));
                }
            } else if head.contains("content-transfer-encoding: quoted-printable") {
                decoded.push_str(&decode_quoted_printable(body));
            } else {
                decoded.push_str(body);
            }
            decoded.push('\n');
        }
        decoded
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.replace("=\r\n", "").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'='
            && index + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("zz"), 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Shared {
    mode: Mutex<Mode>,
    messages: Mutex<Vec<Received>>,
    /// Every attempt to send: each MAIL FROM, accepted or refused.
    attempts: AtomicUsize,
    stopped: AtomicBool,
}

pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Shared>,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        Self::start_on(0)
    }

    /// On a given port, e.g. one that agora was told about while nothing listened there.
    pub fn start_on(port: u16) -> SmtpSink {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the SMTP sink needs a free port");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Accept),
            messages: Mutex::default(),
            attempts: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || {
            while !accepting.stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let connection = accepting.clone();
                        std::thread::spawn(move || {
                            let _ = converse(stream, &connection);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SmtpSink { port, shared }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// How many messages were offered (MAIL FROM), whether accepted or refused.
    pub fn attempts(&self) -> usize {
        self.shared.attempts.load(Ordering::SeqCst)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
    }
}

/// A port on which nothing listens (yet).
pub fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn converse(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink.test ESMTP ready\r\n")?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mode = *shared.mode.lock().unwrap();
        if mode == Mode::Stall {
            // Hold the connection without answering until told otherwise or stopped.
            while *shared.mode.lock().unwrap() == Mode::Stall && !shared.stopped.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return Ok(());
        }
        let command = line.trim_end().to_uppercase();
        if command.starts_with("EHLO") || command.starts_with("HELO") {
            writer.write_all(b"250 sink.test\r\n")?;
        } else if command.starts_with("MAIL FROM") {
            shared.attempts.fetch_add(1, Ordering::SeqCst);
            if mode == Mode::Refuse {
                writer.write_all(b"451 4.3.0 Mailbox temporarily unavailable, try again later\r\n")?;
            } else {
                to.clear();
                writer.write_all(b"250 2.1.0 OK\r\n")?;
            }
        } else if command.starts_with("RCPT TO") {
            to.push(line.trim_end()[8..].trim().trim_start_matches(':').trim().trim_matches(['<', '>']).to_owned());
            writer.write_all(b"250 2.1.5 OK\r\n")?;
        } else if command == "DATA" {
            writer.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
            let mut data = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            shared.messages.lock().unwrap().push(Received { to: std::mem::take(&mut to), data });
            writer.write_all(b"250 2.0.0 OK queued\r\n")?;
        } else if command == "RSET" || command == "NOOP" {
            writer.write_all(b"250 2.0.0 OK\r\n")?;
        } else if command == "QUIT" {
            writer.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            writer.write_all(b"502 5.5.2 Command not recognized\r\n")?;
        }
    }
}
