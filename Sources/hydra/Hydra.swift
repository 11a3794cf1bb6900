import ArgumentParser
import HydraServer

@main
struct Hydra: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hydra",
        abstract: "Joint semantic segmentation and depth (Nekrasov et al., ICRA 2019) on the CPU.",
        version: "hydra \(HydraService.version)",
        subcommands: [ServeCommand.self, PredictCommand.self, ConvertCommand.self, BenchCommand.self, EvalCommand.self, CalibrateCommand.self]
    )
}

/// An error for people: printed as is, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
