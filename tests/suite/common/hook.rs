//! A webhook receiver on 127.0.0.1 for the notification tests: records every request
//! (headers and body) and answers with the status the test sets. `stop` closes the port
//! (senders get "connection refused"); `start_on` opens it again. Status 0 answers nothing:
//! the request is read and the connection held open, unanswered, until the hook is dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub struct Hook {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub status: Arc<AtomicU16>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Hook {
    /// A receiver that is not listening yet (its port is free now).
    pub fn down() -> Hook {
        Hook {
            port: super::free_port(),
            requests: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            running: None,
        }
    }

    /// Listening at once, on a port the kernel picks as it binds: a port chosen first and
    /// bound after could be taken in between by another test's process.
    pub fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut h = Hook::down();
        h.port = listener.local_addr().unwrap().port();
        h.serve_on(listener);
        h
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn listen(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.serve_on(listener);
    }

    fn serve_on(&mut self, listener: TcpListener) {
        assert!(self.running.is_none());
        listener.set_nonblocking(true).unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let (o, requests, status) = (open.clone(), self.requests.clone(), self.status.clone());
        let thread = std::thread::spawn(move || {
            let mut unanswered = Vec::new();
            while o.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(10)))
                            .unwrap();
                        let held = stream.try_clone().unwrap();
                        let status = status.load(Ordering::SeqCst);
                        if let Some(r) = serve(stream, status) {
                            requests.lock().unwrap().push(r);
                        }
                        if status == 0 {
                            unanswered.push(held);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        self.running = Some((open, thread));
    }

    pub fn stop(&mut self) {
        if let Some((open, thread)) = self.running.take() {
            open.store(false, Ordering::SeqCst);
            thread.join().unwrap();
        }
    }

    pub fn received(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(stream: std::net::TcpStream, status: u16) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    if status == 0 {
        return Some(Request {
            path,
            headers,
            body,
            status,
        });
    }
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    Some(Request {
        path,
        headers,
        body,
        status,
    })
}
