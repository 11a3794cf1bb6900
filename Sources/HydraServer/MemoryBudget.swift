import Foundation

/// Bytes the process may hold for one purpose (request bodies and unsent answers), shared by the
/// loop and the workers. What is taken is given back by the `MemoryLease` that took it.
package final class MemoryBudget: @unchecked Sendable {
    package let limit: Int
    private let lock = NSLock()
    private var used = 0

    package init(limit: Int) { self.limit = limit }

    package var inUse: Int { lock.lock(); defer { lock.unlock() }; return used }

    /// Takes `bytes` if they fit, or regardless with `force` (memory already held that must be counted).
    fileprivate func take(_ bytes: Int, force: Bool) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard force || used + bytes <= limit else { return false }
        used += bytes
        return true
    }

    fileprivate func give(_ bytes: Int) {
        lock.lock()
        used -= bytes
        lock.unlock()
    }
}

/// One holder's share of a `MemoryBudget`: it grows with what it covers and is given back when the
/// lease goes, on whatever thread that happens. Without a budget it only counts.
package final class MemoryLease: @unchecked Sendable {
    private let budget: MemoryBudget?
    package private(set) var bytes = 0

    package init(_ budget: MemoryBudget?) { self.budget = budget }

    /// Grows the share to `total` bytes; false (and unchanged) when the budget cannot cover it.
    @discardableResult
    package func grow(to total: Int, force: Bool = false) -> Bool {
        guard total > bytes else { return true }
        if let budget, !budget.take(total - bytes, force: force) { return false }
        bytes = total
        return true
    }

    deinit { budget?.give(bytes) }
}
