import Foundation
import XCTest
@testable import HydraWeights

final class SafeTensorsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hydra-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func write(_ bytes: [UInt8]) throws -> String {
        let path = dir.appendingPathComponent("f.safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A file with a hand-written header and `data` bytes of payload.
    func file(header: String, data: [UInt8]) throws -> String {
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out += Array(header.utf8) + data
        return try write(out)
    }

    func assertInvalid(_ path: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafeTensorsFile(path: path), file: file, line: line) { error in
            guard case let WeightsError.invalidSafetensors(msg) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertTrue(msg.contains(fragment), "'\(msg)' does not mention '\(fragment)'", file: file, line: line)
        }
    }

    func testRoundTripAllFloatTypes() throws {
        let values: [Float] = [0, 1, -2.5, 0.333333, 65504, -1e-3]
        let entries = [
            SafeTensorsWriter.Entry(name: "a", shape: [2, 3], floats: values, dtype: .f32),
            SafeTensorsWriter.Entry(name: "b", shape: [6], floats: values, dtype: .f16),
            SafeTensorsWriter.Entry(name: "c", shape: [3, 2], floats: values, dtype: .bf16),
        ]
        let path = try write(try SafeTensorsWriter.serialize(entries, metadata: ["preset": "kitti"]))
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.metadata["preset"], "kitti")
        XCTAssertEqual(f.tensors["a"]?.shape, [2, 3])
        XCTAssertEqual(f.tensors["b"]?.dtype, .f16)
        XCTAssertEqual(try f.floats("a"), values)
        for (got, want) in zip(try f.floats("b"), values) { XCTAssertEqual(got, want, accuracy: abs(want) * 1e-3 + 1e-6) }
        for (got, want) in zip(try f.floats("c"), values) { XCTAssertEqual(got, want, accuracy: abs(want) * 4e-3 + 1e-6) }
        XCTAssertThrowsError(try f.floats("zzz")) { XCTAssertEqual($0 as? WeightsError, .missingTensor("zzz")) }
    }

    func testCorruptHeadersAreRejected() throws {
        assertInvalid(try write([1, 2, 3]), "shorter than the 8-byte header")
        var huge = [UInt8]()
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { huge.append(contentsOf: $0) }
        assertInvalid(try write(huge + [0x7B]), "exceeds")
        var past = [UInt8]()
        withUnsafeBytes(of: UInt64(64).littleEndian) { past.append(contentsOf: $0) }
        assertInvalid(try write(past + Array("{}".utf8)), "runs past the end")
        assertInvalid(try file(header: "[1, 2]", data: []), "not a JSON object")
        assertInvalid(try file(header: "{\"a\": {\"dtype\": ", data: []), "not valid JSON")
        assertInvalid(try file(header: #"{"__metadata__": {"k": 3}}"#, data: []), "not a string")
    }

    func testBadOffsetsAreRejected() throws {
        let eight = [UInt8](repeating: 0, count: 8)
        assertInvalid(try file(header: #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}}"#, data: eight + [0, 0, 0, 0]),
                      "= 8 bytes but data_offsets span 12")
        assertInvalid(try file(header: #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#, data: eight),
                      "outside the 8-byte data section")
        assertInvalid(try file(header: #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}}"#,
                               data: eight), "overlaps")
        assertInvalid(try file(header: #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, data: eight), "unused bytes")
        assertInvalid(try file(header: #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, data: eight), "tensors cover 4")
        assertInvalid(try file(header: #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#, data: eight), "reversed")
        assertInvalid(try file(header: #"{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#, data: eight), "invalid shape")
        assertInvalid(try file(header: #"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}"#, data: eight), "invalid data_offsets")
        assertInvalid(try file(header: #"{"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}"#, data: eight),
                      "overflows")
    }

    func testWrongDtypesAreRejected() throws {
        let eight = [UInt8](repeating: 0, count: 8)
        assertInvalid(try file(header: #"{"a": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}"#, data: eight), "unsupported dtype Q7")
        assertInvalid(try file(header: #"{"a": {"shape": [2], "data_offsets": [0, 8]}}"#, data: eight), "no dtype")
        assertInvalid(try file(header: #"{"a": {"dtype": "F16", "shape": [2], "data_offsets": [0, 8]}}"#, data: eight), "F16")
    }

    func testMetadataRoundTripsThroughModelInfo() throws {
        let info = ModelInfo(preset: .nyud, description: "test", trained: true)
        let back = try ModelInfo(metadata: info.metadata, fallbackPreset: .kitti)
        XCTAssertEqual(back, info)
        XCTAssertEqual(back.classNames.count, 40)
        XCTAssertEqual(back.colours[0], [128, 0, 0]) // palette[1]: NYUD indexes with class + 1
        XCTAssertEqual(back.colours[39], [64, 0, 64])
        XCTAssertThrowsError(try ModelInfo(metadata: ["preset": "mars"], fallbackPreset: .kitti))
    }

    func testIntrinsicsScaleWithImageSize() {
        let k = Preset.kitti.intrinsics.scaled(toWidth: 621, height: 187)
        XCTAssertEqual(k.fx, 721.5377 * 0.5, accuracy: 1e-9)
        XCTAssertEqual(k.cx, (609.5593 + 0.5) * 0.5 - 0.5, accuracy: 1e-9)
        XCTAssertEqual(k.cy, (172.854 + 0.5) * 187.0 / 375.0 - 0.5, accuracy: 1e-9)
    }
}
