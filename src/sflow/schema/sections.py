"""Models of the named top-level sections: variables, artifacts, backends, operators and storage."""

from __future__ import annotations

import posixpath
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from sflow.schema.base import SpecModel
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

    `type` and `domain` are declared before `value` so the value's validator can use them, and a
    bad value is reported at the value's own line.
    """

    name: Identifier = ""
    description: str | None = None
    type: str | None = None
    domain: list[Any] | None = None
    value: Any

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        return None if value is None else canonical_type(value)

    @field_validator("domain")
    @classmethod
    def _typed_domain(cls, domain: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        if domain is None:
            return None
        if not domain:
            raise ValueError("domain must list at least one value")
        return [coerce(item, info.data.get("type")) for item in domain]

    @field_validator("value")
    @classmethod
    def _typed_value_in_domain(cls, value: Any, info: ValidationInfo) -> Any:
        value = coerce(value, info.data.get("type"))
        domain = info.data.get("domain")
        if domain is not None and not is_expression(value) and value not in domain:
            raise ValueError(f"value {value!r} is not in its domain {domain!r}")
        return value

    def coerce(self, value: Any) -> Any:
        """`value` (e.g. a rendered expression) converted to this variable's type."""
        return coerce(value, self.type)


class Artifact(SpecModel):
    """A file or URL the workflow uses; `content` writes an inline file (only for `file://`)."""

    name: Identifier = ""
    uri: str
    description: str | None = None
    content: str | None = None

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        if is_expression(uri):
            return uri
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme not in ARTIFACT_SCHEMES or not rest:
            raise ValueError(f"invalid artifact uri {uri!r} (use fs://, file://, http:// or https://)")
        if scheme == "file" and not rest.startswith("/") and posixpath.normpath(rest).split("/")[0] == "..":
            raise ValueError(
                f"artifact uri {uri!r} leaves its directory: a relative file:// path stays inside the "
                "run (or workspace); write an absolute path (file:///...) to mean a file elsewhere"
            )
        return uri

    @model_validator(mode="after")
    def _content_needs_file(self) -> Artifact:
        if self.content is not None and not (self.uri.startswith("file://") or is_expression(self.uri)):
            raise ValueError("'content' is only allowed with a file:// uri")
        return self

    @property
    def scheme(self) -> str:
        return self.uri.partition("://")[0]

    @property
    def location(self) -> str:
        """The part after `scheme://` (a path for fs:// and file://)."""
        return self.uri.partition("://")[2]


class BackendBase(SpecModel):
    """What every backend has. `include_nodes`/`exclude_nodes` narrow its node pool by host name
    (Slurm: salloc's `--nodelist`/`--exclude`; docker: its `hosts`); a local backend's nodes are
    this machine, so there they change nothing."""

    name: Name = ""
    type: str
    default: bool = False
    max_concurrent: PositiveOrExpr | None = None  # tasks running at once (None: the backend's default)
    include_nodes: list[str] = Field(default_factory=list)
    exclude_nodes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_both_included_and_excluded(self) -> BackendBase:
        both = [host for host in self.include_nodes if host in self.exclude_nodes]
        if both:
            raise ValueError(f"{', '.join(both)} in both include_nodes and exclude_nodes")
        return self

    @property
    def default_operator(self) -> str:
        """Operator used by tasks that name none: `bash` locally, `srun` on Slurm, `docker_run` on Docker."""
        return {"slurm": "srun", "docker": "docker_run"}.get(self.type, "bash")


class LocalBackend(BackendBase):
    """Synthetic nodes on this machine: `localhost`, `localhost-1`, ... (address 127.0.0.1)."""

    type: Literal["local"] = "local"
    nodes: PositiveOrExpr = 1
    gpus_per_node: CountOrExpr = 0


class SlurmBackend(BackendBase):
    """An allocation from `salloc` (or the one we are already running in)."""

    type: Literal["slurm"] = "slurm"
    account: str | None = None
    partition: str | None = None
    time: SlurmTime | None = None
    nodes: PositiveOrExpr = 1
    gpus_per_node: CountOrExpr | None = None
    extra_args: list[str] = Field(default_factory=list)
    job_name: str | None = None


