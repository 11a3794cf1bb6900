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
            guard exitCode(for: error) != .success else { exit(withError: error) } // --help, --version
            // One spelling for every failure ("error: ", as swift and git write it), and a file
            // problem said as one, never as a Foundation error domain and code.
            let said: String
            if let file = FileProblem(error) {
                said = "error: \(file)"
            } else {
                let full = fullMessage(for: error)
                said = full.hasPrefix("Error: ") ? "error: " + full.dropFirst(7) : full
            }
            FileHandle.standardError.write(Data((said + "\n").utf8))
            Foundation.exit(exitCode(for: error).rawValue)
        }
    }
}

/// A Foundation file error (no such file, it exists, permission) as "PATH: reason".
struct FileProblem: CustomStringConvertible {
    let description: String

    init?(_ error: Error) {
        let e = error as NSError
        guard e.domain == NSCocoaErrorDomain else { return nil }
        let path = (e.userInfo[NSFilePathErrorKey] as? String) ?? (e.userInfo[NSURLErrorKey] as? URL)?.path ?? "file"
        if let posix = e.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
            description = "\(path): \(String(cString: strerror(Int32(posix.code))))"
        } else if e.code == CocoaError.fileWriteFileExists.rawValue {
            description = "\(path): already exists"
        } else if e.code == CocoaError.fileNoSuchFile.rawValue || e.code == CocoaError.fileReadNoSuchFile.rawValue {
            description = "\(path): no such file or folder"
        } else {
            description = "\(path): \(e.localizedDescription)"
        }
    }
}

/// An error for people: printed as is, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
