import Foundation
import HydraFuzz

// Built two ways. With `-sanitize=fuzzer -DFUZZING` (make fuzz) it runs libFuzzer on the target that
// HYDRA_FUZZ_TARGET names, with libFuzzer's arguments. Otherwise it is a replayer:
// `hydra-fuzz TARGET FILE|DIR ...` runs every input once (how CI checks the corpora and the crashes kept).

@main
enum Entry {
    static func main() {
        #if FUZZING
        fuzz()
        #else
        replay()
        #endif
    }

    static func targetNamed(_ name: String?) -> FuzzTarget {
        guard let name, let target = FuzzTarget(rawValue: name) else {
            fputs("hydra-fuzz: name a target: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n", stderr)
            exit(2)
        }
        return target
    }

    #if FUZZING
    nonisolated(unsafe) static var target = FuzzTarget.http

    /// SwiftPM gives every executable its own main, so libFuzzer is entered through its driver
    /// rather than its own main; libFuzzer's flags and corpus directories pass through.
    static func fuzz() {
        target = targetNamed(ProcessInfo.processInfo.environment["HYDRA_FUZZ_TARGET"])
        var argc = CommandLine.argc
        var argv = Optional(CommandLine.unsafeArgv)
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            Entry.target.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        })
    }
    #endif

    static func replay() {
        let args = CommandLine.arguments.dropFirst()
        let target = targetNamed(args.first)
        var count = 0
        for path in args.dropFirst() {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                fputs("hydra-fuzz: no such file: \(path)\n", stderr)
                exit(2)
            }
            let files = isDir.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                target.run([UInt8](data))
                count += 1
            }
        }
        print("hydra-fuzz \(target.rawValue): \(count) inputs ran without a crash")
    }
}

#if FUZZING
/// libFuzzer's entry for a program that has its own main (compiler-rt FuzzerInterface).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ run: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// Referenced by libFuzzer's object files; never called, since the driver gets the callback.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Entry.target.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#endif