class DockerHost(SpecModel):
    """One machine of a docker backend's pool, reached through `docker_host` or a docker `context`."""

    name: Name
    docker_host: str | None = None
    context: str | None = None
    ip_address: str = "127.0.0.1"
    gpus_per_node: CountOrExpr = 0

    @model_validator(mode="after")
    def _one_way_in(self) -> DockerHost:
        if bool(self.docker_host) == bool(self.context):
            raise ValueError("set one of 'docker_host' (e.g. ssh://host) or 'context' (a docker context)")
        return self


class DockerBackend(BackendBase):
    """Containers through `docker run`: synthetic local nodes, or the machines listed in `hosts`.

    `image`, `mounts`, `workdir` and `extra_args` are what every `docker_run` task gets unless its
    operator says otherwise. `wait_for_gpus`: unset fails at once when too few GPUs are free on a
    host (other sflow runs hold them), 0 waits for ever, N waits up to N seconds.
    """

    type: Literal["docker"] = "docker"
    image: str
    nodes: PositiveOrExpr = 1
    gpus_per_node: CountOrExpr = 0
    mounts: list[str] = Field(default_factory=list)
    workdir: str | None = None
    extra_args: list[str] = Field(default_factory=list)
    wait_for_gpus: CountOrExpr | None = None
    hosts: list[DockerHost] = Field(default_factory=list)


Backend = Annotated[LocalBackend | SlurmBackend | DockerBackend, Field(discriminator="type")]
BACKEND_TYPES: dict[str, type[BackendBase]] = {
    "local": LocalBackend,
    "slurm": SlurmBackend,
    "docker": DockerBackend,
}


class OperatorBase(SpecModel):
    name: Name = ""
    type: str


class BashOperator(OperatorBase):
    """Runs the script with `bash -c` on the task's first node."""

    type: Literal["bash"] = "bash"


class SrunOperator(OperatorBase):
    """Runs the script as a Slurm job step (`srun ... bash -c`); None means "the launcher's default"."""

    type: Literal["srun"] = "srun"
    nodes: PositiveOrExpr | None = None
    nodelist: list[str] = Field(default_factory=list)  # instead of the nodes placement chose
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
    container_mounts: list[str] = Field(default_factory=list)
    container_mount_home: bool | None = None
    container_workdir: str | None = None
    container_writable: bool | None = None
    container_remap_root: bool | None = None
    extra_args: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_container_source(self) -> SrunOperator:
        if self.container_image and self.container_name:
            raise ValueError(
                "set one of 'container_image' (a new container) or 'container_name' (a named one)"
            )
        return self

    def uses_container(self) -> bool:
        """A pyxis container: an image, a named container, or `--container-image`/`-name` in extra_args."""
        given = ("--container-image", "--container-name")
        return bool(self.container_image or self.container_name) or any(
            str(arg).startswith(given) for arg in self.extra_args
        )


class SshOperator(OperatorBase):
    """Runs the script on another host over ssh."""

    type: Literal["ssh"] = "ssh"
    host: str
    user: str | None = None
    port: IntOrExpr | None = None
    identity_file: str | None = None
    extra_args: list[str] = Field(default_factory=list)


class PythonOperator(OperatorBase):
    """Runs the script as Python code: `python_exec [extra_args] <script file>`."""

    type: Literal["python"] = "python"
    python_exec: str = "python3"
    extra_args: list[str] = Field(default_factory=list)


class DockerRunOperator(OperatorBase):
    """Runs the script in a container: `docker run ... IMAGE bash -lc <script>` on the task's node.

    Unset fields take the docker backend's (`image`, `workdir`); `mounts` and `extra_args` add to
    the backend's. `gpus` is docker's `--gpus` value, narrowed to the GPUs placement gave the task.
    `pass_envs` hands the task's variables and sflow's values to the container.
    """

    type: Literal["docker_run"] = "docker_run"
    image: str | None = None
    workdir: str | None = None
    mounts: list[str] = Field(default_factory=list)
    gpus: str | None = None
    pass_envs: bool = True
    extra_args: list[str] = Field(default_factory=list)

    def uses_container(self) -> bool:
        """Always: the task's shared paths are mounted into its container."""
        return True


Operator = Annotated[
    BashOperator | SrunOperator | SshOperator | PythonOperator | DockerRunOperator,
    Field(discriminator="type"),
]
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
    bucket: str = Field(min_length=1)
    region: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    addressing_style: Literal["auto", "virtual", "path"] | None = None
    storage_class: str | None = None
