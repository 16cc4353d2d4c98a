#!/usr/bin/python3
"""A libtorrent DHT node driven by JSON lines, for the `dht` interoperability tests.

Run it with Debian's interpreter (`/usr/bin/python3`), the one that sees
python3-libtorrent. It starts one libtorrent session bound to loopback with the DHT on
and nothing else (no peer-discovery side channels), prints one JSON line

    {"event": "ready", "port": P, "node_id": "<40 hex>", "version": "2.0.8.0"}

then answers each command line on stdin with exactly one JSON line on stdout:
`{"ok": true, ...}` or `{"ok": false, "error": "..."}`. It exits on end of input, on
`{"cmd": "quit"}`, or after `--max-seconds` whatever happens, so a test that dies can
never leave it running for long.

Commands (binary values travel as hex, text values as UTF-8 strings; every command
takes an optional "timeout" in seconds, capped at COMMAND_TIMEOUT_S_MAX):

    {"cmd": "add_node", "addr": "127.0.0.1:PORT"}         -> {}
    {"cmd": "wait_nodes", "min": N}                       -> {"nodes": n}
    {"cmd": "put_immutable", "value": "text"}             -> {"target": hex, "num_success": n}
    {"cmd": "put_immutable", "bencoded_hex": hex}         (any bencoded value)
    {"cmd": "get_immutable", "target": hex}               -> {"found": bool, "value": str|null,
                                                              "value_hex": hex|null}
    {"cmd": "pubkey", "seed": hex64}                      -> {"public_key": hex64}
    {"cmd": "put_mutable", "seed": hex64, "value": "text", "salt": "text"}
                                      -> {"target": hex, "seq": n, "num_success": n,
                                          "public_key": hex64}
    {"cmd": "get_mutable", "public_key": hex64, "salt": "text"}
                                      -> {"found": bool, "value": str|null, "seq": n|null}
    {"cmd": "announce", "info_hash": hex}                 -> {"port": listen port}
    {"cmd": "get_peers", "info_hash": hex}                -> {"peers": ["ip:port", ...]}
    {"cmd": "incoming_announces"}                         -> {"announces": ["ih ip:port"]}
    {"cmd": "quit"}                                       -> {}

`put_*` returns when libtorrent's `dht_put_alert` arrives (num_success = nodes that
accepted the store); `announce` returns when the torrent's first DHT lookup, which ends
with the announce_peer messages, has reported back.
"""

import argparse
import hashlib
import json
import sys
import tempfile
import time
import warnings

try:
    import libtorrent as lt
except ImportError as err:  # The Rust side turns this exit status into SKIP or FAIL.
    sys.stderr.write("lt_node: cannot import libtorrent: %s\n" % err)
    sys.exit(3)

# Exit status meaning "libtorrent is not importable", checked by the Rust tests.
EXIT_NO_LIBTORRENT = 3
# Upper bound on one command's wait, whatever the caller asks for, in seconds.
COMMAND_TIMEOUT_S_MAX = 60.0
# How long one `wait_for_alert` blocks before the loop re-checks its deadline, in ms.
ALERT_POLL_MS = 100
# The alerts a command can wait for; the session's own queue bound is `alert_queue_size`.
ALERT_MASK = (
    lt.alert.category_t.dht_notification
    | lt.alert.category_t.dht_operation_notification
    | lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.tracker_notification
)


# --- ed25519 key derivation (RFC 8032, section 5.1.5) --------------------------------
#
# The Debian build of the Python binding exposes no ed25519 helpers, and
# `dht_put_mutable_item` wants libtorrent's 64-byte expanded secret key (SHA-512 of the
# seed, clamped) plus the public key. The expansion is one hash; the public key needs one
# scalar multiplication of the base point, done here in plain Python so the script needs
# nothing beyond libtorrent and the standard library. It runs once per put.

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_BASE_Y = 4 * pow(5, _P - 2, _P) % _P


def _recover_x(y, sign):
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    if x & 1 != sign:
        x = _P - x
    return x


_BASE = (_recover_x(_BASE_Y, 0), _BASE_Y, 1, _recover_x(_BASE_Y, 0) * _BASE_Y % _P)


