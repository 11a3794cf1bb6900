import Foundation
import HydraEngine
import HydraImage
import HydraServer
import HydraWeights

enum ModelLoading {
    /// The model at `path`; the built-in default when nil or "default"; the generated untrained
    /// weights for "untrained" (to compare a trained model against).
    static func load(_ path: String?) throws -> Model {
        try load(path.map(ModelSource.init(path:)) ?? .builtIn)
    }

    static func load(_ source: ModelSource) throws -> Model {
        do { return try source.load() } catch let e as ModelSource.LoadError { throw CLIError(e.description) }
    }

    /// A replica in `precision`; a CPU that cannot run it is a clear error, never a silent f32.
    static func replica(_ model: Model, threads: Int, precision: Precision) throws -> ModelReplica {
        do { return try ModelReplica(model: model, threads: threads, precision: precision) } catch let e as EngineError {
            throw CLIError(e.description)
        }
    }

    static func readImage(_ path: String, limits: ImageLimits = ImageLimits()) throws -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError(WeightsError.unreadable(path).description) }
        do { return try ImageDecoder.decode([UInt8](data), limits: limits) } catch let e as ImageError {
            throw CLIError("\(path): \(e)")
        }
    }

    /// Creates `path` (and its parents) as a folder to write into; a file in the way is an error that says so.
    static func makeFolder(_ path: String, option: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw CLIError("\(option) \(path): a file of that name exists; give a folder") }
            return
        }
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw CLIError("\(option) \(path): cannot create the folder (\(FileProblem(error)?.description ?? "\(error)"))")
        }
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw CLIError("\(path): cannot write file")
        }
    }
}
