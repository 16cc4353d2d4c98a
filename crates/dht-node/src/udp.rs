//! Batched UDP I/O on a tokio [`UdpSocket`]: many datagrams per system call.
//!
//! On Linux, [`try_recv_batch`] takes up to [`RECV_SLOTS`] datagrams, each with its source
//! address, in one `recvmmsg(2)`, and [`send_batch`] hands up to [`SEND_CHUNK_MAX`] datagrams,
//! each to its own destination, to one `sendmmsg(2)`. Elsewhere the same functions fall back to
//! loops of `try_recv_from` / `try_send_to`, with the same contract.
//!
//! Why not a crate: quinn-udp batches receives, but it sends one destination per call (GSO
//! segments of one flow); it dropped `sendmmsg` (quinn-rs/quinn#1749), and a DHT node answers
//! many peers per turn. The two system calls need only a few lines of `libc`, kept here with a
//! SAFETY note on each unsafe block.
//!
//! Readiness follows tokio's rules: the raw calls run inside [`UdpSocket::try_io`], which
//! clears the socket's readiness when the call reports `WouldBlock`, so a later
//! `readable()` / `writable()` waits for the OS to say there is more.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use dht_proto::node::Transmit;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams one turn of a batched loop receives before it sends what they caused: the node's
/// driver does this, and so does the load benchmark's bare echo server, so the two compare.
pub const TURN_DATAGRAMS_MAX: usize = 256;

/// Datagrams one receive call can return. With [`SLOT_LEN`] this is 64 KiB of buffer; the
/// driver keeps one such batch per runtime thread, shared by the nodes on it (the loopback
/// cluster runs hundreds of nodes in one process).
pub const RECV_SLOTS: usize = 32;

/// Bytes of one receive slot. Mainline keeps every message inside one unfragmented datagram
/// (the largest, a BEP 44 put or a 50-peer IPv6 `get_peers` reply, is about 1.5 KB); a longer
/// datagram is truncated to this length, then fails to decode and is counted as malformed, as
/// before.
pub const SLOT_LEN: usize = 2048;

/// Datagrams handed to one `sendmmsg(2)` call (the kernel accepts up to 1024).
pub const SEND_CHUNK_MAX: usize = 64;

/// How long [`send_batch`] waits for the socket to accept more without any progress before it
/// gives up on the rest of the batch (counted as failed). On loopback and real links a full
/// send buffer drains in microseconds; a stall this long means something is wrong.
pub const SEND_STALL_MAX: Duration = Duration::from_secs(2);

/// Something to send: a destination and the datagram's bytes.
pub trait Outgoing {
    /// Where the datagram goes.
    fn destination(&self) -> SocketAddr;
    /// The datagram.
    fn payload(&self) -> &[u8];
}

impl Outgoing for Transmit {
    fn destination(&self) -> SocketAddr {
        self.to
    }
    fn payload(&self) -> &[u8] {
        &self.data
    }
}

impl Outgoing for (SocketAddr, Vec<u8>) {
    fn destination(&self) -> SocketAddr {
        self.0
    }
    fn payload(&self) -> &[u8] {
        &self.1
    }
}

impl Outgoing for (SocketAddr, &[u8]) {
    fn destination(&self) -> SocketAddr {
        self.0
    }
    fn payload(&self) -> &[u8] {
        self.1
    }
}

/// Preallocated room for one batch of received datagrams: [`RECV_SLOTS`] slots of
/// [`SLOT_LEN`] bytes, and the source address of each.
pub struct RecvBatch {
    data: Box<[u8]>,
    lens: [usize; RECV_SLOTS],
    from: [Option<SocketAddr>; RECV_SLOTS],
    count: usize,
    truncated: u64,
    #[cfg(target_os = "linux")]
    names: Box<[libc::sockaddr_storage; RECV_SLOTS]>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("count", &self.count)
            .field("truncated", &self.truncated)
            .finish()
    }
}

impl RecvBatch {
    /// Empty slots.
    pub fn new() -> Self {
        RecvBatch {
            data: vec![0u8; RECV_SLOTS * SLOT_LEN].into_boxed_slice(),
            lens: [0; RECV_SLOTS],
            from: [None; RECV_SLOTS],
            count: 0,
            truncated: 0,
            // SAFETY: sockaddr_storage is plain data; all zeros is a valid (AF_UNSPEC) value.
            #[cfg(target_os = "linux")]
            names: Box::new(unsafe { std::mem::zeroed() }),
        }
    }