def _point_add(a, b):
    # Extended homogeneous coordinates, "add-2008-hwcd-3" as in RFC 8032.
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = 2 * t1 * t2 * _D % _P
    dd = 2 * z1 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _scalar_mult_base(s):
    q = (0, 1, 1, 0)
    p = _BASE
    while s > 0:
        if s & 1:
            q = _point_add(q, p)
        p = _point_add(p, p)
        s >>= 1
    return q


def _encode_point(p):
    x, y, z, _ = p
    zinv = pow(z, _P - 2, _P)
    x, y = x * zinv % _P, y * zinv % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


def ed25519_keypair(seed):
    """Returns (public key, libtorrent's 64-byte expanded secret key) for a 32-byte seed."""
    if len(seed) != 32:
        raise ValueError("an ed25519 seed is 32 bytes")
    h = bytearray(hashlib.sha512(seed).digest())
    h[0] &= 248
    h[31] &= 63
    h[31] |= 64
    scalar = int.from_bytes(bytes(h[:32]), "little")
    return _encode_point(_scalar_mult_base(scalar)), bytes(h)


# --- the session ----------------------------------------------------------------------


def session_settings():
    """The settings a private loopback network needs; each one says why."""
    return {
        # Only loopback: the tests never touch a real network interface.
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": True,
        # No routers at all: the session must know only the nodes the test gives it, and
        # those go in through add_dht_node (see main) so they can enter the routing
        # table; libtorrent never stores a router's endpoint in its table.
        "dht_bootstrap_nodes": "",
        # Every node of the test network shares the IP 127.0.0.1. With these on (the
        # default), libtorrent keeps one routing-table entry per IP (and per /24 inside a
        # bucket) and one lookup result per IP, so it would see a single node.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        # All traffic comes from one IP; the default of 5 requests per second per IP
        # would get every node of the test network blocked for dht_block_timeout.
        "dht_block_ratelimit": 100000,
        # The default of 8000 bytes/s of DHT upload throttles a burst of lookups.
        "dht_upload_rate_limit": 10000000,
        # BEP 42: loopback addresses are exempt (libtorrent's verify_id accepts any ID
        # from a local address), so these two change nothing here; they are set to their
        # defaults explicitly so the test states what it relies on.
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": True,
        # No peer-discovery or port-mapping side channels on a test machine.
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        # No BitTorrent connections are needed, only the DHT's UDP socket.
        "enable_outgoing_tcp": False,
        "enable_incoming_tcp": False,
        "alert_mask": ALERT_MASK,
    }


def verbose_settings():
    """With --verbose, also libtorrent's DHT log and every DHT packet, as alerts."""
    return {
        "alert_mask": ALERT_MASK
        | lt.alert.category_t.dht_log_notification,
    }


