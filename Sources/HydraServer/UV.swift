import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// Small helpers for libuv handles owned by Swift objects. Handles are malloc'd and freed in
/// their close callback, the only place libuv allows it.
enum UV {
    static func allocate<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        let raw = calloc(1, MemoryLayout<T>.size)!
        return raw.bindMemory(to: T.self, capacity: 1)
    }

    static func handle<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_handle_t.self)
    }

    static func stream<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(p).assumingMemoryBound(to: uv_stream_t.self)
    }

    /// Closes a handle and frees its memory once libuv is done with it.
    static func close<T>(_ p: UnsafeMutablePointer<T>) {
        let h = handle(p)
        if uv_is_closing(h) != 0 { return }
        uv_close(h) { free($0) }
    }

    static func error(_ code: Int32) -> String { String(cString: uv_strerror(code)) }

    /// The peer of a connected TCP handle as "address:port" ("[v6]:port"), or "" when unknown.
    static func peerName(_ tcp: UnsafeMutablePointer<uv_tcp_t>) -> String {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_tcp_getpeername(tcp, $0, &length) == 0 }
        }
        guard ok else { return "" }
        let family = Int32(storage.ss_family)
        let port: UInt16
        switch family {
        case AF_INET: port = withUnsafeBytes(of: storage) { $0.load(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_port)!, as: UInt16.self) }
        case AF_INET6: port = withUnsafeBytes(of: storage) { $0.load(fromByteOffset: MemoryLayout<sockaddr_in6>.offset(of: \.sin6_port)!, as: UInt16.self) }
        default: return ""
        }
        var text = [CChar](repeating: 0, count: 64)
        let named = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { uv_ip_name($0, &text, text.count) == 0 }
        }
        guard named else { return "" }
        let address = String(cString: text)
        return family == AF_INET6 ? "[\(address)]:\(UInt16(bigEndian: port))" : "\(address):\(UInt16(bigEndian: port))"
    }
}
