#!/usr/bin/env python3
"""An SFTP server that misbehaves on purpose, for `fetch`'s tests (tests/cli/transfer.rs).

It serves a made-up day below /srv, one vendor folder per way of misbehaving:

    /srv/inbound/DATE/good/a.csv       an honest file
    .../flood/f.csv                    listed (and stat) as 16 bytes; reading never ends
    .../short/s.csv                    listed (and stat) as 100 bytes; sends 10, then EOF
    .../liar/l.csv                     listed as 16 bytes, stat says 32, sends 32
    .../stall/st.csv                   sends 8 bytes of its 64, then nothing (stalls)
    .../names/                         names with `../`, `/`, NUL, newline, control characters
    .../denied/                        a folder the server refuses to list
    .../locked/locked.csv              listed; opening it is refused (permission denied)
    .../missing/gone.csv               listed; not there when looked at or opened
    .../folder/dir.csv                 listed as a file; a folder when looked at
    every vendor folder but good, denied: also ok.csv, an honest file

Any public key is accepted. Usage:

    hostile_sftp.py --date 2026-11-29 --host-key FILE

Listens on a free port of 127.0.0.1 and prints `PORT <n>` once it accepts connections; the
host key (ECDSA, made at start) is written to FILE.pub as a known_hosts line for that port.
Runs until killed. Needs paramiko (scripts/python-env puts it in the test venv).
"""

import argparse
import os
import posixpath
import socket
import sys
import threading
import time

import paramiko
from paramiko.sftp import SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_PERMISSION_DENIED

MTIME = 1764400000
DIR = 0o040755
REG = 0o100644
GOOD = b"id,name\n1,Ann\n2,Bob\n"


class Node:
    """One made-up entry: what the listing says, what stat says, what reading gives."""

    def __init__(self, mode, listed=0, stat=None, data=b"", read=None, lstat_mode=None,
                 open_error=None, stat_error=None):
        self.mode = mode
        self.listed = listed
        self.stat = listed if stat is None else stat
        self.data = data
        # read(offset, length) -> bytes; default: from `data`.
        self.read = read or (lambda off, n: data[off:off + n])
        self.lstat_mode = mode if lstat_mode is None else lstat_mode
        self.open_error = open_error
        self.stat_error = stat_error


def honest(data):
    return Node(REG, len(data), data=data)


def flood(off, n):
    return b"x" * n


def stall(off, n):
    if off >= 8:
        # A server that stops answering in the middle of a file.
        time.sleep(600)
        return b""
    return b"12345678"[off:off + n]


def build(date):
    """(entries by full path, children by folder, the folder that may not be listed)."""
    day = f"/srv/inbound/{date}"
    tree = {"/srv": Node(DIR)}
    children = {}

    def add(folder, name, node):
        # A bad name is a child of its folder whatever it holds (`/`, `..`): that is the lie.
        children.setdefault(folder, []).append((name, node))
        tree[f"{folder}/{name}"] = node
        if node.mode == DIR:
            children.setdefault(f"{folder}/{name}", [])

    add("/srv", "inbound", Node(DIR))
    add("/srv/inbound", date, Node(DIR))
    for vendor in ["good", "flood", "short", "liar", "stall", "names", "denied", "locked",
                   "missing", "folder"]:
        add(day, vendor, Node(DIR))
        if vendor not in ("good", "denied"):
            add(f"{day}/{vendor}", "ok.csv", honest(GOOD))
    add(f"{day}/good", "a.csv", honest(GOOD))
    add(f"{day}/flood", "f.csv", Node(REG, 16, read=flood))
    add(f"{day}/short", "s.csv", Node(REG, 100, data=b"0123456789"))
    add(f"{day}/liar", "l.csv", Node(REG, 16, stat=32, data=b"L" * 32))
    add(f"{day}/stall", "st.csv", Node(REG, 64, read=stall))
    for bad in ["../escape.csv", "a/b.csv", "nul\0.csv", "new\nline.csv", "bell\x07.csv",
                "/abs.csv", "../../../../../tmp/hostile-escape.csv"]:
        add(f"{day}/names", bad, honest(b"EVIL\n"))
    add(f"{day}/locked", "locked.csv",
        Node(REG, len(GOOD), data=GOOD, open_error=SFTP_PERMISSION_DENIED))
    add(f"{day}/missing", "gone.csv",
        Node(REG, len(GOOD), stat_error=SFTP_NO_SUCH_FILE, open_error=SFTP_NO_SUCH_FILE))
    add(f"{day}/folder", "dir.csv", Node(REG, 4096, lstat_mode=DIR))
    return tree, children, f"{day}/denied"


class Handle(paramiko.SFTPHandle):
    def __init__(self, node):
        super().__init__()
        self.node = node

    def read(self, offset, length):
        return self.node.read(offset, length)

    def stat(self):
        return attrs("", self.node, self.node.stat, self.node.mode)


def attrs(name, node, size, mode):
    a = paramiko.SFTPAttributes()
    a.filename = name
    a.st_size = size
    a.st_mode = mode
    a.st_mtime = MTIME
    a.st_atime = MTIME
    a.st_uid = 0
    a.st_gid = 0
    return a


def make_sftp(tree, children, denied):
    class Hostile(paramiko.SFTPServerInterface):
        def canonicalize(self, path):
            return posixpath.normpath(path if path.startswith("/") else "/srv/" + path)

        def list_folder(self, path):
            path = self.canonicalize(path)
            if path == denied:
                return SFTP_PERMISSION_DENIED
            if path not in children:
                return SFTP_NO_SUCH_FILE
            return [attrs(name, node, node.listed, node.mode) for name, node in children[path]]

        def _look(self, path, link):
            node = tree.get(path)
            if node is None:
                return SFTP_NO_SUCH_FILE
            if node.stat_error is not None:
                return node.stat_error
            return attrs(posixpath.basename(path), node, node.stat,
                         node.lstat_mode if link else node.mode)

        def stat(self, path):
            return self._look(path, False)

        def lstat(self, path):
            return self._look(path, True)

        def open(self, path, flags, attr):
            if flags & (os.O_WRONLY | os.O_RDWR):
                return SFTP_PERMISSION_DENIED
            node = tree.get(path)
            if node is None:
                return SFTP_NO_SUCH_FILE
            if node.open_error is not None:
                return node.open_error
            return Handle(node)

        def remove(self, path):
            return SFTP_PERMISSION_DENIED

        def rename(self, oldpath, newpath):
            return SFTP_PERMISSION_DENIED

        def mkdir(self, path, attr):
            return SFTP_PERMISSION_DENIED

    return Hostile


class Server(paramiko.ServerInterface):
    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


def serve(conn, key, sftp):
    try:
        t = paramiko.Transport(conn)
        t.add_server_key(key)
        t.set_subsystem_handler("sftp", paramiko.SFTPServer, sftp)
        t.start_server(server=Server())
        while t.is_active():
            time.sleep(0.5)
    except Exception as e:  # one client's trouble is not the server's
        print(f"connection ended: {e}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--date", required=True)
    p.add_argument("--host-key", required=True)
    a = p.parse_args()
    key = paramiko.ECDSAKey.generate()
    key.write_private_key_file(a.host_key)
    tree, children, denied = build(a.date)
    sftp = make_sftp(tree, children, denied)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(50)
    port = sock.getsockname()[1]
    with open(a.host_key + ".pub", "w") as f:
        f.write(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n")
    print(f"PORT {port}", flush=True)
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=serve, args=(conn, key, sftp), daemon=True).start()


if __name__ == "__main__":
    main()
