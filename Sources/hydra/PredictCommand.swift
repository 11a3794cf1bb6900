import ArgumentParser
import Foundation
import HydraEngine
import HydraImage
import HydraOutputs
import HydraWeights

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Segmentation, depth and the 3D point cloud for images.",
        discussion: """
        Writes <stem>_segmentation.png (palette PNG: pixel value = class id), <stem>_depth.<ext>, \
        <stem>.ply, <stem>_overlay.png, <stem>_normals.npy/.png and <stem>_summary.json into --out. \
        Point clouds are in the camera frame: x right, y down, z forward, metres. \
        With --raw-dir, also writes the network's outputs before any resizing as .npy.
        """
    )

    @Option(help: "Model (safetensors), or 'default' (the built-in model, also when not given) or 'untrained' (generated untrained weights).") var model: String?
    @Option(help: "Output folder.") var out: String?
    @Option(help: "Comma-separated: segmentation, depth, pointcloud, overlay, normals, summary.")
    var outputs: String = OutputKind.defaults.map(\.rawValue).joined(separator: ",")
    @Option(help: "npy, f32, png16 or colour.") var depthFormat: DepthFormat = .npy
    @Option(help: "png16 depth: stored value = round(metres x scale).") var depthScale: Double = DepthOutputs.defaultPNG16Scale
    @Option(help: "Focal length x in pixels (default: the preset's camera, scaled when the image has its shape, else square pixels with its field of view and a centred principal point).") var fx: Double?
    @Option(help: "Focal length y in pixels (default: fx when fx is given).") var fy: Double?
    @Option(help: "Horizontal field of view in degrees, instead of fx/fy: square pixels, centred principal point.") var hfov: Double?
    @Option(help: "Principal point x in pixels.") var cx: Double?
    @Option(help: "Principal point y in pixels.") var cy: Double?
    @Option(help: "Point cloud: keep every N-th pixel in each direction.") var stride: Int = 1
    @Option(help: "Point cloud: nearest depth kept, metres.") var minDepth: Float = 0
    @Option(help: "Point cloud: farthest depth kept, metres (also the far end of colour depth).") var maxDepth: Float?
    @Option(help: "Point cloud: comma-separated class names or ids to leave out (e.g. sky).") var dropClasses: String?
    @Option(help: "Point cloud colours: image or class.") var colourBy: PointColouring = .image
    @Option(help: "Point cloud encoding: binary or ascii.") var plyFormat: PLYWriter.Encoding = .binary
    @Option(help: "Overlay format: png or jpeg.") var overlayFormat: ImageDecoder.Format = .png
    @Flag(help: "Argmax at network resolution + nearest labels, bilinear depth (instead of bicubic).") var fast = false
    @Option(help: "Write the network's raw outputs (.npy, before resizing) here; one sub-folder per image when several are given.")
    var rawDir: String?
    @Option(help: "Arithmetic: f32 (exact), bf16 (AVX512-BF16: faster, within bf16 rounding) or int8 (AVX512-VNNI: a calibrated model, hydra calibrate).") var precision: Precision = .f32
    @Option(help: "Threads for the engine.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Largest accepted image, in pixels.") var maxPixels: Int = 40_000_000
    @Argument(help: "PNG or JPEG images.") var images: [String]

    func validate() throws {
        if images.isEmpty { throw ValidationError("give at least one image") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if stride < 1 { throw ValidationError("--stride must be at least 1") }
        if !(depthScale > 0 && depthScale.isFinite) { throw ValidationError("--depth-scale must be a positive number") }
        if let maxDepth, !(maxDepth > minDepth) { throw ValidationError("--max-depth must be greater than --min-depth") }
        for (name, v) in [("fx", fx), ("fy", fy)] where v.map({ !($0 > 0 && $0.isFinite) }) ?? false {
            throw ValidationError("--\(name) must be a positive number")
        }
        if let hfov, !(hfov >= 1 && hfov <= 179) { throw ValidationError("--hfov is a horizontal field of view in degrees, 1 to 179") }
        if out == nil && rawDir == nil { throw ValidationError("give --out (and/or --raw-dir)") }
        _ = try parseOutputs()
    }

    func parseOutputs() throws -> [OutputKind] {
        do { return try OutputKind.parseList(outputs) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let model = try ModelLoading.load(self.model)
        let modelName = self.model.map { URL(fileURLWithPath: $0).deletingPathExtension().lastPathComponent } ?? "default"
        if !model.info.trained { FileHandle.standardError.write(Data("note: \(model.info.description)\n".utf8)) }
        var request = OutputRequest()
        request.outputs = try parseOutputs()
        if request.outputs.contains(.normals) && !model.architecture.hasNormals {
            throw CLIError("--outputs normals needs three-task weights; this model has two heads")
        }
        request.depthFormat = depthFormat
        request.png16Scale = depthScale
        (request.fx, request.fy, request.cx, request.cy) = (fx, fy, cx, cy)
        request.horizontalFOV = hfov
        request.stride = stride
        request.minDepth = minDepth
        request.maxDepth = maxDepth
        do { request.dropClasses = try dropClasses.map { try parseClassList($0, names: model.info.classNames) } ?? [] } catch {
            throw CLIError("--drop-classes: \(error)")
        }
        request.colouring = colourBy
        request.plyEncoding = plyFormat
        request.overlayFormat = overlayFormat
        request.fast = fast

        if let (a, b) = Self.sameStem(images), out != nil || rawDir != nil {
            throw CLIError("\(a) and \(b) would write the same files (outputs are named by the image's name without "
                + "its folder and extension); rename one or run them separately")
        }
        if let out { try ModelLoading.makeFolder(out, option: "--out") }
        if let rawDir { try ModelLoading.makeFolder(rawDir, option: "--raw-dir") }
        let replica = try ModelLoading.replica(model, threads: threads, precision: precision)
        let renderer = Renderer(threads: threads)
        let progress = Progress(total: images.count)
        var failures = 0
        for (n, path) in images.enumerated() {
            do {
                let line = try predict(path, replica: replica, renderer: renderer, request: request, modelName: modelName)
                progress.step(n + 1, line)
            } catch {
                failures += 1
                progress.fail("error: \(error)")
            }
        }
        progress.finish(failures: failures)
        if failures > 0 { throw ExitCode(1) }
    }

    /// The first two images whose outputs would have the same names, if any.
    static func sameStem(_ paths: [String]) -> (String, String)? {
        var seen: [String: String] = [:]
        for path in paths {
            let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            if let first = seen[stem] { return (first, path) }
            seen[stem] = path
        }
        return nil
    }

    private func predict(_ path: String, replica: ModelReplica, renderer: Renderer, request: OutputRequest,
                         modelName: String) throws -> String {
        let t0 = Date()
        let image = try ModelLoading.readImage(path, limits: ImageLimits(maxPixels: maxPixels))
        let decodeMs = Date().timeIntervalSince(t0) * 1e3
        let p: Prediction
        do {
            p = try image.pixels.withUnsafeBufferPointer { try replica.run(rgb: $0, width: image.width, height: image.height) }
        } catch let e as EngineError { throw CLIError("\(path): \(e)") }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        if let rawDir {
            let dir = images.count > 1 ? (rawDir as NSString).appendingPathComponent(stem) : rawDir
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            func file(_ n: String) -> String { (dir as NSString).appendingPathComponent(n) }
            try ModelLoading.write(NPY.encode(p.logits, shape: [p.numClasses, p.height, p.width]), to: file("segm_logits.npy"))
            try ModelLoading.write(NPY.encode(p.depth, shape: [1, p.height, p.width]), to: file("depth.npy"))
            if let n = p.normals { try ModelLoading.write(NPY.encode(n, shape: [3, p.height, p.width]), to: file("normals.npy")) }
        }
        var written: [String] = []
        if let out {
            let parts = try renderer.render(image: image, prediction: p, model: replica.model, modelName: modelName,
                                            request: request, timings: [("decode", decodeMs)])
            for part in parts {
                let file = (out as NSString).appendingPathComponent(stem + part.fileSuffix)
                try ModelLoading.write(part.bytes, to: file)
                written.append((file as NSString).lastPathComponent)
                if part.kind == .depth && request.depthFormat == .f32 {
                    // Raw floats carry no shape: write it beside them.
                    let meta = "{\"width\": \(image.width), \"height\": \(image.height), \"dtype\": \"float32\", "
                        + "\"byte_order\": \"little\", \"layout\": \"row-major\", \"unit\": \"m\"}\n"
                    try ModelLoading.write(Array(meta.utf8), to: file + ".json")
                }
            }
        }
        return String(format: "%@: %dx%d, network %.1f ms -> %@", path, image.width, image.height, p.networkSeconds * 1e3,
                      written.isEmpty ? "raw outputs" : written.joined(separator: ", "))
    }
}

/// A progress bar on a terminal, plain lines otherwise.
final class Progress {
    let total: Int
    let tty = isatty(STDERR_FILENO) != 0
    /// Plain lines go to standard error too (when standard output carries JSON).
    var toStandardError = false
    init(total: Int) { self.total = total }

    func step(_ done: Int, _ line: String) {
        if tty && total > 1 {
            let width = 30, filled = width * done / total
            let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
            FileHandle.standardError.write(Data("\r[\(bar)] \(done)/\(total)".utf8))
            if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else if toStandardError {
            FileHandle.standardError.write(Data("\(line)\n".utf8))
        } else {
            print(line)
        }
    }

    func fail(_ line: String) {
        if tty && total > 1 { FileHandle.standardError.write(Data("\r".utf8)) }
        FileHandle.standardError.write(Data("\(line)\n".utf8))
    }

    func finish(failures: Int) {
        if total > 1 { print("\(total - failures) of \(total) images done" + (failures > 0 ? ", \(failures) failed" : "")) }
    }
}

extension DepthFormat: ExpressibleByArgument {}
extension PointColouring: ExpressibleByArgument {}
extension PLYWriter.Encoding: ExpressibleByArgument {}
extension ImageDecoder.Format: ExpressibleByArgument {}
