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
}
