import Foundation
import HydraEngine
import HydraImage
import HydraWeights

enum ModelLoading {
    /// The model at `path`, or the built-in default when nil.
    static func load(_ path: String?) throws -> Model {
        guard let path else { return try DefaultModel.load() }
        do {
            return try Model(safetensors: SafeTensorsFile(path: path))
        } catch let e as WeightsError {
            throw CLIError("cannot load model \(path): \(e)")
        } catch let e as EngineError {
            throw CLIError("cannot load model \(path): \(e)")
        }
    }

    static func readImage(_ path: String, limits: ImageLimits = ImageLimits()) throws -> RGBImage {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read file") }
        do { return try ImageDecoder.decode([UInt8](data), limits: limits) } catch let e as ImageError {
            throw CLIError("\(path): \(e)")
        }
    }

    static func write(_ bytes: [UInt8], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw CLIError("\(path): cannot write file")
        }
    }
}
