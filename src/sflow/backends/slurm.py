"""The slurm backend: an allocation from `salloc`, or the one we already run inside.

Why this shape:
- Inside sbatch/salloc (`SLURM_JOB_ID` set) the user already paid for an allocation: we reuse
  it, never create a second one, and never cancel it.
- Otherwise salloc creates a job we own: `release()` cancels it and waits until Slurm no longer
  lists it. Allocation is cancel-safe: a Ctrl-C while the request is pending revokes it
  (nothing is left queued).
- The allocation lives no longer than sflow: salloc holds it with a command that reads a pipe
  only sflow writes to (`sh -c 'exec cat >/dev/null'`). When sflow dies in any way, SIGKILL
  included, the pipe closes, the command ends and salloc gives the allocation back, which ends
  every step in it. salloc runs in a process group of its own, so a Ctrl-C at the terminal
  reaches sflow (which stops tasks with their grace) and not salloc; its messages go to a file
  in the run directory, so salloc never writes to a pipe nobody reads.
- The job id is written to the run's Slurm journal as soon as salloc prints it (and before
  salloc runs, the tag it gives the job as `--comment`: `sflow cancel` finds a job whose id a
  killed sflow never read), and a watch
  (`backends.slurm_watch`) ends the run at once, with Slurm's reason, if the job ends under it.
- Every Slurm call goes through `sflow.slurm.commands` (asyncio subprocesses, polite retries).
  The parsing of Slurm's output is kept in small pure functions, unit-tested without Slurm.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shlex
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sflow.backends.base import Allocation, Backend, register_backend
from sflow.backends.placement import Node
from sflow.backends.salloc import SallocHolder
from sflow.backends.slurm_watch import SlurmJobWatch, node_health
from sflow.errors import BackendError
from sflow.slurm.commands import RETRY_QUERY, SlurmCommandError, run_slurm, scancel
from sflow.slurm.flags import slurm_time, split_args
from sflow.slurm.journal import ALLOCATION, SUBMITTING
from sflow.slurm.submit import new_tag
from sflow.slurm.watcher import JobStatus, run_watcher

DEFAULT_JOB_NAME = "sflow"
SALLOC_JOB_RE = re.compile(r"(?:Granted|Pending) job allocation (\d+)|\bjob (\d+) queued")
RELEASE_TIMEOUT = 120.0
RELEASE_NOTICE = 5.0  # seconds of waiting for a cancelled job to end before the wait is explained


# -- pure helpers (unit-tested) -----------------------------------------------------------------


def config_value(config: Any, name: str, default: Any = None) -> Any:
    """A backend field from a schema model or a dict; `default` when absent or None.

    A `${{ }}` expression left unrendered would reach Slurm as garbage: it is an error here.
    """
    value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
    if isinstance(value, str) and "${{" in value:
        raise BackendError(f"slurm backend field '{name}' is still an expression ({value}); render it first")
    return default if value is None else value


def allocation_options(config: Any) -> list[list[str]]:
    """The Slurm options of a backend config, one word list per option (salloc argv, #SBATCH lines).

    `extra_args` come last and in order (repeated flags kept, so a later one wins where Slurm says
    so); each entry is split like a shell word list, so both "--mem=8G" and "--mem 8G" work.
    """
    options = [["--job-name", str(config_value(config, "job_name", DEFAULT_JOB_NAME))]]
    for flag, field in (("-A", "account"), ("-p", "partition")):
        value = config_value(config, field)
        if value not in (None, ""):
            options.append([flag, str(value)])
    time = config_value(config, "time")
    if time not in (None, ""):
        options.append(["-t", slurm_time(time)])
    nodes = config_value(config, "nodes")
    if nodes is not None:
        options.append(["-N", str(nodes)])
    for flag, field in (("--nodelist", "include_nodes"), ("--exclude", "exclude_nodes")):
        hosts = config_value(config, field, ())
        if hosts:
            options.append([f"{flag}={','.join(map(str, hosts))}"])
    # `gpus_per_node` is for planning only: a cluster that wants a GPU flag gets it from extra_args
    options += [words for arg in config_value(config, "extra_args", ()) or () if (words := split_args(arg))]
    return options


def allocation_flags(config: Any) -> list[str]:
    """`allocation_options` flattened into argv words."""
    return [word for option in allocation_options(config) for word in option]


# What salloc runs to hold the allocation: it ends when its stdin (a pipe from sflow) is closed.
HOLDER = ["sh", "-c", "exec cat >/dev/null"]


def salloc_request(config: Any) -> list[str]:
    """`salloc` with this backend config's flags: what the allocation asks Slurm for (dry run)."""
    return ["salloc", *allocation_flags(config)]


def salloc_argv(config: Any, tag: str | None = None) -> list[str]:
    """The salloc command sflow runs: the request, tagged with `--comment=<tag>` (unless the
    config sets a comment of its own), holding the job as long as sflow lives."""
    request = salloc_request(config)
    if tag is not None and salloc_tagged(request):
        request.insert(1, f"--comment={tag}")
    return [*request, *HOLDER]


def salloc_tagged(request: list[str]) -> bool:
    """Whether sflow may tag the allocation: the user's flags set no `--comment` of their own."""
    return not any(word == "--comment" or word.startswith("--comment=") for word in request)


def parse_salloc_job_id(text: str) -> str | None:
    """The job id in salloc's messages ("Pending job allocation 12", "Granted job allocation 12")."""
    match = SALLOC_JOB_RE.search(text)
    return (match.group(1) or match.group(2)) if match else None


def salloc_granted(text: str) -> bool:
    """True once salloc says the allocation is granted (it then runs its command)."""
    return "Granted job allocation" in text


def parse_fields(line: str) -> dict[str, str]:
    """`Key=Value` pairs of one `scontrol show ... -o` line (first occurrence of each key wins)."""
    fields: dict[str, str] = {}
    for match in re.finditer(r"(?:^|\s)([\w/:]+)=(\S*)", line):
        fields.setdefault(match.group(1), match.group(2))
    return fields


def expand_hostlist(expr: str) -> list[str]:
    """Expand a Slurm hostlist ("node[1-3,5],gpu[01-02]a") without asking Slurm."""
    names: list[str] = []
    for part in _split_top_level(expr.strip()):
        names.extend(_expand_one(part))
    return names


def _split_top_level(expr: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(expr):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(expr[start:i])
            start = i + 1
    parts.append(expr[start:])
    return [p for p in parts if p]


def _expand_one(part: str) -> list[str]:
    match = re.search(r"\[([^\]]*)\]", part)
    if match is None:
        return [part]
    head, tail = part[: match.start()], part[match.end() :]
    out: list[str] = []
    for rng in match.group(1).split(","):
        lo, _, hi = rng.partition("-")
        width = len(lo)
        for n in range(int(lo), int(hi or lo) + 1):
            out.extend(head + str(n).zfill(width) + rest for rest in _expand_one(tail))
    return out


def gpu_count(gres: str) -> int:
    """GPUs in a GRES/TRES string: 'gpu:2(IDX:0-1)', 'gres:gpu:a100:4', 'gres/gpu=2', 'gpu:1,mps:100'."""
    total = 0
    for match in re.finditer(r"(?:^|[,:/])gpu(?::[A-Za-z][^:=,(]*)?[:=](\d+)", gres):
        total += int(match.group(1))
    return total


def gpus_by_node(job_line: str) -> dict[str, int]:
    """Per-node GPU counts from the detail segments of `scontrol show job -d -o` ("Nodes=... GRES=...")."""
    counts: dict[str, int] = {}
    for segment in re.split(r"\s(?=Nodes=)", job_line)[1:]:
        fields = parse_fields(segment)
        hosts = fields.get("Nodes", "")
        if not hosts:
            continue
        gres = fields.get("GRES", "")
        for host in expand_hostlist(hosts):
            counts[host] = gpu_count(gres)
    return counts


def uniform_gpus(job_fields: Mapping[str, str]) -> int | None:
    """GPUs per node the job asked for (TresPerNode / TRES-per-node), when it asked per node."""
    for key in ("TresPerNode", "Gres"):
        value = job_fields.get(key, "")
        if value and value != "(null)":
            return gpu_count(value)
    return None


def parse_node_addrs(text: str) -> dict[str, str]:
    """NodeName -> NodeAddr from `scontrol show node -o` output."""
    addrs: dict[str, str] = {}
    for line in text.splitlines():
        fields = parse_fields(line)
        if "NodeName" in fields:
            addrs[fields["NodeName"]] = fields.get("NodeAddr") or fields["NodeName"]
    return addrs


def build_nodes(
    names: Sequence[str], addrs: Mapping[str, str], per_node: Mapping[str, int], default_gpus: int
) -> list[Node]:
    """Allocation nodes in Slurm's order: address and GPU count of each."""
    return [
        Node(name=n, ip_address=addrs.get(n, n), index=i, num_gpus=per_node.get(n, default_gpus))
        for i, n in enumerate(names)
    ]


def planned_address(index: int) -> str:
    """The address a dry run shows for node `index` before Slurm has granted any: 0.0.0.1, 0.0.0.2,
    ... ("this network", never a real host's), as nv-sflow's dry run shows them."""
    return f"0.0.{index // 255}.{index % 255 + 1}"


def env_gpus(environ: Mapping[str, str]) -> int | None:
    """GPUs per node as the batch step's environment shows them (inside an allocation)."""
    for key in ("SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE"):
        value = environ.get(key, "").strip()
        if value and gpu_count(f"gpu:{value}"):
            return gpu_count(f"gpu:{value}")
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- the backend ----------------------------------------------------------------------------------


@register_backend("slurm")
class SlurmBackend(Backend):
    """Nodes of one Slurm job: ours (salloc) or the one this process runs inside (reused)."""

    default_operator = "srun"

    def __init__(self, name: str, config: Any, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(name, config)
        self.environ = os.environ if environ is None else environ
        self.job_id: str | None = None
        self._owned = False
        self._holder: SallocHolder | None = None
        self._salloc_log: Path | None = None  # a temporary file when the run has no directory

    # -- planning ---------------------------------------------------------------------------------

    @property
    def inside_job(self) -> str | None:
        """The job id we run inside (sbatch/salloc), if any."""
        return self.environ.get("SLURM_JOB_ID") or self.environ.get("SLURM_JOBID") or None

    def planned_allocation(self) -> Allocation:
        """Placeholder nodes (`slurm-node-0`, ...) or, inside an allocation, its real node names."""
        gpus = int(config_value(self.config, "gpus_per_node", 0) or 0)
        job = self.inside_job
        nodelist = self.environ.get("SLURM_JOB_NODELIST") or self.environ.get("SLURM_NODELIST")
        if job and nodelist:
            names = expand_hostlist(nodelist)
            nodes = build_nodes(names, {}, {}, env_gpus(self.environ) or gpus)
            reuse = {"request": f"the allocation of job {job}, which this runs inside"}
            return Allocation(self.name, nodes, job_id=job, reused=True, info=reuse)
        count = int(config_value(self.config, "nodes", 1) or 1)
        names = [f"slurm-node-{i}" for i in range(count)]
        addresses = {name: planned_address(i) for i, name in enumerate(names)}
        argv = salloc_request(self.config)
        info = {"planned": True, "request": shlex.join(argv), "argv": argv}
        return Allocation(self.name, build_nodes(names, addresses, {}, gpus), info=info)

    # -- allocate / release -----------------------------------------------------------------------

    async def allocate(self) -> Allocation:
        """Reuse the allocation we run inside, or create one with salloc and wait until it runs."""
        inside = self.inside_job
        if inside:
            self.job_id, self._owned = inside, False
            self.journal.add(ALLOCATION, inside, owned=False, backend=self.name)
            nodelist = self.environ.get("SLURM_JOB_NODELIST") or self.environ.get("SLURM_NODELIST")
            return await self._describe(inside, nodelist, reused=True)
        try:
            self.job_id = await self._salloc()
            await self._wait_running(self.job_id)
            return await self._describe(self.job_id, None, reused=False)
        except BaseException:
            await asyncio.shield(self.release())
            raise

    async def release(self) -> None:
        """Cancel the job we created (never a reused one) and wait until Slurm lists it no more."""
        job, owned, holder = self.job_id, self._owned, self._holder
        self._owned, self._holder = False, None
        try:
            if job and owned:
                await scancel(job)
                await self._wait_gone(job)
        finally:
            if holder is not None:
                await holder.release()
            if self._salloc_log is not None:
                self._salloc_log.unlink(missing_ok=True)

    # -- steps of allocate ------------------------------------------------------------------------

    async def _salloc(self) -> str:
        """Start salloc; its job id once the allocation is granted (recorded as soon as salloc
        prints it, even while the request is pending)."""
        try:
            tag = self._tag()
            self._holder = holder = SallocHolder.start(salloc_argv(self.config, tag), self._salloc_output())
        except OSError as exc:
            raise BackendError(f"backend '{self.name}': cannot run salloc: {exc}") from exc
        delay = 0.01
        try:
            while True:
                code = holder.poll()  # before reading: what it printed up to its exit is all there
                text = holder.output()
                if not self.job_id and (job := parse_salloc_job_id(text)):
                    self.job_id, self._owned = job, True  # ours from now on: release() cancels it
                    self.journal.add(ALLOCATION, job, owned=True, backend=self.name, tag=tag)
                if self.job_id and salloc_granted(text) and code is None:
                    return self.job_id
                if code is not None:
                    return self._salloc_result(code, text.splitlines())
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        except BaseException:
            await asyncio.shield(holder.revoke())
            raise

    def _tag(self) -> str | None:
        """The allocation's tag, journalled before salloc runs (None when the user set a comment):
        a run killed before salloc printed the job id still has it found by `sflow cancel`."""
        if not salloc_tagged(salloc_request(self.config)):
            return None
        tag = new_tag(f"sflow:{self.run_id or 'run'}")
        name = str(config_value(self.config, "job_name", DEFAULT_JOB_NAME))
        self.journal.add(SUBMITTING, tag, name=name, submits=ALLOCATION)
        return tag

    def _salloc_output(self) -> Path:
        """Where salloc writes: `<run dir>/<backend>.salloc.log`, or a temporary file."""
        run_dir = self.journal.run_dir
        if run_dir is not None:
            return run_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', self.name)}.salloc.log"
        fd, path = tempfile.mkstemp(prefix="sflow-salloc-", suffix=".log")
        os.close(fd)
        self._salloc_log = Path(path)
        return self._salloc_log

    def _salloc_result(self, code: int, lines: list[str]) -> str:
        """salloc exited before it held the allocation: Slurm refused it, or it ended at once."""
        if code != 0 or not self.job_id:
            errors = [ln for ln in lines if "error" in ln.lower()] or lines or ["(no output)"]
            message = "; ".join(ln.removeprefix("salloc: ").removeprefix("error: ") for ln in errors[-2:])
            raise BackendError(f"backend '{self.name}': Slurm refused the allocation: {message}")
        return self.job_id

    async def _wait_running(self, job: str) -> None:
        """salloc returns once resources are granted; nodes may still be CONFIGURING (booting)."""
        status = await run_watcher().wait_for(job, lambda s: s.state == "RUNNING" or s.terminal)
        if status.terminal:
            gone = "gone" if status.state == "VANISHED" else status.state
            raise BackendError(f"backend '{self.name}': job {job} ended before it ran ({gone})")

    async def _wait_gone(self, job: str) -> None:
        """Until Slurm lists the job no more: then nothing of it runs on any node. A node whose
        slurmd is gone keeps it COMPLETING until the node is marked down; the wait says so."""
        watcher = run_watcher()
        try:
            await watcher.wait_for(job, _ended, RELEASE_NOTICE)
            return
        except asyncio.TimeoutError:
            state = watcher.statuses[job].state if job in watcher.statuses else "listed"
            waiting = await self._completing_on(job)
            self.notice(
                f"backend '{self.name}': job {job} is still {state} {RELEASE_NOTICE:g}s after "
                f"scancel{waiting}; waiting up to {RELEASE_TIMEOUT:g}s"
            )
        try:
            await watcher.wait_for(job, _ended, RELEASE_TIMEOUT - RELEASE_NOTICE)
        except asyncio.TimeoutError:
            state = watcher.statuses[job].state if job in watcher.statuses else "listed"
            waiting = await self._completing_on(job)
            raise BackendError(
                f"job {job} is still {state} {RELEASE_TIMEOUT:g}s after scancel{waiting}"
            ) from None

    async def _completing_on(self, job: str) -> str:
        """': fnode2 has not confirmed that the job's processes ended (node fnode2 is not responding)'."""
        try:
            nodes = (await run_slurm(["squeue", "-h", "-j", job, "-o", "%N"], timeout=30.0)).stdout.strip()
        except SlurmCommandError:
            return ""
        if not nodes:
            return ""
        verb = "has" if len(expand_hostlist(nodes)) == 1 else "have"
        health = await node_health(nodes)
        return f": {nodes} {verb} not confirmed that the job's processes ended" + (
            f" ({health})" if health else ""
        )

    async def _describe(self, job: str, nodelist: str | None, *, reused: bool) -> Allocation:
        """Nodes (Slurm's order), their addresses and GPU counts, from scontrol."""
        show = await run_slurm(["scontrol", "show", "job", "-d", "-o", job], retry=RETRY_QUERY)
        fields = parse_fields(show.stdout)
        nodelist = nodelist or fields.get("NodeList", "")
        if not nodelist or nodelist == "(null)":
            raise BackendError(f"backend '{self.name}': job {job} has no nodes")
        names = (await run_slurm(["scontrol", "show", "hostnames", nodelist])).stdout.split()
        addrs = await _node_addresses(names)
        default = uniform_gpus(fields)
        if default is None:
            default = env_gpus(self.environ) if reused else None
        if default is None:
            default = int(config_value(self.config, "gpus_per_node", 0) or 0)
        nodes = build_nodes(names, addrs, gpus_by_node(show.stdout), default)
        info: dict[str, Any] = {
            k: fields[k] for k in ("JobName", "Partition", "Account", "TimeLimit") if k in fields
        }
        watch = SlurmJobWatch(job, self.name)
        return Allocation(
            self.name, nodes, job_id=job, reused=reused, info=info, watch=watch, journal=self.journal
        )


def _ended(status: JobStatus) -> bool:
    """True once nothing of the job runs on any node (a final state, or Slurm forgot it)."""
    return status.terminal


async def _node_addresses(names: Sequence[str]) -> dict[str, str]:
    """NodeAddr of each node, resolved to an IP address when it is a host name."""
    try:
        out = (await run_slurm(["scontrol", "show", "node", "-o", ",".join(names)])).stdout
        addrs = parse_node_addrs(out)
    except SlurmCommandError:
        addrs = {}
    resolved = await asyncio.gather(*(_resolve(addrs.get(n, n)) for n in names))
    return dict(zip(names, resolved, strict=True))


async def _resolve(host: str) -> str:
    """An IPv4 address for `host` (the name itself when it does not resolve)."""
    if _is_ip(host):
        return host
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, None, family=socket.AF_INET), 5.0)
    except (OSError, asyncio.TimeoutError):
        return host
    return str(infos[0][4][0]) if infos else host
