import Foundation
import HydraEngine
import HydraWeights

/// Where a served model comes from, so that the model repository can read it again
/// (`POST /v2/repository/models/{name}/load`).
public enum ModelSource: Sendable, CustomStringConvertible {
    /// A safetensors file.
    case file(String)
    /// The weights built into the binary.
    case builtIn
    /// Weights generated from a fixed seed (to compare a trained model against).
    case untrained

    /// What a path argument names: "default" (the built-in model, as the server names it),
    /// "untrained", or a file.
    public init(path: String) {
        switch path {
        case "default": self = .builtIn
        case "untrained": self = .untrained
        default: self = .file(path)
        }
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Reads and prepares the model (folded, ready for replicas); throws a `LoadError` naming the file.
    public func load() throws -> Model {
        switch self {
        case .builtIn: return try DefaultModel.load()
        case .untrained: return try DefaultModel.untrained()
        case let .file(path):
            do {
                return try Model(safetensors: SafeTensorsFile(path: path))
            } catch let e as WeightsError {
                if case .io = e { throw LoadError(description: "cannot load model: \(e)") } // it names the file already
                throw LoadError(description: "cannot load model \(path): \(e)")
            } catch let e as EngineError {
                throw LoadError(description: "cannot load model \(path): \(e)")
            }
        }
    }

    /// What identifies the file's contents cheaply (device, inode, size, modification time), so a
    /// reload reads only files that changed; nil for the built-in weights, which never change.
    public var fingerprint: String? {
        guard case let .file(path) = self else { return nil }
        var st = stat()
        guard stat(path, &st) == 0 else { return "missing" }
        return "\(st.st_dev)-\(st.st_ino)-\(st.st_size)-\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    public var description: String {
        switch self {
        case .builtIn: return "built-in"
        case .untrained: return "untrained"
        case let .file(path): return path
        }
    }
}
