import XCTest
@testable import HydraWeights

final class UnpicklerTests: XCTestCase {
    func load(_ bytes: [UInt8]) throws -> PickleValue {
        var u = Unpickler(data: bytes)
        return try u.load()
    }

    func testDataOpcodes() throws {
        // {'a': [1, -2, 3.5, 'x', True, None, (70000,)]} at protocol 2
        let p: [UInt8] = [0x80, 2, 0x7D, 0x71, 0, 0x58, 1, 0, 0, 0, 0x61, 0x5D, 0x71, 1, 0x28,
                          0x4B, 1, 0x4A, 0xFE, 0xFF, 0xFF, 0xFF, 0x47, 0x40, 0x0C, 0, 0, 0, 0, 0, 0,
                          0x58, 1, 0, 0, 0, 0x78, 0x88, 0x4E, 0x4A, 0x70, 0x11, 0x01, 0x00, 0x85,
                          0x65, 0x73, 0x2E]
        guard case let .dict(d) = try load(p), case .string("a") = d.pairs[0].0, case let .list(l) = d.pairs[0].1 else {
            return XCTFail("shape")
        }
        XCTAssertEqual(l.items.map(\.description), ["1", "-2", "3.5", "'x'", "true", "None", "(70000)"])
    }

    /// Deep nesting would overflow the stack of whatever walks or frees it (found by make fuzz).
    func testNestingIsBoundedAndSelfContainingListsAreWalkedOnce() throws {
        let deep: [UInt8] = [0x80, 2, 0x4E] + [UInt8](repeating: 0x85, count: 200_000) + [0x2E] // None, TUPLE1 x 200000
        XCTAssertThrowsError(try load(deep)) { XCTAssertTrue("\($0)".contains("nested deeper than 64"), "\($0)") }
        let ok: [UInt8] = [0x80, 2, 0x4E] + [UInt8](repeating: 0x85, count: 64) + [0x2E]
        XCTAssertEqual(try load(ok).depth, 64)
        // l = []; l.append(l): EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP
        let cyclic = try load([0x80, 2, 0x5D, 0x71, 0, 0x68, 0, 0x61, 0x2E])
        guard case let .list(l) = cyclic, case let .list(inner) = l.items[0] else { return XCTFail("shape") }
        XCTAssertTrue(l === inner)
        var tensors = 0
        TorchCheckpoint.walkTensors(cyclic) { _ in tensors += 1 }
        XCTAssertEqual(tensors, 0)
    }

    func testForbiddenGlobalsAreRefusedBeforeAnythingRuns() throws {
        for (module, name) in [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("__builtin__", "getattr"),
                               ("subprocess", "Popen"), ("torch", "load"), ("torch._utils", "_rebuild_device_tensor_from_numpy")] {
            let p: [UInt8] = [0x80, 2, 0x63] + Array("\(module)\n\(name)\n".utf8) + [0x58, 2, 0, 0, 0] + Array("id".utf8)
                + [0x85, 0x52, 0x2E]
            XCTAssertThrowsError(try load(p)) { XCTAssertEqual($0 as? WeightsError, .forbiddenGlobal("\(module).\(name)")) }
        }
        // STACK_GLOBAL (protocol 4) goes through the same check.
        let p4: [UInt8] = [0x80, 4, 0x8C, 2] + Array("os".utf8) + [0x8C, 6] + Array("system".utf8) + [0x93, 0x2E]
        XCTAssertThrowsError(try load(p4)) { XCTAssertEqual($0 as? WeightsError, .forbiddenGlobal("os.system")) }
    }

    func testStorageClassesCannotBeCalled() throws {
        let p: [UInt8] = [0x80, 2, 0x63] + Array("torch\nFloatStorage\n".utf8) + [0x29, 0x52, 0x2E]
        XCTAssertThrowsError(try load(p)) { XCTAssertEqual($0 as? WeightsError, .forbiddenGlobal("torch.FloatStorage (called)")) }
    }

    func testMalformedPicklesFailCleanly() throws {
        let cases: [[UInt8]] = [
            [], [0x80], [0x80, 2, 0x58, 0xFF, 0xFF, 0xFF, 0x7F], [0x80, 2, 0x2E], [0x80, 2, 0x68, 5, 0x2E],
            [0x80, 2, 0x61, 0x2E], [0x80, 2, 0x4E, 0x52, 0x2E], [0x80, 2, 0xFF], [0x80, 2, 0x74, 0x2E],
            [0x80, 2, 0x8D, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        ]
        for c in cases { XCTAssertThrowsError(try load(c), "\(c)") }
    }
}
