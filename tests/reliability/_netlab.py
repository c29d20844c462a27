"""A network lab of Linux network namespaces: each agent, profiling host and database on its own network stack.

Every node is a namespace with one veth link to a hub namespace that bridges them all (one /24 of
``10.233.0.0/16``, picked unused per lab). The process that builds the lab (the test) joins the hub
through a veth of its own, so the in-process profiler is a node too (``lab.root_ip``). Per link:

* bandwidth: ``tbf`` on both ends of the node's veth (uplink on the node's end, downlink on the hub's);
* loss: nftables ``numgen random`` drops on the node's veth, both directions;
* partitions: nftables drops between the node and chosen peers (or everyone), removed by :meth:`Node.heal`;
* latency: :mod:`._relay`, a delaying TCP relay run inside the node, holds each chunk for half the round trip in
  each direction (many cloud kernels refuse ``tc netem``; :meth:`Node.netem_delay` uses it where it exists).

Everything is named after one random lab id (namespaces ``lutnas-<id>-<node>``, links ``ln<id>...``), so
parallel runs never collide, and :meth:`NetLab.close` removes it all. :func:`unavailable` says why a host
cannot build a lab (not root, no ``ip``/``nft``, the kernel refuses namespaces).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["NetLab", "Node", "netem_available", "unavailable"]

_TABLE = "lutnas_lab"
# Base chains jump to these; loss and partitions are rules in them, flushed to undo.
_CHAINS = ("loss_in", "loss_out", "part_in", "part_out")


def _run(argv: Sequence[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[:300]}")
    return done


def unavailable() -> str | None:
    """Why this host cannot build a lab (one line), or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    missing = [tool for tool in ("ip", "nft", "tc") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install iproute2 nftables)"
    probe = f"lutnas-probe-{secrets.token_hex(3)}"
    made = _run(["ip", "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"the kernel refuses network namespaces: {made.stderr.strip()[:200]}"
    try:
        nft = _run(["ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe"], check=False)
        if nft.returncode != 0:
            return f"nftables does not work inside a namespace: {nft.stderr.strip()[:200]}"
    finally:
        _run(["ip", "netns", "del", probe], check=False)
    return None


def netem_available(ns: str) -> bool:
    """Whether ``tc qdisc ... netem`` works here (many cloud kernels lack the module)."""
    _run(["ip", "netns", "exec", ns, "ip", "link", "add", "lnprobe0", "type", "dummy"], check=False)
    try:
        done = _run(["tc", "-n", ns, "qdisc", "add", "dev", "lnprobe0", "root", "netem", "delay", "1ms"], check=False)
        return done.returncode == 0
    finally:
        _run(["ip", "netns", "exec", ns, "ip", "link", "del", "lnprobe0"], check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.233.X.0/24 no interface of this namespace uses (random start: parallel labs rarely probe the same)."""
    used = _run(["ip", "-o", "-4", "addr", "show"]).stdout
    start = secrets.randbelow(250)
    for i in range(250):
        net = ipaddress.ip_network(f"10.233.{(start + i) % 250 + 1}.0/24")
        if not re.search(rf"\b{re.escape(str(net.network_address))[:-1]}\d+/", used):
            return net
    raise RuntimeError("no free 10.233.X.0/24 subnet")


@dataclass
class Node:
    """One namespace on the lab's hub: a device, a profiling host or a database server."""

    lab: NetLab
    name: str
    ns: str
    ip: str
    veth: str  # its end of the link (inside ns)
    hub_veth: str  # the hub's end
    partitioned: set[str] = field(default_factory=set)

    def cmd(self, *argv: str) -> list[str]:
        """``argv`` run inside this node's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def python(self, *argv: str) -> list[str]:
        """This interpreter inside the namespace, with the repository importable."""
        return self.cmd(sys.executable, *argv)

    def _nft(self, script: str) -> None:
        _run(self.cmd("nft", "-f", "-"), stdin=script)

    def shape(self, rate_mbit: float, queue_ms: float = 400.0) -> None:
        """Limit the link to ``rate_mbit`` each way (tbf; a queue of ``queue_ms`` before tail drops)."""
        burst_kb = max(16, int(rate_mbit * 1000 / 8 / 100))  # 10 ms of traffic, at least a few full frames
        for ns, dev in ((self.ns, self.veth), (self.lab.hub, self.hub_veth)):
            _run(["tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{rate_mbit}mbit",
                  "burst", f"{burst_kb}kb", "latency", f"{queue_ms:g}ms"])

    def unshape(self) -> None:
        for ns, dev in ((self.ns, self.veth), (self.lab.hub, self.hub_veth)):
            _run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"], check=False)

    def loss(self, percent: int) -> None:
        """Drop ``percent``% of the packets crossing the link, each way (0 turns loss off)."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be in 0..100, got {percent}")
        script = f"flush chain inet {_TABLE} loss_in\nflush chain inet {_TABLE} loss_out\n"
        if percent:
            script += (f"add rule inet {_TABLE} loss_in numgen random mod 100 < {percent} drop\n"
                       f"add rule inet {_TABLE} loss_out numgen random mod 100 < {percent} drop\n")
        self._nft(script)

    def partition(self, *peers: Node | str) -> None:
        """Cut this node off from ``peers`` (nodes or addresses; none given: from everyone)."""
        addrs = [p.ip if isinstance(p, Node) else p for p in peers]
        if not addrs:
            script = f"add rule inet {_TABLE} part_in drop\nadd rule inet {_TABLE} part_out drop\n"
            self.partitioned.add("*")
        else:
            script = "".join(f"add rule inet {_TABLE} part_in ip saddr {a} drop\n"
                             f"add rule inet {_TABLE} part_out ip daddr {a} drop\n" for a in addrs)
            self.partitioned.update(addrs)
        self._nft(script)

    def heal(self) -> None:
        """Undo every partition of this node."""
        self._nft(f"flush chain inet {_TABLE} part_in\nflush chain inet {_TABLE} part_out\n")
        self.partitioned.clear()

    def netem_delay(self, one_way_ms: float) -> None:
        """Delay every packet leaving either end of the link (needs netem; see :func:`netem_available`)."""
        for ns, dev in ((self.ns, self.veth), (self.lab.hub, self.hub_veth)):
            _run(["tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "netem", "delay", f"{one_way_ms:g}ms"])


class NetLab:
    """A hub namespace with a bridge, the caller joined to it, and nodes added with :meth:`node`.

    Use as a context manager, or call :meth:`close` (a pytest finalizer): it deletes every
    namespace and link of this lab. Processes started in a node must be stopped first.
    """

    def __init__(self) -> None:
        self.id = secrets.token_hex(3)
        self.subnet = _free_subnet()
        self.hub = f"lutnas-{self.id}-hub"
        self.nodes: dict[str, Node] = {}
        self._hosts = iter(self.subnet.hosts())
        self._root_veth = f"ln{self.id}r0"
        self._namespaces: list[str] = []
        try:
            self._add_ns(self.hub)
            _run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
            self.root_ip = str(next(self._hosts))
            self._link(None, self._root_veth, f"ln{self.id}r1", self.root_ip)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_ns(self, ns: str) -> None:
        _run(["ip", "netns", "add", ns])
        self._namespaces.append(ns)
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _link(self, ns: str | None, inner: str, outer: str, ip: str) -> None:
        """A veth pair: ``inner`` in ``ns`` (None: the caller's namespace) with ``ip``, ``outer`` on the hub bridge."""
        _run(["ip", "link", "add", inner, "type", "veth", "peer", "name", outer])
        _run(["ip", "link", "set", outer, "netns", self.hub])
        _run(["ip", "-n", self.hub, "link", "set", outer, "master", "br0"])
        _run(["ip", "-n", self.hub, "link", "set", outer, "up"])
        at = [] if ns is None else ["-n", ns]
        if ns is not None:
            _run(["ip", "link", "set", inner, "netns", ns])
        _run(["ip", *at, "addr", "add", f"{ip}/{self.subnet.prefixlen}", "dev", inner])
        _run(["ip", *at, "link", "set", inner, "up"])

    def node(self, name: str) -> Node:
        """A new namespace ``name`` on the hub, with its own address and an (empty) nftables table."""
        if name in self.nodes or not re.fullmatch(r"[a-z0-9]{1,8}", name):
            raise ValueError(f"node name must be 1-8 lowercase letters or digits and new, got {name!r}")
        index = len(self.nodes) + 1
        ns = f"lutnas-{self.id}-{name}"
        self._add_ns(ns)
        node = Node(self, name, ns, str(next(self._hosts)), f"ln{self.id}{index:02d}a", f"ln{self.id}{index:02d}b")
        self._link(ns, node.veth, node.hub_veth, node.ip)
        chains = "".join(f"add chain inet {_TABLE} {c}\n" for c in _CHAINS)
        node._nft(
            f"add table inet {_TABLE}\n{chains}"
            f"add chain inet {_TABLE} in {{ type filter hook input priority 0; }}\n"
            f"add chain inet {_TABLE} out {{ type filter hook output priority 0; }}\n"
            f"add rule inet {_TABLE} in iifname {node.veth} jump part_in\n"
            f"add rule inet {_TABLE} in iifname {node.veth} jump loss_in\n"
            f"add rule inet {_TABLE} out oifname {node.veth} jump part_out\n"
            f"add rule inet {_TABLE} out oifname {node.veth} jump loss_out\n")
        self.nodes[name] = node
        return node

    def close(self) -> None:
        """Delete the caller's veth and every namespace of this lab (their links go with them)."""
        _run(["ip", "link", "del", self._root_veth], check=False)
        for ns in reversed(self._namespaces):
            _run(["ip", "netns", "del", ns], check=False)
        self._namespaces.clear()