class Node:
    """One libtorrent session and the commands the tests send it."""

    def __init__(self, verbose, save_path):
        self.verbose = verbose
        self.save_path = save_path
        settings = session_settings()
        if verbose:
            settings.update(verbose_settings())
        self.ses = lt.session(settings)
        # Announces received from other nodes, as "info_hash ip:port"; bounded by
        # INCOMING_ANNOUNCES_MAX, oldest dropped first.
        self.incoming_announces = []

    INCOMING_ANNOUNCES_MAX = 1000

    def log(self, msg):
        if self.verbose:
            sys.stderr.write("lt_node: %s\n" % msg)
            sys.stderr.flush()

    def node_id(self):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                state = self.ses.dht_state()
            ids = state.get(b"node-id") or []
            if ids:
                return bytes(ids[0][:20]).hex()
        except Exception:  # Deprecated API: the ID is informative only.
            pass
        return None

    def wait_for(self, predicate, timeout):
        """Returns the first alert that satisfies predicate, or None at the deadline.

        Commands run one at a time, so any other alert popped here belongs to nobody
        (or to a command that already timed out) and is dropped, except incoming
        announces, which are recorded.
        """
        deadline = time.monotonic() + min(timeout, COMMAND_TIMEOUT_S_MAX)
        while time.monotonic() < deadline:
            self.ses.wait_for_alert(ALERT_POLL_MS)
            found = None
            for a in self.ses.pop_alerts():
                self.log("alert %s: %s" % (type(a).__name__, a.message()))
                if isinstance(a, lt.dht_announce_alert):
                    self.incoming_announces.append(
                        "%s %s:%d" % (a.info_hash, a.ip, a.port))
                    del self.incoming_announces[: -self.INCOMING_ANNOUNCES_MAX]
                if found is None and predicate(a):
                    found = a
            if found is not None:
                return found
        return None

    def routing_table_size(self):
        self.ses.post_dht_stats()
        a = self.wait_for(lambda a: isinstance(a, lt.dht_stats_alert), 2.0)
        if a is None:
            return 0
        return sum(b["num_nodes"] for b in a.routing_table)

    # Each cmd_* takes the parsed command and returns the reply's fields.

    def cmd_add_node(self, c):
        host, port = c["addr"].rsplit(":", 1)
        self.ses.add_dht_node((host, int(port)))
        return {}

    def cmd_wait_nodes(self, c):
        deadline = time.monotonic() + min(float(c.get("timeout", 10)), COMMAND_TIMEOUT_S_MAX)
        n = self.routing_table_size()
        while n < int(c["min"]) and time.monotonic() < deadline:
            time.sleep(0.2)
            n = self.routing_table_size()
        return {"nodes": n}

    def cmd_put_immutable(self, c):
        if "bencoded_hex" in c:
            # Any bencoded value (a dict, a list, an integer), as libtorrent's entry.
            value = lt.bdecode(bytes.fromhex(c["bencoded_hex"]))
        else:
            value = c["value"].encode()
        target = self.ses.dht_put_immutable_item(value)
        a = self.wait_for(
            lambda a: isinstance(a, lt.dht_put_alert) and str(a.target) == str(target),
            float(c.get("timeout", 20)),
        )
        if a is None:
            raise TimeoutError("no dht_put_alert")
        return {"target": str(target), "num_success": a.num_success}

    def cmd_get_immutable(self, c):
        target = lt.sha1_hash(bytes.fromhex(c["target"]))
        self.ses.dht_get_immutable_item(target)
        a = self.wait_for(
            lambda a: isinstance(a, lt.dht_immutable_item_alert) and str(a.target) == c["target"],
            float(c.get("timeout", 20)),
        )
        if a is None:
            raise TimeoutError("no dht_immutable_item_alert")
        item = alert_item(a)
        return value_reply(item.get("value") if item else None)

    def cmd_pubkey(self, c):
        pk, _ = ed25519_keypair(bytes.fromhex(c["seed"]))
        return {"public_key": pk.hex()}

    def cmd_put_mutable(self, c):
        pk, sk = ed25519_keypair(bytes.fromhex(c["seed"]))
        salt = c.get("salt", "").encode()
        # The binding stores `value` as a bencoded byte string and signs it with
        # seq = (the highest seq its lookup found on the network) + 1.
        self.ses.dht_put_mutable_item(sk, pk, c["value"].encode(), salt)
        a = self.wait_for(
            lambda a: isinstance(a, lt.dht_put_alert) and bytes(a.public_key) == pk,
            float(c.get("timeout", 20)),
        )
        if a is None:
            raise TimeoutError("no dht_put_alert")
        # The alert's target is zero for mutable puts; BEP 44 defines it as SHA-1(k + salt).
        target = hashlib.sha1(pk + salt).hexdigest()
        return {"target": target, "seq": a.seq, "num_success": a.num_success,
                "public_key": pk.hex()}

    def cmd_get_mutable(self, c):
        pk = bytes.fromhex(c["public_key"])
        salt = c.get("salt", "")
        self.ses.dht_get_mutable_item(pk, salt.encode())
        # libtorrent posts an alert for every better item it meets and a last one with
        # authoritative set when the lookup ends; only the last one is the answer.
        a = self.wait_for(
            lambda a: isinstance(a, lt.dht_mutable_item_alert)
            and bytes(a.key) == pk
            and text(a.salt) == salt
            and a.authoritative,
            float(c.get("timeout", 20)),
        )
        if a is None:
            raise TimeoutError("no authoritative dht_mutable_item_alert")
        item = alert_item(a)
        reply = value_reply(item.get("value") if item else None)
        reply["seq"] = a.seq if reply["found"] else None
        return reply

    def cmd_announce(self, c):
        # session.dht_announce is unusable from Python in libtorrent 2.0.8: its flags
        # argument has no converter (arvidn/libtorrent#7441, fixed by #7443 in 2.0.9).
        # A torrent added by info-hash alone makes libtorrent announce it to the DHT
        # itself, on its listen port, exactly as a BitTorrent client would.
        if c.get("port") not in (None, self.ses.listen_port()):
            raise ValueError("libtorrent announces its own listen port only")
        p = lt.add_torrent_params()
        ih = lt.sha1_hash(bytes.fromhex(c["info_hash"]))
        p.info_hashes = lt.info_hash_t(ih)
        p.save_path = self.save_path
        handle = self.ses.add_torrent(p)
        # The torrent's get_peers lookup ends with a dht_reply_alert, sent right after
        # the announce_peer messages went out.
        a = self.wait_for(
            lambda a: isinstance(a, lt.dht_reply_alert) and a.handle == handle,
            float(c.get("timeout", 20)),
        )
        if a is None:
            raise TimeoutError("no dht_reply_alert")
        return {"port": self.ses.listen_port()}

    def cmd_get_peers(self, c):
        self.ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(c["info_hash"])))
        a = self.wait_for(
            lambda a: isinstance(a, lt.dht_get_peers_reply_alert)
            and str(a.info_hash) == c["info_hash"],
            float(c.get("timeout", 20)),
        )
        if a is None:
            raise TimeoutError("no dht_get_peers_reply_alert")
        return {"peers": sorted("%s:%d" % (ip, port) for ip, port in a.peers())}

    def cmd_incoming_announces(self, c):
        # Announces other nodes sent to this session; the tests use them to see that an
        # announce_peer from our node reached libtorrent and was accepted.
        self.wait_for(lambda a: False, 0.2)
        return {"announces": list(self.incoming_announces)}


