//! The configuration's key paths, as errors name them: one definition each,
//! for every module that reports a bad or unsupported value.

pub(crate) const CPU_FREQUENCY: &str = "telemetry.profiling.cpu.frequency";
pub(crate) const CPU_DURATION: &str = "telemetry.profiling.cpu.duration_seconds";
pub(crate) const MEMORY_SAMPLING_RATE: &str = "telemetry.profiling.memory.sampling_rate";
pub(crate) const MEMORY_SAMPLE_INTERVAL: &str = "telemetry.profiling.memory.sample_interval_bytes";
pub(crate) const MEMORY_HEAP_PROFILING: &str = "telemetry.profiling.memory.heap_profiling";
pub(crate) const MEMORY_TIMELINE_INTERVAL: &str = "telemetry.profiling.memory.timeline_interval_ms";
pub(crate) const MEMORY_TIMELINE_CAPACITY: &str = "telemetry.profiling.memory.timeline_capacity";
pub(crate) const EXPORTER_TYPE: &str = "telemetry.profiling.exporter.type";
pub(crate) const PYROSCOPE_ENDPOINT: &str = "telemetry.profiling.exporter.pyroscope_endpoint";
pub(crate) const EXPORTER_LABELS: &str = "telemetry.profiling.exporter.labels";
pub(crate) const TAGS: &str = "telemetry.profiling.exporter.tags";
pub(crate) const GCP_PROJECT_ID: &str = "telemetry.profiling.exporter.gcp_project_id";
pub(crate) const GCP_SERVICE: &str = "telemetry.profiling.exporter.gcp_service";
pub(crate) const GCP_SERVICE_VERSION: &str = "telemetry.profiling.exporter.gcp_service_version";
pub(crate) const GCP_ZONE: &str = "telemetry.profiling.exporter.gcp_zone";
pub(crate) const GCP_ENDPOINT: &str = "telemetry.profiling.exporter.gcp_endpoint";
pub(crate) const GCP_CREDENTIALS_FILE: &str = "telemetry.profiling.exporter.gcp_credentials_file";
pub(crate) const GCP_BACKOFF_INITIAL_MS: &str =
    "telemetry.profiling.exporter.gcp_backoff_initial_ms";
pub(crate) const GCP_BACKOFF_MAX_MS: &str = "telemetry.profiling.exporter.gcp_backoff_max_ms";
pub(crate) const BASIC_AUTH_USER: &str = "telemetry.profiling.exporter.basic_auth_user";
pub(crate) const BEARER_TOKEN: &str = "telemetry.profiling.exporter.bearer_token";
pub(crate) const TENANT_ID: &str = "telemetry.profiling.exporter.tenant_id";
pub(crate) const HEADERS: &str = "telemetry.profiling.exporter.headers";
pub(crate) const QUEUE_SIZE: &str = "telemetry.profiling.exporter.queue_size";
pub(crate) const TIMEOUT_MS: &str = "telemetry.profiling.exporter.timeout_ms";
pub(crate) const MAX_RETRIES: &str = "telemetry.profiling.exporter.max_retries";
pub(crate) const MAX_BYTES: &str = "telemetry.profiling.exporter.max_bytes";
pub(crate) const SHUTDOWN_TIMEOUT_MS: &str = "telemetry.profiling.exporter.shutdown_timeout_ms";
pub(crate) const MAX_WINDOWS: &str = "telemetry.profiling.exporter.max_windows";
pub(crate) const MIN_FREE_BYTES: &str = "telemetry.profiling.exporter.min_free_bytes";
pub(crate) const FILE_OUTPUT_DIR: &str = "telemetry.profiling.exporter.file_output_dir";
pub(crate) const RECENT_INVOCATIONS: &str = "telemetry.profiling.attribution.recent_invocations";
pub(crate) const LABEL_VALUE_MAX_LEN: &str = "telemetry.profiling.attribution.label_value_max_len";
pub(crate) const LABEL_VALUES_PER_KEY: &str =
    "telemetry.profiling.attribution.label_values_per_key";
pub(crate) const HTTP_LISTEN: &str = "telemetry.profiling.http.listen";
pub(crate) const HTTP_TOKEN: &str = "telemetry.profiling.http.token";
pub(crate) const HTTP_MAX_SECONDS: &str = "telemetry.profiling.http.max_seconds";
