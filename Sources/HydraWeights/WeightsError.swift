#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors from reading or writing weight files. Descriptions are for people.
public enum WeightsError: Error, Equatable, CustomStringConvertible {
    case io(path: String, reason: String)
    case invalidSafetensors(String)
    case invalidCheckpoint(String)
    /// The pickle names a global that loading tensors does not need: refused, never called.
    case forbiddenGlobal(String)
    case unsupportedDtype(String)
    case missingTensor(String)

    /// Why `path` cannot be read as a file, said plainly (no such file, a folder, permission).
    public static func unreadable(_ path: String) -> WeightsError {
        var st = stat()
        if stat(path, &st) != 0 { return .io(path: path, reason: String(cString: strerror(errno)).lowercased()) }
        if (st.st_mode & S_IFMT) == S_IFDIR { return .io(path: path, reason: "is a folder, not a file") }
        if access(path, R_OK) != 0 { return .io(path: path, reason: String(cString: strerror(errno)).lowercased()) }
        return .io(path: path, reason: "cannot read file")
    }

    public var description: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .invalidSafetensors(r): return "invalid safetensors file: \(r)"
        case let .invalidCheckpoint(r): return "invalid checkpoint: \(r)"
        case let .forbiddenGlobal(g):
            return "refused: the checkpoint's pickle references '\(g)', which is not needed to load tensors "
                + "(only torch storage/tensor-rebuild globals and OrderedDict are allowed); nothing was executed"
        case let .unsupportedDtype(d): return "unsupported tensor dtype \(d)"
        case let .missingTensor(n): return "no tensor named \(n)"
        }
    }
}
