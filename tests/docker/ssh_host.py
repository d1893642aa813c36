"""A private sshd on this machine, so a docker backend host can be `ssh://root@localhost:<port>`.

Debian's sshd, on a free port of 127.0.0.1, with a key pair and host key made here; its sessions
get DOCKER_HOST of the lab's daemon (so `docker system dial-stdio` at the far end reaches it).
The docker client finds the key and the host key through an `ssh` first on PATH that adds
`-F <our ssh_config>`: nothing of the machine's own ssh setup is read or changed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

START_WAIT = 30.0


@dataclass
class SshDockerHost:
    url: str  # ssh://root@localhost:<port>
    bin_dir: Path  # holds the `ssh` that uses our config: put it first on PATH
    log: Path  # sshd's log (one "Accepted publickey" line per session)
    proc: subprocess.Popen[bytes]

    def sessions(self) -> int:
        return self.log.read_text().count("Accepted publickey for root")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def start_sshd(where: Path, docker_host: str) -> SshDockerHost:
    sshd, ssh = shutil.which("sshd") or "/usr/sbin/sshd", shutil.which("ssh")
    if not Path(sshd).exists() or not ssh:
        raise RuntimeError("sshd or ssh is missing (scripts/dev-docker up installs openssh-server)")
    where.mkdir(parents=True, exist_ok=True)
    where.chmod(0o700)
    for key in ("client_key", "host_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(where / key)], check=True)
    (where / "authorized_keys").write_text((where / "client_key.pub").read_text())
    port = _free_port()
    config = where / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {where / 'host_key'}\nPidFile {where / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {where / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"SetEnv DOCKER_HOST={docker_host}\nLogLevel VERBOSE\n"
    )
    host_key = (where / "host_key.pub").read_text().split()
    (where / "known_hosts").write_text(f"[localhost]:{port} {host_key[0]} {host_key[1]}\n")
    (where / "ssh_config").write_text(
        f"Host localhost\n  IdentityFile {where / 'client_key'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {where / 'known_hosts'}\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
    )
    bin_dir = where / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(f'#!/bin/sh\nexec {ssh} -F {where / "ssh_config"} "$@"\n')
    (bin_dir / "ssh").chmod(0o755)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    log = where / "sshd.log"
    proc = subprocess.Popen([sshd, "-D", "-f", str(config), "-E", str(log)], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_WAIT
    while not _answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = log.read_text() if log.exists() else ""
            raise RuntimeError(f"sshd did not start on port {port} (exit {proc.poll()}): {tail[-2000:]}")
        time.sleep(0.05)
    return SshDockerHost(f"ssh://root@localhost:{port}", bin_dir, log, proc)


def path_with(bin_dir: Path) -> str:
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
