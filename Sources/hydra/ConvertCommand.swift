import ArgumentParser
import Foundation
import HydraEngine
import HydraWeights

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert the authors' PyTorch checkpoint to safetensors with the official parameter names.",
        discussion: """
        Reads torch.save files in the zip format (torch >= 1.6) and the legacy format, with the weights \
        at the top level or under 'state_dict', with or without 'module.' prefixes. The pickle is read by \
        a restricted reader that never executes code: a checkpoint referencing anything but tensor \
        storage is refused and nothing is written. Every tensor is checked against the architecture.
        """
    )

    @Argument(help: "PyTorch checkpoint (.ckpt, .pth, .pt).") var input: String
    @Argument(help: "Output safetensors file.") var output: String
    @Option(help: "Data set preset: kitti, nyud or nyudkitti (default: from the class count).") var preset: Preset?
    @Option(help: "Stored precision: f32 or f16.") var dtype: StoredType = .f32
    @Option(help: "Where the weights come from, for the metadata (default: 'converted from FILE').") var description: String?

    enum StoredType: String, ExpressibleByArgument { case f32, f16 }

    func run() throws {
        let contents: TorchCheckpoint.Contents
        do { contents = try TorchCheckpoint.read(path: input) } catch let e as WeightsError {
            if case .io = e { throw CLIError(e.description) } // it names the file already
            throw CLIError("\(input): \(e)")
        }
        var shapes: [String: [Int]] = [:]
        var byName: [String: CheckpointTensor] = [:]
        for t in contents.tensors {
            shapes[t.name] = t.shape
            byName[t.name] = t
        }
        let arch: Architecture
        do {
            arch = try Architecture.infer(shapes: shapes)
            try arch.validate(shapes)
        } catch let e as EngineError { throw CLIError("\(input): \(e)") }

        let chosen: Preset
        if let preset {
            guard preset.classNames.count == arch.numClasses else {
                throw CLIError("preset \(preset.rawValue) has \(preset.classNames.count) classes but the checkpoint has \(arch.numClasses)")
            }
            chosen = preset
        } else {
            guard let p = Preset.forClassCount(arch.numClasses) else {
                throw CLIError("cannot tell the preset of a \(arch.numClasses)-class checkpoint; pass --preset")
            }
            chosen = p
        }
        let name = URL(fileURLWithPath: input).lastPathComponent
        let info = ModelInfo(preset: chosen, description: description ?? "converted from \(name) (\(contents.format.rawValue) format)",
                             trained: true)

        // Build the model once so NaNs or inconsistent metadata stop us before anything is written.
        let params = ParameterDictionary(byName.mapValues { ($0.shape, $0.values) })
        do { _ = try Model(source: params, info: info) } catch let e as EngineError { throw CLIError("\(input): \(e)") }

        let entries = arch.parameters.map { p in
            SafeTensorsWriter.Entry(name: p.name, shape: p.shape, floats: byName[p.name]!.values,
                                    dtype: dtype == .f16 ? .f16 : .f32)
        }
        try SafeTensorsWriter.write(entries, metadata: info.metadata, to: output)
        print("converted \(input) (\(contents.format.rawValue) format, weights from \(contents.source)): "
            + "\(entries.count) tensors, \(arch.numClasses) classes, \(arch.hasNormals ? 3 : 2) heads, preset \(chosen.rawValue), "
            + "\(dtype.rawValue) -> \(output)"
            + (contents.dropped.isEmpty ? "" : " (dropped \(contents.dropped.count) num_batches_tracked counters)"))
    }
}

extension Preset: ExpressibleByArgument {}
