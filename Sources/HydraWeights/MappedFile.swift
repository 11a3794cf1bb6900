#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. The mapping is this object's alone and is
/// unmapped when it goes; never keep a pointer from `bytes` beyond the object's life.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let count: Int
    private let base: UnsafeMutableRawPointer?

    public init(path: String) throws {
        self.path = path
        // Non-blocking: opening a FIFO (or a device) must not hang; fstat then refuses anything but a regular file.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw WeightsError.unreadable(path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw WeightsError.io(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw WeightsError.io(path: path, reason: (st.st_mode & S_IFMT) == S_IFDIR ? "is a folder, not a file" : "not a regular file")
        }
        count = Int(st.st_size)
        if count == 0 {
            base = nil
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw WeightsError.io(path: path, reason: String(cString: strerror(errno))) }
        base = p
    }

    deinit {
        if let base { munmap(base, count) }
    }

    /// Calls `body` with the mapped bytes.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }
}
