import ArgumentParser
import Foundation
import HydraEngine
import HydraServer
import HydraWeights

struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Measure what --precision int8 needs and write a calibrated copy of the model.",
        discussion: """
        Runs the f32 network over the images in DIR (PNG or JPEG) and records the range of the input of \
        every layer int8 can run (the 1x1 convolutions and the 3x3 heads); then measures each layer's sensitivity (agreement with f32 when it alone \
        runs in int8) and keeps the most sensitive layers in bf16 until the int8 network loses at most \
        --max-label-loss of label agreement with f32 and adds at most --max-depth-error of depth error \
        on these images, beyond what the bf16 network (no layer in int8) loses. The output holds the same tensors \
        with the calibration in its metadata (key 'int8'). Use frames like those the model will see; \
        a dozen is enough for the ranges.
        """
    )

    @Option(help: "Model (safetensors), or 'default' (the built-in model, also when not given).") var model: String?
    @Option(help: "Folder of calibration images (PNG, JPEG).") var images: String
    @Option(help: "Calibrated safetensors file to write.") var out: String?
    @Option(help: "Also write the calibration alone as JSON (what the built-in model ships beside its weights).")
    var calibrationOut: String?
    @Option(help: "Write the per-layer sensitivity as JSON to this file (- for standard output).") var report: String?
    @Option(help: "Use at most N images (sorted by name).") var limit: Int = 64
    @Option(help: "Label agreement with f32 int8 may lose beyond bf16's loss, in percentage points.") var maxLabelLoss: Double = 0.5
    @Option(help: "Depth mean relative error against f32 int8 may add to bf16's, in percentage points.") var maxDepthError: Double = 0.75
    @Option(help: "Engine threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        guard out != nil || calibrationOut != nil else { throw CLIError("give --out FILE.safetensors (or --calibration-out FILE.json)") }
        guard limit >= 1, threads >= 1 else { throw CLIError("--limit and --threads must be positive") }
        guard (0...100).contains(maxLabelLoss), maxDepthError >= 0 else {
            throw CLIError("--max-label-loss is a percentage (0-100) and --max-depth-error is not negative")
        }
        let model = try ModelLoading.load(self.model)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: images, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError("\(images): no such folder")
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: images)) ?? []).filter {
            let e = ($0 as NSString).pathExtension.lowercased()
            return ["png", "jpg", "jpeg"].contains(e) && !$0.contains("_gt_")
        }.sorted().prefix(limit)
        guard !names.isEmpty else { throw CLIError("\(images): no PNG or JPEG images (ground-truth files *_gt_* are skipped)") }
        let frames = try names.map { name -> Calibration.Frame in
            let image = try ModelLoading.readImage((images as NSString).appendingPathComponent(name))
            guard image.width >= 32, image.height >= 32 else { throw CLIError("\(name): \(image.width)x\(image.height) is below 32x32") }
            return Calibration.Frame(pixels: image.pixels, width: image.width, height: image.height)
        }
        let result: Calibration.Result
        do {
            result = try Calibration.calibrate(model: model, frames: frames, threads: threads,
                                               targets: .init(labelLoss: maxLabelLoss / 100, depthError: maxDepthError / 100)) {
                FileHandle.standardError.write(Data("calibrate: \($0)\n".utf8))
            }
        } catch let e as EngineError { throw CLIError(e.description) }

        func pct(_ v: Double) -> String { String(format: "%.2f %%", v * 100) }
        print("layer\tshare of multiply-adds\tlabel agreement\tdepth relative error  (only this layer in int8; most sensitive first)")
        for l in result.layers {
            print("\(l.layer)\t\(pct(l.multiplyAddShare))\t\(pct(l.agreement.labels))\t\(pct(l.agreement.depthRelativeError))"
                + (result.calibration.keep.contains(l.layer) ? "\tkept in bf16" : ""))
        }
        print("no layer in int8 (bf16): agreement \(pct(result.noneInt8.labels)), depth error \(pct(result.noneInt8.depthRelativeError))")
        print("all \(result.layers.count) layers in int8: agreement \(pct(result.allInt8.labels)), depth error \(pct(result.allInt8.depthRelativeError))")
        print("chosen (\(result.calibration.keep.count) kept in bf16): agreement \(pct(result.chosen.labels)), "
            + "depth error \(pct(result.chosen.depthRelativeError)), on \(frames.count) images")

        var info = model.info
        info.int8 = result.calibration
        if let report {
            struct Report: Encodable {
                let images: Int, layers: [Calibration.LayerSensitivity]
                let noneInt8: Calibration.Agreement, allInt8: Calibration.Agreement, chosen: Calibration.Agreement
                let keep: [String]
            }
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try e.encode(Report(images: frames.count, layers: result.layers, noneInt8: result.noneInt8, allInt8: result.allInt8, chosen: result.chosen,
                                           keep: result.calibration.keep))
            if report == "-" { print(String(decoding: data, as: UTF8.self)) } else { try ModelLoading.write([UInt8](data) + [10], to: report) }
        }
        if let calibrationOut { try ModelLoading.write(Array(info.metadata["int8"]!.utf8) + [10], to: calibrationOut) }
        if let out {
            try writeCalibrated(info: info, to: out)
            print("wrote \(out)")
        }
    }

    /// The input's tensors byte for byte (or the generated ones), with the new metadata.
    private func writeCalibrated(info: ModelInfo, to path: String) throws {
        let entries: [SafeTensorsWriter.Entry]
        var metadata = info.metadata
        var source = model.map(ModelSource.init(path:)) ?? .builtIn
        if case .builtIn = source { source = DefaultModel.shippedPath.map { .file($0) } ?? .untrained }
        switch source {
        case let .file(p):
            let file = try SafeTensorsFile(path: p)
            entries = try file.names.map { SafeTensorsWriter.Entry(name: $0, dtype: file.tensors[$0]!.dtype, shape: file.tensors[$0]!.shape,
                                                                    bytes: try file.bytes($0)) }
            metadata = file.metadata.merging(metadata) { _, new in new }
        case .builtIn, .untrained:
            let params = DefaultModel.parameters()
            entries = Architecture(numClasses: 6, hasNormals: false).parameters.map {
                SafeTensorsWriter.Entry(name: $0.name, shape: $0.shape, floats: params.entries[$0.name]!.values)
            }
        }
        do { try SafeTensorsWriter.write(entries, metadata: metadata, to: path) } catch let e as WeightsError { throw CLIError("\(path): \(e)") }
    }
}
