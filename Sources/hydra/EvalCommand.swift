import ArgumentParser
import Foundation
import HydraEngine
import HydraImage
import HydraOutputs
import HydraWeights

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Segmentation and depth metrics of a model on images with ground truth.",
        discussion: """
        For every image PREFIX_ID.png (or .jpg) in DIR, reads PREFIX_segm_gt_ID.png and \
        PREFIX_depth_gt_ID.png when present. Segmentation ground truth: KITTI colour-coded (the \
        preset's colours; black and other colours are void), NYUD a class-index PNG with 255 = void. \
        Depth ground truth: 16-bit PNG of metres x --depth-scale, 0 = no depth. Reports mIoU, pixel \
        accuracy and per-class IoU over the data set, and depth RMSE, log-RMSE, abs-rel and \
        delta < 1.25 per image averaged over images, as the paper does.
        """
    )

    enum Dataset: String, ExpressibleByArgument { case kitti, nyud }

    @Option(help: "Model (safetensors), or 'default' (the built-in model, also when not given) or 'untrained' (generated untrained weights).") var model: String?
    @Option(help: "Ground-truth conventions: kitti or nyud.") var dataset: Dataset
    @Option(help: "Depth PNG scale (the authors' KITTI data 800, KITTI's benchmark 256, NYUDv2 5000).") var depthScale: Double?
    @Option(help: "Depth evaluated up to this many metres (default: 80 for kitti, 10 for nyud).") var maxDepth: Float?
    @Option(help: "Write the metrics as JSON to this file (- for standard output).") var json: String?
    @Option(help: "Evaluate at most N images.") var limit: Int?
    @Option(help: "Arithmetic: f32 (exact), bf16 (AVX512-BF16) or int8 (AVX512-VNNI, a calibrated model: hydra calibrate).") var precision: Precision = .f32
    @Option(help: "Engine threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Argument(help: "Folder of images and ground truth.") var directory: String

    /// Tables and progress; on standard error when the JSON goes to standard output.
    private func say(_ line: String) {
        if json == "-" { FileHandle.standardError.write(Data((line + "\n").utf8)) } else { print(line) }
    }

    /// Whether the model's classes are the data set's: scoring NYUD labels with KITTI's six classes
    /// (or the reverse) gives numbers that mean nothing.
    static func classesProblem(_ dataset: Dataset, preset: Preset, names: [String]) -> String? {
        let fits: Bool
        switch dataset {
        case .kitti: fits = preset == .kitti || preset == .nyudkitti
        case .nyud: fits = preset == .nyud || preset == .nyudkitti
        }
        if fits { return nil }
        let shown = names.prefix(6).joined(separator: ", ") + (names.count > 6 ? ", ..." : "")
        return "--dataset \(dataset.rawValue) needs a model with \(dataset == .kitti ? "KITTI's" : "NYUDv2's") classes; this model has "
            + "the \(preset.rawValue) preset's \(names.count) (\(shown))"
    }

    /// A file whose name says it belongs to the other data set (the authors' files start KITTI_ or NYUD_).
    static func namesOtherDataset(_ file: String, dataset: Dataset) -> Bool {
        let name = (file as NSString).lastPathComponent.lowercased()
        return dataset == .kitti ? name.hasPrefix("nyu") : name.hasPrefix("kitti")
    }

    func run() throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw CLIError("\(directory): no such folder")
        }
        let model = try ModelLoading.load(self.model)
        let names = model.info.classNames
        if let problem = Self.classesProblem(dataset, preset: model.info.preset, names: names) { throw CLIError(problem) }
        let replica = try ModelLoading.replica(model, threads: threads, precision: precision)
        let upsampler = Upsampler(threads: threads)
        let scale = depthScale ?? (dataset == .kitti ? 256 : 5000)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted().filter {
            ($0.hasSuffix(".png") || $0.hasSuffix(".jpg")) && !$0.contains("_segm_gt_") && !$0.contains("_depth_gt_")
        }
        var items: [(image: String, segm: String?, depth: String?)] = []
        for f in files {
            let stem = (f as NSString).deletingPathExtension
            guard let cut = stem.lastIndex(of: "_") else { continue }
            let prefix = stem[..<cut], id = stem[stem.index(after: cut)...]
            func path(_ kind: String) -> String? {
                let p = (directory as NSString).appendingPathComponent("\(prefix)_\(kind)_\(id).png")
                return FileManager.default.fileExists(atPath: p) ? p : nil
            }
            let s = path("segm_gt"), d = path("depth_gt")
            if s != nil || d != nil { items.append(((directory as NSString).appendingPathComponent(f), s, d)) }
        }
        if let limit { items = Array(items.prefix(limit)) }
        guard !items.isEmpty else { throw CLIError("no images with ground truth (PREFIX_segm_gt_ID.png, PREFIX_depth_gt_ID.png) in \(directory)") }
        for item in items where Self.namesOtherDataset(item.image, dataset: dataset) {
            throw CLIError("\(item.image) is named as \(dataset == .kitti ? "NYUDv2" : "KITTI") data, not --dataset \(dataset.rawValue): "
                + "evaluate each data set's folder with its own --dataset")
        }

        var seg = SegmentationMetrics(classes: names.count)
        var depth = DepthMetrics(maxDepth: maxDepth ?? (dataset == .kitti ? 80 : 10))
        let progress = Progress(total: items.count)
        progress.toStandardError = json == "-"
        let colourIndex = Dictionary(model.info.colours.enumerated().map { (Self.key($0.element), UInt8($0.offset)) }) { a, _ in a }
        for (n, item) in items.enumerated() {
            let image = try ModelLoading.readImage(item.image)
            let p = try image.pixels.withUnsafeBufferPointer { try replica.run(rgb: $0, width: image.width, height: image.height) }
            let dense = upsampler.upsample(p, width: image.width, height: image.height)
            if let s = item.segm {
                let truth = try readLabels(s, width: image.width, height: image.height, colourIndex: colourIndex)
                seg.add(predicted: dense.labels, truth: truth)
            }
            if let d = item.depth {
                depth.add(predicted: dense.depth, truth: try readDepth(d, scale: scale, width: image.width, height: image.height))
            }
            progress.step(n + 1, "\(item.image): \(n + 1)/\(items.count)")
        }
        try report(seg: seg, depth: depth, names: names, count: items.count)
    }

    static func key(_ c: [UInt8]) -> UInt32 { UInt32(c[0]) << 16 | UInt32(c[1]) << 8 | UInt32(c[2]) }

    func readLabels(_ path: String, width: Int, height: Int, colourIndex: [UInt32: UInt8]) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read") }
        let raw = try PNGCodec.decodeRaw([UInt8](data))
        guard raw.width == width, raw.height == height else {
            throw CLIError("\(path) is \(raw.width)x\(raw.height) but its image is \(width)x\(height)")
        }
        if dataset == .nyud {
            guard raw.channels == 1 else {
                throw CLIError("\(path): NYUDv2 ground truth is a one-channel class-index PNG; this one has \(raw.channels) channels (KITTI's colour-coded labels?)")
            }
            if let bad = raw.samples.first(where: { $0 != 255 && Int($0) >= colourIndex.count }) {
                throw CLIError("\(path): class index \(bad), but the model has \(colourIndex.count) classes (255 = void)")
            }
            return raw.samples.map { $0 > 254 ? 255 : UInt8($0) }
        }
        // KITTI: colour-coded; a palette PNG is decoded through its palette.
        guard raw.channels >= 3 || !raw.palette.isEmpty else {
            throw CLIError("\(path): KITTI ground truth is colour-coded; this is a one-channel PNG (NYUDv2's class indices?)")
        }
        let rgb = try ImageDecoder.decode([UInt8](data))
        var labels = [UInt8](repeating: 255, count: width * height)
        var unknown = 0 // black is void; most of the frame in colours outside the model's palette means other labels
        for i in 0..<(width * height) {
            let r = rgb.pixels[3 * i], g = rgb.pixels[3 * i + 1], b = rgb.pixels[3 * i + 2]
            if let c = colourIndex[UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)] { labels[i] = c } else if r | g | b != 0 { unknown += 1 }
        }
        if unknown * 2 > width * height {
            throw CLIError("\(path): \(unknown * 100 / (width * height)) % of its pixels have colours that are none of the model's classes")
        }
        return labels
    }

    func readDepth(_ path: String, scale: Double, width: Int, height: Int) throws -> [Float] {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("\(path): cannot read") }
        let raw = try PNGCodec.decodeRaw([UInt8](data))
        guard raw.width == width, raw.height == height, raw.channels == 1 else {
            throw CLIError("\(path) must be a one-channel PNG of \(width)x\(height)")
        }
        return raw.samples.map { Float(Double($0) / scale) }
    }

    func report(seg: SegmentationMetrics, depth: DepthMetrics, names: [String], count: Int) throws {
        var out: [String: Any] = ["images": count, "dataset": dataset.rawValue, "model": model ?? "default", "precision": precision.rawValue]
        say(String(format: "%d images", count))
        if seg.confusion.reduce(0, +) > 0 {
            say(String(format: "segmentation: mIoU %.2f %%, pixel accuracy %.2f %%", seg.meanIoU * 100, seg.pixelAccuracy * 100))
            for (i, iou) in seg.iou.enumerated() {
                say("  " + names[i].padding(toLength: 16, withPad: " ", startingAt: 0) + (iou.map { String(format: "%6.2f %%", $0 * 100) } ?? "     -"))
            }
            out["miou"] = seg.meanIoU
            out["pixel_accuracy"] = seg.pixelAccuracy
            out["class_iou"] = Dictionary(uniqueKeysWithValues: seg.iou.enumerated().compactMap { i, v in v.map { (names[i], $0) } })
        }
        if let d = depth.summary {
            say(String(format: "depth (%d images, up to %.0f m): RMSE %.3f m, log-RMSE %.3f, abs-rel %.3f, delta<1.25 %.2f %%",
                         depth.images, depth.maxDepth, d.rmse, d.logRMSE, d.absRel, d.delta1 * 100))
            out["depth"] = ["rmse_m": d.rmse, "log_rmse": d.logRMSE, "abs_rel": d.absRel, "delta_1_25": d.delta1,
                            "images": depth.images, "max_depth_m": Double(depth.maxDepth)]
        }
        if let json, let data = try? JSONSerialization.data(withJSONObject: out, options: [.prettyPrinted, .sortedKeys]) {
            if json == "-" { print(String(decoding: data, as: UTF8.self)) } else { try ModelLoading.write([UInt8](data), to: json) }
        }
    }
}
