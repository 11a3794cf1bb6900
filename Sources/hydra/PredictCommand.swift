import ArgumentParser
import Foundation
import HydraEngine
import HydraImage
import HydraOutputs

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Run the network on images.",
        discussion: "With --raw-dir, writes the network's outputs before any resizing as .npy files."
    )

    @Option(help: "Model (safetensors). Default: the built-in model.") var model: String?
    @Option(help: "Write segm_logits.npy [C,h,w], depth.npy [1,h,w] (and normals.npy [3,h,w]) here; one sub-folder per image when several are given.")
    var rawDir: String?
    @Option(help: "Threads for the engine.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Largest accepted image, in pixels.") var maxPixels: Int = 40_000_000
    @Argument(help: "PNG or JPEG images.") var images: [String]

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let model = try ModelLoading.load(self.model)
        if !model.info.trained { FileHandle.standardError.write(Data("note: \(model.info.description)\n".utf8)) }
        let replica = try ModelReplica(model: model, threads: threads)
        var failures = 0
        for path in images {
            do {
                try predict(path, replica: replica)
            } catch {
                failures += 1
                FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            }
        }
        if failures > 0 { throw ExitCode(1) }
    }

    private func predict(_ path: String, replica: ModelReplica) throws {
        let image = try ModelLoading.readImage(path, limits: ImageLimits(maxPixels: maxPixels))
        let p: Prediction
        do {
            p = try image.pixels.withUnsafeBufferPointer { try replica.run(rgb: $0, width: image.width, height: image.height) }
        } catch let e as EngineError { throw CLIError("\(path): \(e)") }
        if let rawDir {
            let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            let dir = images.count > 1 ? (rawDir as NSString).appendingPathComponent(stem) : rawDir
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            func out(_ n: String) -> String { (dir as NSString).appendingPathComponent(n) }
            try ModelLoading.write(NPY.encode(p.logits, shape: [p.numClasses, p.height, p.width]), to: out("segm_logits.npy"))
            try ModelLoading.write(NPY.encode(p.depth, shape: [1, p.height, p.width]), to: out("depth.npy"))
            if let n = p.normals { try ModelLoading.write(NPY.encode(n, shape: [3, p.height, p.width]), to: out("normals.npy")) }
        }
        print(String(format: "%@: %dx%d -> %dx%d outputs, preprocess %.1f ms, network %.1f ms",
                     path, image.width, image.height, p.width, p.height, p.preprocessSeconds * 1e3, p.networkSeconds * 1e3))
    }
}
