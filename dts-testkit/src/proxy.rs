//! A TCP proxy for fault injection: it sits between a client and a server and, on command,
//! cuts every live connection, stalls forwarding, slows it down, or refuses connections.
//!
//! It is synchronous, like the rest of the testkit: one thread accepts, and each proxied
//! connection has one thread per direction. Commands take effect at once on every live
//! connection; connections made after a cut are forwarded normally, so a client that
//! reconnects gets through.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Error;

/// Bytes read from one side before they are forwarded to the other.
const CHUNK: usize = 16 << 10;

/// How the proxy forwards bytes at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Forwarding {
    /// Bytes go through as they arrive.
    #[default]
    Normal,
    /// Nothing goes through: bytes read from either side wait until forwarding resumes.
    /// Connections stay open and new ones are accepted (and stalled too).
    Stalled,
    /// Every chunk of up to 16 KiB waits this long before it is forwarded.
    Slowed(Duration),
    /// The server looks down: live connections were cut, and new ones are closed as soon
    /// as they are accepted.
    Refused,
}

/// One proxied connection: the client's socket and the server's.
struct Link {
    client: TcpStream,
    server: TcpStream,
    closed: AtomicBool,
    /// Forwards nothing more, for good, but stays open (see [`FaultProxy::blackhole`]).
    blackholed: AtomicBool,
}

