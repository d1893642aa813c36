"""Models of the named top-level sections: variables, artifacts, backends, operators and storage."""

import posixpath
from typing import Annotated, Any, Literal

import msgspec

from sflow.schema.base import FieldError, SpecModel
from sflow.schema.fieldtypes import (
    CountOrExpr,
    Identifier,
    IntOrExpr,
    Name,
    PositiveOrExpr,
    SlurmTime,
    canonical_type,
    coerce,
    is_expression,
)

ARTIFACT_SCHEMES = ("fs", "file", "http", "https")


class Variable(SpecModel):
    """A named value exported to tasks; a `domain` makes it a sweep axis.

    `validate` types the domain and the value by `type` once all three are read; a bad one is
    reported at its own line (`FieldError`).
    """

    name: Identifier = ""
    description: str | None = None
    type: str | None = None
    domain: list[Any] | None = None
    value: Any

    def validate(self) -> None:
        if self.type is not None:
            try:
                self.type = canonical_type(self.type)
            except ValueError as exc:
                raise FieldError("type", str(exc)) from None
        if self.domain is not None:
            if not self.domain:
                raise FieldError("domain", "domain must list at least one value")
            try:
                self.domain = [coerce(item, self.type) for item in self.domain]
            except ValueError as exc:
                raise FieldError("domain", str(exc)) from None
        try:
            self.value = coerce(self.value, self.type)
        except ValueError as exc:
            raise FieldError("value", str(exc)) from None
        if self.domain is not None and not is_expression(self.value) and self.value not in self.domain:
            raise FieldError("value", f"value {self.value!r} is not in its domain {self.domain!r}")

    def coerce(self, value: Any) -> Any:
        """`value` (e.g. a rendered expression) converted to this variable's type."""
        return coerce(value, self.type)


def _check_uri(uri: str) -> None:
    if is_expression(uri):
        return
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in ARTIFACT_SCHEMES or not rest:
        raise FieldError("uri", f"invalid artifact uri {uri!r} (use fs://, file://, http:// or https://)")
    if scheme == "file" and not rest.startswith("/") and posixpath.normpath(rest).split("/")[0] == "..":
        raise FieldError(
            "uri",
            f"artifact uri {uri!r} leaves its directory: a relative file:// path stays inside the "
            "run (or workspace); write an absolute path (file:///...) to mean a file elsewhere",
        )


class Artifact(SpecModel):
    """A file or URL the workflow uses; `content` writes an inline file (only for `file://`)."""

    name: Identifier = ""
    uri: str
    description: str | None = None
    content: str | None = None

    def validate(self) -> None:
        _check_uri(self.uri)
        if self.content is not None and not (self.uri.startswith("file://") or is_expression(self.uri)):
            raise ValueError("'content' is only allowed with a file:// uri")

    @property
    def scheme(self) -> str:
        return self.uri.partition("://")[0]

    @property
    def location(self) -> str:
        """The part after `scheme://` (a path for fs:// and file://)."""
        return self.uri.partition("://")[2]


class BackendBase(SpecModel, tag_field="type"):
    """What every backend has. `include_nodes`/`exclude_nodes` narrow its node pool by host name
    (Slurm: salloc's `--nodelist`/`--exclude`; docker: its `hosts`); a local backend's nodes are
    this machine, so there they change nothing."""

    name: Name = ""
    default: bool = False
    max_concurrent: PositiveOrExpr | None = None  # tasks running at once (None: the backend's default)
    include_nodes: list[str] = []
    exclude_nodes: list[str] = []

    def validate(self) -> None:
        both = [host for host in self.include_nodes if host in self.exclude_nodes]
        if both:
            raise ValueError(f"{', '.join(both)} in both include_nodes and exclude_nodes")

    @property
    def type(self) -> str:
        """`local`, `slurm` or `docker`: the `type:` of the YAML mapping."""
        return str(self.__struct_config__.tag)

    @property
    def default_operator(self) -> str:
        """Operator used by tasks that name none: `bash` locally, `srun` on Slurm, `docker_run` on Docker."""
        return {"slurm": "srun", "docker": "docker_run"}.get(self.type, "bash")


class LocalBackend(BackendBase, tag="local"):
    """Synthetic nodes on this machine: `localhost`, `localhost-1`, ... (address 127.0.0.1)."""

    nodes: PositiveOrExpr = 1
    gpus_per_node: CountOrExpr = 0


class SlurmBackend(BackendBase, tag="slurm"):
    """An allocation from `salloc` (or the one we are already running in)."""

    account: str | None = None
    partition: str | None = None
    time: SlurmTime | None = None
    nodes: PositiveOrExpr = 1
    gpus_per_node: CountOrExpr | None = None
    extra_args: list[str] = []
    job_name: str | None = None


class DockerHost(SpecModel):
    """One machine of a docker backend's pool, reached through `docker_host` or a docker `context`."""

    name: Name
    docker_host: str | None = None
    context: str | None = None
    ip_address: str = "127.0.0.1"
    gpus_per_node: CountOrExpr = 0

    def validate(self) -> None:
        if bool(self.docker_host) == bool(self.context):
            raise ValueError("set one of 'docker_host' (e.g. ssh://host) or 'context' (a docker context)")