def text(x):
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def alert_item(a):
    """The alert's item as a dict, or None when the lookup found nothing.

    The binding turns the item into a dict {"key", "value", ...}; it raises RuntimeError
    ("invalid type requested from entry") when nothing was found, and also when the value
    is not a byte string, which these tests never ask libtorrent to fetch.
    """
    try:
        item = a.item
    except RuntimeError:
        return None
    return item if isinstance(item, dict) else None


def value_reply(value):
    if not isinstance(value, bytes):
        return {"found": False, "value": None, "value_hex": None}
    return {"found": True, "value": value.decode("utf-8", "replace"), "value_hex": value.hex()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", action="append", default=[], help="HOST:PORT, repeatable")
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--verbose", action="store_true", help="log every alert to stderr")
    args = ap.parse_args()

    # A torrent added for `announce` needs a save path; it never downloads anything.
    save_dir = tempfile.TemporaryDirectory(prefix="lt_node-")
    node = Node(args.verbose, save_dir.name)
    end = time.monotonic() + args.max_seconds
    # The UDP socket is open once listen_port() is known; bounded by max-seconds.
    while node.ses.listen_port() == 0 and time.monotonic() < end:
        time.sleep(0.05)
    for b in args.bootstrap:
        # add_dht_node pings the node; once it answers, it is an ordinary routing-table
        # entry that libtorrent's own lookups start from.
        node.cmd_add_node({"addr": b})
    emit({"event": "ready", "port": node.ses.listen_port(), "node_id": node.node_id(),
          "version": lt.__version__})

    for line in sys.stdin:
        if time.monotonic() > end:
            break
        line = line.strip()
        if not line:
            continue
        try:
            c = json.loads(line)
            if c.get("cmd") == "quit":
                emit({"ok": True})
                break
            handler = getattr(node, "cmd_" + str(c.get("cmd")), None)
            if handler is None:
                raise ValueError("unknown command %r" % c.get("cmd"))
            reply = handler(c)
            reply["ok"] = True
            emit(reply)
        except Exception as err:  # One bad command must not end the session.
            emit({"ok": False, "error": "%s: %s" % (type(err).__name__, err)})


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