impl Link {
    /// Closes both sides; the forwarding threads see the sockets fail and end.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

struct Shared {
    upstream: SocketAddr,
    links: Mutex<Vec<Arc<Link>>>,
    forwarding: Mutex<Forwarding>,
    changed: Condvar,
    stopping: AtomicBool,
    accepted: AtomicU64,
    cut: AtomicU64,
}

impl Shared {
    fn links(&self) -> MutexGuard<'_, Vec<Arc<Link>>> {
        self.links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn forwarding(&self) -> MutexGuard<'_, Forwarding> {
        self.forwarding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits while forwarding is stalled; then returns the delay to apply to a chunk.
    /// `None` when the link was closed meanwhile.
    fn gate(&self, link: &Link) -> Option<Duration> {
        let mut mode = self.forwarding();
        loop {
            if link.is_closed() || self.stopping.load(Ordering::SeqCst) {
                return None;
            }
            if link.blackholed.load(Ordering::SeqCst) {
                mode = self
                    .changed
                    .wait_timeout(mode, Duration::from_millis(100))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
                continue;
            }
            match *mode {
                Forwarding::Normal | Forwarding::Refused => return Some(Duration::ZERO),
                Forwarding::Slowed(d) => return Some(d),
                Forwarding::Stalled => {
                    mode = self
                        .changed
                        .wait_timeout(mode, Duration::from_millis(100))
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

/// A TCP proxy on a free loopback port in front of one server, for fault-injection tests.
///
/// Point a client at [`FaultProxy::port`] instead of the server's port (for example with
/// [`FaultProxy::proxied_url`]), then call [`FaultProxy::cut`], [`FaultProxy::stall`],
/// [`FaultProxy::slow`], [`FaultProxy::refuse`] and [`FaultProxy::resume`] from the test. Dropping the proxy closes
/// every connection through it.
///
/// ```no_run
/// use std::time::Duration;
/// use dts_testkit::FaultProxy;
///
/// fn main() -> Result<(), dts_testkit::Error> {
///     let mysql = dts_testkit::mariadb();
///     let proxy = FaultProxy::start(mysql.host(), mysql.port())?;
///     let url = proxy.proxied_url(&mysql.url());
///     println!("connect dts to {url}");
///     proxy.slow(Duration::from_millis(5));
///     let cut = proxy.cut();
///     println!("cut {cut} connections");
///     proxy.resume();
///     Ok(())
/// }
/// ```
pub struct FaultProxy {
    port: u16,
    upstream_host: String,
    upstream_port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("port", &self.port)
            .field("upstream", &self.shared.upstream)
            .field("forwarding", &*self.shared.forwarding())
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free port of `127.0.0.1` forwarding to `host:port`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the address does not resolve or no port can be bound.
    pub fn start(host: &str, port: u16) -> Result<Self, Error> {
        let io_err = |action: String| move |source| Error::Io { action, source };
        let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(io_err(format!("resolve `{host}:{port}`")))?
            .next()
            .ok_or_else(|| Error::Io {
                action: format!("resolve `{host}:{port}`"),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            })?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(io_err("bind a proxy port on 127.0.0.1".into()))?;
        let local = listener
            .local_addr()
            .map_err(io_err("read the proxy's port".into()))?;
        let shared = Arc::new(Shared {
            upstream,
            links: Mutex::new(Vec::new()),
            forwarding: Mutex::new(Forwarding::Normal),
            changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("proxy-{}", local.port()))
            .spawn(move || accept_loop(&listener, &s))
            .map_err(io_err("start the proxy's thread".into()))?;
        Ok(Self {
            port: local.port(),
            upstream_host: host.to_owned(),
            upstream_port: port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The proxy's port on `127.0.0.1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `url` with the server's `host:port` replaced by the proxy's address, so a client
    /// given it connects through the proxy. `url` is returned unchanged if it does not name
    /// the server this proxy forwards to.
    pub fn proxied_url(&self, url: &str) -> String {
        let from = format!("@{}:{}", self.upstream_host, self.upstream_port);
        let to = format!("@127.0.0.1:{}", self.port);
        url.replacen(&from, &to, 1)
    }

    /// Closes both sides of every live connection through the proxy, as a network failure
    /// or a server restart would. Returns how many connections were cut. Later connections
    /// are forwarded as before.
    pub fn cut(&self) -> usize {
        let links = std::mem::take(&mut *self.shared.links());
        let mut n = 0;
        for link in links.iter().filter(|l| !l.is_closed()) {
            link.close();
            n += 1;
        }
        self.shared.cut.fetch_add(n as u64, Ordering::Relaxed);
        self.shared.changed.notify_all();
        n
    }

    /// Stops forwarding in both directions on every connection, live or new, until
    /// [`FaultProxy::resume`] (or [`FaultProxy::cut`] for the live ones).
    pub fn stall(&self) {
        self.set(Forwarding::Stalled);
    }

    /// Stops forwarding on every live connection for good while leaving it open, as a
    /// firewall or NAT that forgets established connections does: neither side hears from
    /// the other again, and nothing tells them. New connections are forwarded as before.
    /// Returns how many connections were blackholed.
    pub fn blackhole(&self) -> usize {
        let links = self.shared.links();
        let mut n = 0;
        for link in links.iter().filter(|l| !l.is_closed()) {
            link.blackholed.store(true, Ordering::SeqCst);
            n += 1;
        }
        n
    }

    /// Delays every chunk of up to 16 KiB forwarded in either direction by `delay`, until
    /// [`FaultProxy::resume`].
    pub fn slow(&self, delay: Duration) {
        self.set(Forwarding::Slowed(delay));
    }

    /// Makes the server look down until [`FaultProxy::resume`]: cuts every live connection
    /// and closes new ones as soon as they are accepted. Returns how many were cut.
    pub fn refuse(&self) -> usize {
        self.set(Forwarding::Refused);
        self.cut()
    }

    /// Forwards normally again.
    pub fn resume(&self) {
        self.set(Forwarding::Normal);
    }

    /// How the proxy forwards at the moment.
    pub fn forwarding(&self) -> Forwarding {
        *self.shared.forwarding()
    }

    /// Connections open through the proxy now.
    pub fn live_connections(&self) -> usize {
        let mut links = self.shared.links();
        links.retain(|l| !l.is_closed());
        links.len()
    }

    /// Connections accepted since the proxy started.
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed by [`FaultProxy::cut`] since the proxy started.
    pub fn connections_cut(&self) -> u64 {
        self.shared.cut.load(Ordering::Relaxed)
    }

    fn set(&self, mode: Forwarding) {
        *self.shared.forwarding() = mode;
        self.shared.changed.notify_all();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for link in std::mem::take(&mut *self.shared.links()) {
            link.close();
        }
        self.shared.changed.notify_all();
        // Wake the acceptor, which then sees `stopping`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        if *shared.forwarding() == Forwarding::Refused {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5))
        else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        let link = Arc::new(Link {
            client,
            server,
            closed: AtomicBool::new(false),
            blackholed: AtomicBool::new(false),
        });
        {
            let mut links = shared.links();
            links.retain(|l| !l.is_closed());
            links.push(link.clone());
        }
        for (from, to) in [(c2, "up"), (s2, "down")] {
            let (s, l) = (shared.clone(), link.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("proxy-{to}"))
                .spawn(move || pump(from, &s, &l, to == "up"));
            if spawned.is_err() {
                link.close();
            }
        }
    }
}

/// Forwards bytes read from `from` to the other side of `link` until either side fails or
/// closes, or the link is cut; then closes both sides.
fn pump(mut from: TcpStream, shared: &Shared, link: &Link, upstream: bool) {
    let mut to = if upstream { &link.server } else { &link.client };
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Some(delay) = shared.gate(link) else {
            break;
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if link.is_closed() || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    link.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port; returns its port.
    fn echo() -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { continue };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = io::copy(&mut r, &mut s);
                });
            }
        });
        port
    }

    fn round_trip(s: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
        s.write_all(msg)?;
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back)?;
        Ok(back)
    }

    #[test]
    fn a_blackholed_link_hears_nothing_but_new_ones_work() {
        let proxy = FaultProxy::start("127.0.0.1", echo()).unwrap();
        let mut a = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(round_trip(&mut a, b"hello").unwrap(), b"hello");
        assert_eq!(proxy.blackhole(), 1);
        a.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            round_trip(&mut a, b"lost").is_err(),
            "blackholed link forwarded"
        );
        assert_eq!(proxy.live_connections(), 1, "a blackholed link stays open");
        let mut b = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(round_trip(&mut b, b"fresh").unwrap(), b"fresh");
    }

    #[test]
    fn forwards_cuts_stalls_and_slows() {
        let proxy = FaultProxy::start("127.0.0.1", echo()).unwrap();
        let mut a = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(round_trip(&mut a, b"hello").unwrap(), b"hello");
        assert_eq!(proxy.live_connections(), 1);

        // Stalled: nothing comes back until forwarding resumes.
        proxy.stall();
        a.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        a.write_all(b"wait").unwrap();
        let mut buf = [0u8; 4];
        assert!(a.read_exact(&mut buf).is_err(), "stalled proxy forwarded");
        proxy.resume();
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        a.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"wait");

        // Slowed: each chunk waits in each direction.
        proxy.slow(Duration::from_millis(150));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut a, b"slow").unwrap(), b"slow");
        assert!(started.elapsed() >= Duration::from_millis(300));
        proxy.resume();

        // Cut: the live connection fails, a new one works.
        assert_eq!(proxy.cut(), 1);
        assert!(round_trip(&mut a, b"gone").is_err());
        let mut b = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(round_trip(&mut b, b"again").unwrap(), b"again");
        assert_eq!(proxy.connections_cut(), 1);
        assert_eq!(proxy.connections_accepted(), 2);

        // Refused: the live connection is cut and new ones are closed until resumed.
        assert_eq!(proxy.refuse(), 1);
        assert!(round_trip(&mut b, b"down").is_err());
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(round_trip(&mut c, b"down").is_err());
        proxy.resume();
        let mut d = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        d.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(round_trip(&mut d, b"up").unwrap(), b"up");
    }

    #[test]
    fn proxied_url_replaces_the_server_address() {
        let proxy = FaultProxy::start("127.0.0.1", echo()).unwrap();
        let url = format!(
            "mysql://root@127.0.0.1:{}/db?ssl-mode=DISABLED",
            proxy.upstream_port
        );
        assert_eq!(
            proxy.proxied_url(&url),
            format!(
                "mysql://root@127.0.0.1:{}/db?ssl-mode=DISABLED",
                proxy.port()
            )
        );
    }
}