class DockerBackend(BackendBase, tag="docker"):
    """Containers through `docker run`: synthetic local nodes, or the machines listed in `hosts`.

    `image`, `mounts`, `workdir` and `extra_args` are what every `docker_run` task gets unless its
    operator says otherwise. `wait_for_gpus`: unset fails at once when too few GPUs are free on a
    host (other sflow runs hold them), 0 waits for ever, N waits up to N seconds.
    """

    image: str
    nodes: PositiveOrExpr = 1
    gpus_per_node: CountOrExpr = 0
    mounts: list[str] = []
    workdir: str | None = None
    extra_args: list[str] = []
    wait_for_gpus: CountOrExpr | None = None
    hosts: list[DockerHost] = []


Backend = LocalBackend | SlurmBackend | DockerBackend
BACKEND_TYPES: dict[str, type[BackendBase]] = {
    "local": LocalBackend,
    "slurm": SlurmBackend,
    "docker": DockerBackend,
}


class OperatorBase(SpecModel, tag_field="type"):
    name: Name = ""

    @property
    def type(self) -> str:
        """`bash`, `srun`, ...: the `type:` of the YAML mapping."""
        return str(self.__struct_config__.tag)


class BashOperator(OperatorBase, tag="bash"):
    """Runs the script with `bash -c` on the task's first node."""


class SrunOperator(OperatorBase, tag="srun"):
    """Runs the script as a Slurm job step (`srun ... bash -c`); None means "the launcher's default"."""

    nodes: PositiveOrExpr | None = None
    nodelist: list[str] = []  # instead of the nodes placement chose
    ntasks: PositiveOrExpr | None = None
    ntasks_per_node: PositiveOrExpr | None = None
    cpus_per_task: PositiveOrExpr | None = None
    gpus: str | None = None
    gpus_per_task: str | None = None
    gres: str | None = None
    mem: str | None = None
    mem_per_cpu: str | None = None
    time: SlurmTime | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    reservation: str | None = None
    constraint: str | None = None
    chdir: str | None = None
    job_id: str | None = None  # run the step in this job instead of the backend's allocation
    exclusive: bool | None = None
    overlap: bool | None = None
    export: str | None = None
    label: bool | None = None
    unbuffered: bool | None = None
    kill_on_bad_exit: bool | None = None
    wait: IntOrExpr | None = None
    log_to_file: bool | None = None  # accepted for nv-sflow files: sflow always keeps the log itself
    mpi: str | None = None
    container_image: str | None = None
    container_name: str | None = None
    container_mounts: list[str] = []
    container_mount_home: bool | None = None
    container_workdir: str | None = None
    container_writable: bool | None = None
    container_remap_root: bool | None = None
    extra_args: list[str] = []

    def validate(self) -> None:
        if self.container_image and self.container_name:
            raise ValueError(
                "set one of 'container_image' (a new container) or 'container_name' (a named one)"
            )

    def uses_container(self) -> bool:
        """A pyxis container: an image, a named container, or `--container-image`/`-name` in extra_args."""
        given = ("--container-image", "--container-name")
        return bool(self.container_image or self.container_name) or any(
            str(arg).startswith(given) for arg in self.extra_args
        )


class SshOperator(OperatorBase, tag="ssh"):
    """Runs the script on another host over ssh."""

    host: str
    user: str | None = None
    port: IntOrExpr | None = None
    identity_file: str | None = None
    extra_args: list[str] = []


class PythonOperator(OperatorBase, tag="python"):
    """Runs the script as Python code: `python_exec [extra_args] <script file>`."""

    python_exec: str = "python3"
    extra_args: list[str] = []


class DockerRunOperator(OperatorBase, tag="docker_run"):
    """Runs the script in a container: `docker run ... IMAGE bash -lc <script>` on the task's node.

    Unset fields take the docker backend's (`image`, `workdir`); `mounts` and `extra_args` add to
    the backend's. `gpus` is docker's `--gpus` value, narrowed to the GPUs placement gave the task.
    `pass_envs` hands the task's variables and sflow's values to the container.
    """

    image: str | None = None
    workdir: str | None = None
    mounts: list[str] = []
    gpus: str | None = None
    pass_envs: bool = True
    extra_args: list[str] = []

    def uses_container(self) -> bool:
        """Always: the task's shared paths are mounted into its container."""
        return True


Operator = BashOperator | SrunOperator | SshOperator | PythonOperator | DockerRunOperator
OPERATOR_TYPES: dict[str, type[OperatorBase]] = {
    "bash": BashOperator,
    "srun": SrunOperator,
    "ssh": SshOperator,
    "python": PythonOperator,
    "docker_run": DockerRunOperator,
}


class StorageTarget(SpecModel):
    """An S3 bucket (or an S3-compatible store at `endpoint_url`) that task files are uploaded to.

    Credentials never live in the file: they come from the environment (`AWS_*` variables, the
    shared credentials file, an instance role), as for any S3 client.
    """

    name: Name = ""
    type: Literal["s3"]
    bucket: Annotated[str, msgspec.Meta(min_length=1)]
    region: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    addressing_style: Literal["auto", "virtual", "path"] | None = None
    storage_class: str | None = None
