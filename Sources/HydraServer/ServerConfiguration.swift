/// Everything `hydra serve` can be told, with production defaults.
public struct ServerConfiguration: Sendable {
    public var host = "0.0.0.0"
    public var port = 8080
    /// Worker threads per model, each with its own model replica.
    public var workers = 1
    /// XNNPACK threads inside each worker.
    public var threadsPerWorker = 2
    /// Jobs that may wait per model; a full queue answers 503 at once.
    public var queueSize = 1
    public var maxBodyBytes = 32 << 20
    public var maxHeaderBytes = 16 << 10
    public var maxPixels = 20_000_000
    /// `maxPixels` is the default, not the operator's: `MemoryPlan` may lower it to fit `maxMemoryBytes`.
    public var maxPixelsIsDefault = false
    public var maxConnections = 512
    /// Seconds a client may take to send a whole request (slowloris defence): 408 after it.
    public var requestTimeout = 30.0
    /// Seconds an idle keep-alive connection is kept.
    public var idleTimeout = 60.0
    /// Seconds a response may take to be read by the client before the connection is dropped.
    public var writeTimeout = 60.0
    /// Default per-request deadline (milliseconds) when the request gives no `timeout_ms`.
    public var defaultTimeoutMs = 30_000
    /// Seconds to finish queued and running work after SIGTERM/SIGINT.
    public var drainTimeout = 20.0
    /// Seconds a 503 asks clients to wait.
    public var retryAfter = 1
    /// Bytes all connections together may hold in request bodies and unsent answers; a body beyond it
    /// is refused with 503 before it is read. Derived from `--max-memory` by `MemoryPlan`.
    public var connectionMemoryBytes = 256 << 20
    /// Bytes the whole process may use (`--max-memory`); `MemoryPlan` shares it out. Nil: no plan
    /// (tests, library use), and the limits above apply as set.
    public var maxMemoryBytes: Int?
    /// Largest network input; larger frames are shrunk for the network. Nil: sized by `MemoryPlan`.
    public var maxNetworkPixels: Int?
    /// The default precision of models (`--precision`), for `hydra_build_info`.
    public var precision = "f32"

    public init() {}
}
