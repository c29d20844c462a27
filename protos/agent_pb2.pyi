from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CpuState(_message.Message):
    __slots__ = ("cpu", "governor", "cur_freq_khz", "min_freq_khz", "max_freq_khz")
    CPU_FIELD_NUMBER: _ClassVar[int]
    GOVERNOR_FIELD_NUMBER: _ClassVar[int]
    CUR_FREQ_KHZ_FIELD_NUMBER: _ClassVar[int]
    MIN_FREQ_KHZ_FIELD_NUMBER: _ClassVar[int]
    MAX_FREQ_KHZ_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    governor: str
    cur_freq_khz: int
    min_freq_khz: int
    max_freq_khz: int
    def __init__(self, cpu: _Optional[int] = ..., governor: _Optional[str] = ..., cur_freq_khz: _Optional[int] = ..., min_freq_khz: _Optional[int] = ..., max_freq_khz: _Optional[int] = ...) -> None: ...

class ThermalZone(_message.Message):
    __slots__ = ("zone", "type", "temp_c")
    ZONE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEMP_C_FIELD_NUMBER: _ClassVar[int]
    zone: str
    type: str
    temp_c: float
    def __init__(self, zone: _Optional[str] = ..., type: _Optional[str] = ..., temp_c: _Optional[float] = ...) -> None: ...

class DeviceState(_message.Message):
    __slots__ = ("thermal", "cpus", "unix_time_s")
    THERMAL_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    UNIX_TIME_S_FIELD_NUMBER: _ClassVar[int]
    thermal: _containers.RepeatedCompositeFieldContainer[ThermalZone]
    cpus: _containers.RepeatedCompositeFieldContainer[CpuState]
    unix_time_s: float
    def __init__(self, thermal: _Optional[_Iterable[_Union[ThermalZone, _Mapping]]] = ..., cpus: _Optional[_Iterable[_Union[CpuState, _Mapping]]] = ..., unix_time_s: _Optional[float] = ...) -> None: ...

class RuntimeInfo(_message.Message):
    __slots__ = ("name", "available", "version", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    available: bool
    version: str
    detail: str
    def __init__(self, name: _Optional[str] = ..., available: _Optional[bool] = ..., version: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class Accelerator(_message.Message):
    __slots__ = ("name", "kind", "memory_mb", "driver")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    memory_mb: int
    driver: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., memory_mb: _Optional[int] = ..., driver: _Optional[str] = ...) -> None: ...

class DeviceInfo(_message.Message):
    __slots__ = ("name", "hostname", "agent_version", "os", "machine", "board", "cpu_model", "cpu_cores", "ram_mb", "properties", "runtimes", "accelerators", "state", "pinned_cpus", "python_version", "jobs_completed", "jobs_failed", "cache_bytes", "cache_entries", "cache_limit_bytes", "max_message_bytes", "worker_pid", "auth_required", "tls")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    MACHINE_FIELD_NUMBER: _ClassVar[int]
    BOARD_FIELD_NUMBER: _ClassVar[int]
    CPU_MODEL_FIELD_NUMBER: _ClassVar[int]
    CPU_CORES_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    ACCELERATORS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PINNED_CPUS_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOBS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    JOBS_FAILED_FIELD_NUMBER: _ClassVar[int]
    CACHE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CACHE_LIMIT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WORKER_PID_FIELD_NUMBER: _ClassVar[int]
    AUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    name: str
    hostname: str
    agent_version: str
    os: str
    machine: str
    board: str
    cpu_model: str
    cpu_cores: int
    ram_mb: int
    properties: _containers.ScalarMap[str, str]
    runtimes: _containers.RepeatedCompositeFieldContainer[RuntimeInfo]
    accelerators: _containers.RepeatedCompositeFieldContainer[Accelerator]
    state: DeviceState
    pinned_cpus: _containers.RepeatedScalarFieldContainer[int]
    python_version: str
    jobs_completed: int
    jobs_failed: int
    cache_bytes: int
    cache_entries: int
    cache_limit_bytes: int
    max_message_bytes: int
    worker_pid: int
    auth_required: bool
    tls: bool
    def __init__(self, name: _Optional[str] = ..., hostname: _Optional[str] = ..., agent_version: _Optional[str] = ..., os: _Optional[str] = ..., machine: _Optional[str] = ..., board: _Optional[str] = ..., cpu_model: _Optional[str] = ..., cpu_cores: _Optional[int] = ..., ram_mb: _Optional[int] = ..., properties: _Optional[_Mapping[str, str]] = ..., runtimes: _Optional[_Iterable[_Union[RuntimeInfo, _Mapping]]] = ..., accelerators: _Optional[_Iterable[_Union[Accelerator, _Mapping]]] = ..., state: _Optional[_Union[DeviceState, _Mapping]] = ..., pinned_cpus: _Optional[_Iterable[int]] = ..., python_version: _Optional[str] = ..., jobs_completed: _Optional[int] = ..., jobs_failed: _Optional[int] = ..., cache_bytes: _Optional[int] = ..., cache_entries: _Optional[int] = ..., cache_limit_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., worker_pid: _Optional[int] = ..., auth_required: _Optional[bool] = ..., tls: _Optional[bool] = ...) -> None: ...

class HasModelsRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sha256: _Optional[_Iterable[str]] = ...) -> None: ...

