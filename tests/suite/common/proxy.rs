//! A TCP proxy a test can cut and restore: while cut, connections to it are refused and open
//! ones are closed, as if the service behind it had died; its port stays the same. Started
//! `truncating`, it drops each connection once the service has sent that many bytes on it:
//! small answers pass, a large download breaks mid-stream every time. `black_hole` makes it
//! a listener that accepts and then never answers: what arrives meanwhile is swallowed, and
//! those connections stay silent for good; after `answer_again`, new connections work.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    target: u16,
    /// Bytes from the service after which a connection is dropped.
    truncate_after: Option<u64>,
    up: Arc<AtomicBool>,
    /// Swallow what arrives, answer nothing.
    silent: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        Proxy::with(target, None)
    }

    pub fn truncating(target: u16, after_bytes: u64) -> Proxy {
        Proxy::with(target, Some(after_bytes))
    }

    fn with(target: u16, truncate_after: Option<u64>) -> Proxy {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut p = Proxy {
            port,
            target,
            truncate_after,
            up: Arc::new(AtomicBool::new(false)),
            silent: Arc::new(AtomicBool::new(false)),
            open: Arc::default(),
            acceptor: None,
        };
        p.restore();
        p
    }

    /// Refuse new connections and close the open ones.
    pub fn cut(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        // Wake the acceptor so it drops its listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(a) = self.acceptor.take() {
            a.join().unwrap();
        }
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Accept connections, answer nothing.
    pub fn black_hole(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// New connections are forwarded again (those the black hole took stay silent).
    pub fn answer_again(&self) {
        self.silent.store(false, Ordering::SeqCst);
    }

    pub fn restore(&mut self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        self.up.store(true, Ordering::SeqCst);
        let (up, open, target) = (self.up.clone(), self.open.clone(), self.target);
        let (limit, silent) = (self.truncate_after, self.silent.clone());
        self.acceptor = Some(std::thread::spawn(move || {
            for client in listener.incoming() {
                if !up.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                open.lock().unwrap().push(client.try_clone().unwrap());
                open.lock().unwrap().push(server.try_clone().unwrap());
                let swallowed = Arc::new(AtomicBool::new(false));
                let ends = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (s1, w1) = (silent.clone(), swallowed.clone());
                pipe(ends.0, ends.1, None, s1, w1);
                pipe(server, client, limit, silent.clone(), swallowed);
            }
        }));
    }
}

/// Copies `from` to `to`; with `limit`, drops both once that many bytes have passed. What
/// arrives while `silent` is swallowed, and the connection (both directions: `swallowed`)
/// forwards nothing more.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    limit: Option<u64>,
    silent: Arc<AtomicBool>,
    swallowed: Arc<AtomicBool>,
) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        let mut passed = 0u64;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if silent.load(Ordering::SeqCst) {
                swallowed.store(true, Ordering::SeqCst);
            }
            if swallowed.load(Ordering::SeqCst) {
                continue;
            }
            let n = limit.map_or(n, |l| n.min(l.saturating_sub(passed) as usize));
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
            passed += n as u64;
            if limit.is_some_and(|l| passed >= l) {
                let _ = to.shutdown(Shutdown::Both);
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
