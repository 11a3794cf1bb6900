import CXNNPACK
import Foundation
import HydraKernels

/// The packed weights of a model's first replica, which the replicas created after it reuse.
///
/// XNNPACK packs weights per operator and Debian's snapshot has no weights cache, so every replica
/// would hold its own identical copy (about 12 MiB for this network). Each later replica still packs
/// (XNNPACK offers no way around it), then `hydra_xnn_share` points its operator at the first copy
/// and frees the new one when the bytes match. The registry keeps one reference to each buffer it
/// lists, so replicas come and go in any order.
public final class SharedPackedWeights: @unchecked Sendable {
    private let lock = NSLock()
    /// For each graph step: the first replica's buffers from creating its operator (not the operator itself).
    private var buffers: [Int: [UnsafeMutableRawPointer]] = [:]

    /// False when the model's options turn sharing off (A/B measurements), or when XNNPACK was
    /// initialised before Hydra could give it its allocator.
    public let enabled: Bool

    init(enabled: Bool) {
        self.enabled = enabled && XNNPACKRuntime.usesHydraAllocator
    }

    deinit {
        for list in buffers.values { for p in list { hydra_xnn_release(p) } }
    }

    /// Creates an operator with `create` while recording what XNNPACK allocates, then either lists
    /// its buffers (first replica) or swaps them for the listed ones.
    func create(step: Int, _ create: () -> (xnn_status, xnn_operator_t?)) -> (xnn_status, xnn_operator_t?) {
        guard enabled else { return create() }
        hydra_xnn_record_begin()
        let (status, op) = create()
        var pointers = [UnsafeMutableRawPointer?](repeating: nil, count: 16)
        var sizes = [Int](repeating: 0, count: 16)
        let count = hydra_xnn_record_end(&pointers, &sizes, 16)
        guard status == xnn_status_success, let op, count <= 16 else { return (status, op) }
        let opPointer = UnsafeMutableRawPointer(op)
        let fresh = pointers[..<count].compactMap { $0 }.filter { $0 != opPointer }
        guard fresh.count == count - 1 else { return (status, op) } // the operator must be among them

        lock.lock()
        defer { lock.unlock() }
        guard let first = buffers[step] else {
            for p in fresh { hydra_xnn_retain(p) }
            buffers[step] = fresh
            return (status, op)
        }
        guard first.count == fresh.count else { return (status, op) }
        // Where a buffer cannot be shared (hydra_xnn_share says why), the replica keeps its own copy.
        for (mine, theirs) in zip(fresh, first) { _ = hydra_xnn_share(opPointer, mine, theirs) }
        return (status, op)
    }
}