class HasModelsReply(_message.Message):
    __slots__ = ("present",)
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    present: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, present: _Optional[_Iterable[str]] = ...) -> None: ...

class TensorSpec(_message.Message):
    __slots__ = ("name", "shape", "dtype")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ...) -> None: ...

class TimingPlan(_message.Message):
    __slots__ = ("warmup_count", "warmup_s", "min_reps", "min_s", "max_reps", "max_s", "target_rel_ci", "cooldown_s")
    WARMUP_COUNT_FIELD_NUMBER: _ClassVar[int]
    WARMUP_S_FIELD_NUMBER: _ClassVar[int]
    MIN_REPS_FIELD_NUMBER: _ClassVar[int]
    MIN_S_FIELD_NUMBER: _ClassVar[int]
    MAX_REPS_FIELD_NUMBER: _ClassVar[int]
    MAX_S_FIELD_NUMBER: _ClassVar[int]
    TARGET_REL_CI_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_S_FIELD_NUMBER: _ClassVar[int]
    warmup_count: int
    warmup_s: float
    min_reps: int
    min_s: float
    max_reps: int
    max_s: float
    target_rel_ci: float
    cooldown_s: float
    def __init__(self, warmup_count: _Optional[int] = ..., warmup_s: _Optional[float] = ..., min_reps: _Optional[int] = ..., min_s: _Optional[float] = ..., max_reps: _Optional[int] = ..., max_s: _Optional[float] = ..., target_rel_ci: _Optional[float] = ..., cooldown_s: _Optional[float] = ...) -> None: ...

class BenchmarkJob(_message.Message):
    __slots__ = ("job_id", "model_blob", "model_sha256", "format", "runtime", "threads", "inputs", "plan", "options", "return_samples", "timeout_s", "resend")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_BLOB_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    RETURN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    RESEND_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    model_blob: bytes
    model_sha256: str
    format: str
    runtime: str
    threads: int
    inputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    plan: TimingPlan
    options: _containers.ScalarMap[str, str]
    return_samples: bool
    timeout_s: float
    resend: bool
    def __init__(self, job_id: _Optional[str] = ..., model_blob: _Optional[bytes] = ..., model_sha256: _Optional[str] = ..., format: _Optional[str] = ..., runtime: _Optional[str] = ..., threads: _Optional[int] = ..., inputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., plan: _Optional[_Union[TimingPlan, _Mapping]] = ..., options: _Optional[_Mapping[str, str]] = ..., return_samples: _Optional[bool] = ..., timeout_s: _Optional[float] = ..., resend: _Optional[bool] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("median_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p10_ms", "p90_ms", "n", "rel_ci_median", "summary_only")
    MEDIAN_MS_FIELD_NUMBER: _ClassVar[int]
    MEAN_MS_FIELD_NUMBER: _ClassVar[int]
    STD_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MS_FIELD_NUMBER: _ClassVar[int]
    P10_MS_FIELD_NUMBER: _ClassVar[int]
    P90_MS_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    REL_CI_MEDIAN_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_ONLY_FIELD_NUMBER: _ClassVar[int]
    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p10_ms: float
    p90_ms: float
    n: int
    rel_ci_median: float
    summary_only: bool
    def __init__(self, median_ms: _Optional[float] = ..., mean_ms: _Optional[float] = ..., std_ms: _Optional[float] = ..., min_ms: _Optional[float] = ..., max_ms: _Optional[float] = ..., p10_ms: _Optional[float] = ..., p90_ms: _Optional[float] = ..., n: _Optional[int] = ..., rel_ci_median: _Optional[float] = ..., summary_only: _Optional[bool] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class BenchmarkResult(_message.Message):
    __slots__ = ("job_id", "stats", "error", "model_sha256", "runtime", "runtime_version", "threads", "options", "samples_ms", "stop_reason", "warmup_runs", "load_ms", "wall_s", "before", "after", "agent_version", "replayed")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_MS_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    WARMUP_RUNS_FIELD_NUMBER: _ClassVar[int]
    LOAD_MS_FIELD_NUMBER: _ClassVar[int]
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stats: Stats
    error: JobError
    model_sha256: str
    runtime: str
    runtime_version: str
    threads: int
    options: _containers.ScalarMap[str, str]
    samples_ms: _containers.RepeatedScalarFieldContainer[float]
    stop_reason: str
    warmup_runs: int
    load_ms: float
    wall_s: float
    before: DeviceState
    after: DeviceState
    agent_version: str
    replayed: bool
    def __init__(self, job_id: _Optional[str] = ..., stats: _Optional[_Union[Stats, _Mapping]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., model_sha256: _Optional[str] = ..., runtime: _Optional[str] = ..., runtime_version: _Optional[str] = ..., threads: _Optional[int] = ..., options: _Optional[_Mapping[str, str]] = ..., samples_ms: _Optional[_Iterable[float]] = ..., stop_reason: _Optional[str] = ..., warmup_runs: _Optional[int] = ..., load_ms: _Optional[float] = ..., wall_s: _Optional[float] = ..., before: _Optional[_Union[DeviceState, _Mapping]] = ..., after: _Optional[_Union[DeviceState, _Mapping]] = ..., agent_version: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...
