@testable import HydraFuzz
import HydraWeights
import XCTest

/// Every committed seed and every input a fuzzer crashed on (Fuzz/regressions/<target>/) runs
/// through its target again: a crash fails the whole test run.
final class ReplayTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private func files(_ dir: String) -> [URL] {
        let url = Self.root.appendingPathComponent(dir)
        return ((try? FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)) ?? [])
            .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
    }

    func testRegressionsAndSeedsRunWithoutCrashing() throws {
        var ran = 0
        for target in FuzzTarget.allCases {
            let seeds = target == .png || target == .jpeg ? "Tests/HydraImageTests/Fixtures" : "Fuzz/corpus/\(target.rawValue)"
            for file in files("Fuzz/regressions/\(target.rawValue)") + files(seeds) {
                target.run([UInt8](try Data(contentsOf: file)))
                ran += 1
            }
        }
        XCTAssertGreaterThan(ran, 40)
        XCTAssertFalse(files("Fuzz/regressions/http").isEmpty)
    }

    /// The chunked seeds are well-framed requests, and a broken one fails however it arrives.
    func testChunkedSeedsAreReadAsRequestsWhateverTheirArrival() throws {
        let seeds = files("Fuzz/corpus/chunked")
        XCTAssertGreaterThanOrEqual(seeds.count, 5)
        for seed in seeds {
            let stream = FuzzTarget.chunkedHead + [UInt8](try Data(contentsOf: seed))
            let whole = FuzzTarget.readAll([stream])
            XCTAssertTrue(whole.first?.hasPrefix("POST /v1/predict") == true, "\(seed.lastPathComponent): \(whole)")
            XCTAssertFalse(whole.contains { $0.hasPrefix("failed") }, "\(seed.lastPathComponent): \(whole)")
            XCTAssertEqual(FuzzTarget.readAll(stream.map { [$0] }), whole, seed.lastPathComponent)
        }
        let broken = FuzzTarget.chunkedHead + Array("5\r\nabcdeXX0\r\n\r\n".utf8)
        XCTAssertEqual(FuzzTarget.readAll([broken]), ["failed 400"])
        XCTAssertEqual(FuzzTarget.readAll(broken.map { [$0] }), ["failed 400"])
    }

    /// Seeds that fail early teach the fuzzer nothing: the checkpoint seeds must be readable.
    func testCheckpointSeedsAreValidCheckpoints() throws {
        let seeds = files("Fuzz/corpus/checkpoint")
        XCTAssertEqual(seeds.count, 3)
        for seed in seeds {
            let contents = try TorchCheckpoint.read(path: seed.path)
            XCTAssertEqual(contents.tensors.count, 4, seed.lastPathComponent)
        }
    }

    func testTheOversizedZipEntryIsRefusedWithoutReservingIt() {
        let file = Self.root.appendingPathComponent("Fuzz/regressions/checkpoint/zip-entry-claims-3gb")
        XCTAssertThrowsError(try TorchCheckpoint.read(path: file.path)) { error in
            XCTAssertTrue("\(error)".contains("more than a"), "\(error)")
        }
    }

    /// ZIPFoundation traps converting such an offset to off_t; the archive is refused before it reads it.
    func testAZip64OffsetBeyondTheFileIsRefused() {
        let file = Self.root.appendingPathComponent("Fuzz/regressions/checkpoint/zip64-offset-beyond-int64")
        XCTAssertThrowsError(try TorchCheckpoint.read(path: file.path)) { error in
            XCTAssertTrue("\(error)".contains("points past the end of the file"), "\(error)")
        }
    }
}