    /// Datagrams the last receive filled in.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the last receive filled in nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagrams of the last receive that were longer than [`SLOT_LEN`] (each was cut to
    /// `SLOT_LEN`).
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// The datagrams of the last receive, in arrival order, with their sources.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        (0..self.count).filter_map(move |i| {
            let from = self.from[i]?;
            let start = i * SLOT_LEN;
            Some((from, &self.data[start..start + self.lens[i]]))
        })
    }
}

/// Receives what the socket holds, without waiting, up to [`RECV_SLOTS`] datagrams, into
/// `batch` (its previous contents are replaced). Returns how many arrived, at least one;
/// `Err(WouldBlock)` when none was waiting.
pub fn try_recv_batch(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    batch.count = 0;
    batch.truncated = 0;
    let n = socket.try_io(Interest::READABLE, || sys::recv(socket, batch))?;
    batch.count = n;
    Ok(n)
}

/// Waits until at least one datagram arrived, then receives up to [`RECV_SLOTS`] as
/// [`try_recv_batch`] does.
pub async fn recv_batch(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    // Each round waits for the OS to report readability; a spurious wake costs one call.
    loop {
        socket.readable().await?;
        match try_recv_batch(socket, batch) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// What [`send_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams the OS accepted.
    pub sent: usize,
    /// Datagrams dropped: refused by the OS (bad address, unreachable, too big), or left over
    /// after the socket accepted nothing for [`SEND_STALL_MAX`].
    pub failed: usize,
    /// Send system calls made.
    pub calls: usize,
}

/// Sends every datagram of `items`, [`SEND_CHUNK_MAX`] per system call. When the socket's
/// send buffer is full, waits until it drains and goes on; a datagram the OS refuses is logged
/// at debug level, counted in [`SendReport::failed`] and skipped.
pub async fn send_batch<T: Outgoing>(socket: &UdpSocket, items: &[T]) -> SendReport {
    let mut report = SendReport::default();
    let mut next = 0;
    let mut last_progress = tokio::time::Instant::now();
    // Every round sends at least one datagram, skips one, or waits (bounded by the stall
    // deadline), so the loop ends.
    while next < items.len() {
        let chunk = &items[next..items.len().min(next + SEND_CHUNK_MAX)];
        report.calls += 1;
        match socket.try_io(Interest::WRITABLE, || sys::send(socket, chunk)) {
            Ok(n) => {
                // The OS reports at least one sent when it reports success.
                let n = n.clamp(1, chunk.len());
                next += n;
                report.sent += n;
                last_progress = tokio::time::Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let deadline = last_progress + SEND_STALL_MAX;
                let ready = tokio::time::timeout_at(deadline, socket.writable()).await;
                if !matches!(ready, Ok(Ok(()))) {
                    let left = items.len() - next;
                    tracing::debug!(left, "send stalled; dropping the rest of the batch");
                    report.failed += left;
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if tokio::time::Instant::now() >= last_progress + SEND_STALL_MAX {
                    report.failed += items.len() - next;
                    break;
                }
            }
            Err(e) => {
                // sendmmsg reports an error only for the first datagram of the chunk.
                tracing::debug!(to = %chunk[0].destination(), error = %e, "send failed");
                report.failed += 1;
                next += 1;
            }
        }
    }
    report
}

/// Binds a non-blocking UDP socket with send and receive buffers of `buffer_bytes` (the OS
/// may grant less), for use outside a node (benchmarks, tools). Must be called within a tokio
/// runtime.
pub fn bind(addr: SocketAddr, buffer_bytes: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    let _ = socket.set_send_buffer_size(buffer_bytes);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

#[cfg(target_os = "linux")]
mod sys {
    //! `recvmmsg(2)` and `sendmmsg(2)`.

    use std::io;
    use std::os::fd::AsRawFd;

    use socket2::SockAddr;
    use tokio::net::UdpSocket;

    use super::{Outgoing, RecvBatch, RECV_SLOTS, SEND_CHUNK_MAX, SLOT_LEN};

    pub(super) fn recv(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        let base = batch.data.as_mut_ptr();
        // SAFETY: iovec and mmsghdr are plain C structs for which all zeros is valid (null
        // pointers, zero lengths); every pointer is set below before the call.
        let mut iovs: [libc::iovec; RECV_SLOTS] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; RECV_SLOTS] = unsafe { std::mem::zeroed() };
        for (i, iov) in iovs.iter_mut().enumerate() {
            // Slot i lies inside `data`, which holds RECV_SLOTS * SLOT_LEN bytes.
            iov.iov_base = base.wrapping_add(i * SLOT_LEN).cast();
            iov.iov_len = SLOT_LEN;
        }
        let iov_base = iovs.as_mut_ptr();
        let name_base = batch.names.as_mut_ptr();
        for (i, hdr) in hdrs.iter_mut().enumerate() {
            let h = &mut hdr.msg_hdr;
            h.msg_name = name_base.wrapping_add(i).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = iov_base.wrapping_add(i);
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live iovec and sockaddr_storage of the sizes given,
        // and each iovec at SLOT_LEN writable bytes of `data`; all outlive the call, which does
        // not keep the pointers. MSG_DONTWAIT keeps it from blocking; no timeout is passed.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                RECV_SLOTS as libc::c_uint,
                // MSG_TRUNC as an input flag makes Linux report a datagram's full length in
                // msg_len even when it did not fit, which detects truncation more reliably
                // than the output flag alone.
                (libc::MSG_DONTWAIT | libc::MSG_TRUNC) as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(RECV_SLOTS);
        for (i, h) in hdrs.iter().enumerate().take(n) {
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || h.msg_len as usize > SLOT_LEN {
                batch.truncated += 1;
            }
            batch.lens[i] = (h.msg_len as usize).min(SLOT_LEN);
            // SAFETY: the kernel wrote a socket address of msg_namelen bytes into names[i]; a
            // family socket2 does not know yields None, and the datagram is skipped.
            let name = unsafe { SockAddr::new(batch.names[i], h.msg_hdr.msg_namelen) };
            batch.from[i] = name.as_socket();
        }
        Ok(n)
    }

    pub(super) fn send<T: Outgoing>(socket: &UdpSocket, items: &[T]) -> io::Result<usize> {
        let count = items.len().min(SEND_CHUNK_MAX);
        let names: Vec<SockAddr> = items[..count]
            .iter()
            .map(|t| SockAddr::from(t.destination()))
            .collect();
        // SAFETY: plain C structs for which all zeros is valid; the pointers are set below.
        let mut iovs: [libc::iovec; SEND_CHUNK_MAX] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; SEND_CHUNK_MAX] = unsafe { std::mem::zeroed() };
        for (iov, t) in iovs.iter_mut().zip(&items[..count]) {
            let data = t.payload();
            // The kernel only reads through this pointer (sendmmsg's iovecs are input).
            iov.iov_base = data.as_ptr() as *mut libc::c_void;
            iov.iov_len = data.len();
        }
        let iov_base = iovs.as_mut_ptr();
        for (i, (hdr, name)) in hdrs.iter_mut().zip(&names).enumerate() {
            let h = &mut hdr.msg_hdr;
            h.msg_name = name.as_ptr() as *mut libc::c_void;
            h.msg_namelen = name.len();
            h.msg_iov = iov_base.wrapping_add(i);
            h.msg_iovlen = 1;
        }
        // SAFETY: the first `count` headers point at live addresses and iovecs, which point at
        // the items' bytes; all outlive the call, which only reads them.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                count as libc::c_uint,
                // MSG_TRUNC as an input flag makes Linux report a datagram's full length in
                // msg_len even when it did not fit, which detects truncation more reliably
                // than the output flag alone.
                (libc::MSG_DONTWAIT | libc::MSG_TRUNC) as _,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    //! Portable fallback: one system call per datagram, same contract as the Linux version.

    use std::io;

    use tokio::net::UdpSocket;

    use super::{Outgoing, RecvBatch, RECV_SLOTS, SLOT_LEN};

    pub(super) fn recv(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
        let mut n = 0;
        while n < RECV_SLOTS {
            let slot = &mut batch.data[n * SLOT_LEN..(n + 1) * SLOT_LEN];
            match socket.try_recv_from(slot) {
                Ok((len, from)) => {
                    batch.lens[n] = len.min(SLOT_LEN);
                    batch.from[n] = Some(from);
                    n += 1;
                }
                Err(e) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
            }
        }
        Ok(n)
    }

    pub(super) fn send<T: Outgoing>(socket: &UdpSocket, items: &[T]) -> io::Result<usize> {
        let mut n = 0;
        for t in items.iter().take(super::SEND_CHUNK_MAX) {
            match socket.try_send_to(t.payload(), t.destination()) {
                Ok(_) => n += 1,
                Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Datagrams of the round-trip test.
    const DATAGRAMS: usize = 100;

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    async fn receive_all(socket: &UdpSocket, want: usize) -> (Vec<(SocketAddr, Vec<u8>)>, usize) {
        let mut batch = RecvBatch::new();
        let mut got = Vec::new();
        let mut calls = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < want && Instant::now() < deadline {
            let r = tokio::time::timeout(Duration::from_secs(1), recv_batch(socket, &mut batch));
            let Ok(Ok(n)) = r.await else { break };
            calls += 1;
            assert!(
                (1..=RECV_SLOTS).contains(&n),
                "a batch holds 1..=RECV_SLOTS, got {n}"
            );
            got.extend(batch.iter().map(|(a, d)| (a, d.to_vec())));
        }
        (got, calls)
    }

    #[tokio::test]
    async fn hundred_datagrams_arrive_in_batches_with_their_sources_and_bytes() {
        let a = bind(loopback(), 1 << 20).unwrap();
        let b = bind(loopback(), 1 << 20).unwrap();
        let b_addr = b.local_addr().unwrap();
        let items: Vec<(SocketAddr, Vec<u8>)> = (0..DATAGRAMS)
            .map(|i| (b_addr, format!("datagram {i:03}").into_bytes()))
            .collect();
        let report = send_batch(&a, &items).await;
        assert_eq!(report.sent, DATAGRAMS);
        assert_eq!(report.failed, 0);
        if cfg!(target_os = "linux") {
            assert!(report.calls <= DATAGRAMS.div_ceil(SEND_CHUNK_MAX) + 1);
        }
        let (got, calls) = receive_all(&b, DATAGRAMS).await;
        assert_eq!(got.len(), DATAGRAMS);
        let a_addr = a.local_addr().unwrap();
        for (i, (from, data)) in got.iter().enumerate() {
            assert_eq!(*from, a_addr);
            assert_eq!(data, &items[i].1, "loopback keeps the order of one sender");
        }
        if cfg!(target_os = "linux") {
            assert!(
                calls < DATAGRAMS,
                "batches, not one call per datagram: {calls}"
            );
        }
    }

    #[tokio::test]
    async fn sources_of_several_senders_are_told_apart() {
        let rx = bind(loopback(), 1 << 20).unwrap();
        let to = rx.local_addr().unwrap();
        let senders: Vec<UdpSocket> = (0..3).map(|_| bind(loopback(), 1 << 16).unwrap()).collect();
        for (i, s) in senders.iter().enumerate() {
            let report = send_batch(s, &[(to, vec![i as u8; 5])]).await;
            assert_eq!(report.sent, 1);
        }
        let (got, _) = receive_all(&rx, senders.len()).await;
        assert_eq!(got.len(), senders.len());
        for (from, data) in got {
            let i = data[0] as usize;
            assert_eq!(from, senders[i].local_addr().unwrap());
        }
    }

    #[tokio::test]
    async fn ipv6_sources_are_read() {
        let Ok(rx) = bind("[::1]:0".parse().unwrap(), 1 << 16) else {
            return; // no IPv6 loopback on this machine
        };
        let tx = bind("[::1]:0".parse().unwrap(), 1 << 16).unwrap();
        let report = send_batch(&tx, &[(rx.local_addr().unwrap(), b"six".to_vec())]).await;
        assert_eq!(report.sent, 1);
        let (got, _) = receive_all(&rx, 1).await;
        assert_eq!(got, vec![(tx.local_addr().unwrap(), b"six".to_vec())]);
    }

    #[tokio::test]
    async fn a_refused_destination_is_counted_and_the_rest_still_sent() {
        let a = bind(loopback(), 1 << 16).unwrap();
        let b = bind(loopback(), 1 << 16).unwrap();
        let to = b.local_addr().unwrap();
        // An IPv6 destination on an IPv4 socket is refused for that datagram only.
        let items = vec![
            (to, b"one".to_vec()),
            ("[::1]:9".parse().unwrap(), b"bad".to_vec()),
            (to, b"two".to_vec()),
        ];
        let report = send_batch(&a, &items).await;
        assert_eq!((report.sent, report.failed), (2, 1));
        let (got, _) = receive_all(&b, 2).await;
        let data: Vec<_> = got.into_iter().map(|(_, d)| d).collect();
        assert_eq!(data, vec![b"one".to_vec(), b"two".to_vec()]);
    }

    #[tokio::test]
    async fn an_oversized_datagram_is_cut_to_the_slot_and_counted() {
        let a = bind(loopback(), 1 << 20).unwrap();
        let b = bind(loopback(), 1 << 20).unwrap();
        let big = vec![7u8; SLOT_LEN + 100];
        send_batch(&a, &[(b.local_addr().unwrap(), big)]).await;
        let mut batch = RecvBatch::new();
        let n = tokio::time::timeout(Duration::from_secs(2), recv_batch(&b, &mut batch))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(batch.iter().next().unwrap().1.len(), SLOT_LEN);
        if cfg!(target_os = "linux") {
            assert_eq!(batch.truncated(), 1);
        }
    }
}
