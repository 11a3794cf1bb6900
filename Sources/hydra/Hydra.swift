import ArgumentParser
import Foundation
import HydraServer
import Logging

@main
struct Hydra: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hydra",
        abstract: "Joint semantic segmentation and depth (Nekrasov et al., ICRA 2019) on the CPU.",
        version: "hydra \(HydraService.version)",
        subcommands: [ServeCommand.self, PredictCommand.self, ConvertCommand.self, BenchCommand.self, EvalCommand.self, CalibrateCommand.self]
    )

    /// As ArgumentParser's, except that `serve` reports a command line it cannot parse as a JSON log
    /// line like every other line it writes (help and --version stay text).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            exit(withError: code) // what went wrong has been said (serve logged it)
        } catch {
            let arguments = Array(CommandLine.arguments.dropFirst())
            let text = arguments.contains("--log-format=text") || zip(arguments, arguments.dropFirst()).contains { $0 == ("--log-format", "text") }
                || ProcessInfo.processInfo.environment["HYDRA_LOG_FORMAT"] == "text"
            if arguments.first == "serve", exitCode(for: error) != .success, !text {
                LoggingSystem.bootstrap { JSONLogHandler(label: $0) }
                Logger(label: "hydra").critical("cannot start", metadata: ["error": "\(message(for: error))"])
                LogWriter.standardError.flush(timeout: 2)
                Self.exit(withError: exitCode(for: error))
            }
            exit(withError: error)
        }
    }
}

/// An error for people: printed as is, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
