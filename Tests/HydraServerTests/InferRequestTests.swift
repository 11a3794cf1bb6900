import Foundation
import XCTest
@testable import HydraServer

final class InferRequestTests: XCTestCase {
    private func json(_ object: Any) -> [UInt8] { Array(try! JSONSerialization.data(withJSONObject: object)) }

    func testBinaryTensorsFollowTheHeaderInInputOrder() throws {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]
        let header = json(["id": "r1", "parameters": ["binary_data_output": true, "fx": 700, "fast": true, "timeout": 2500],
                           "inputs": [["name": "image", "datatype": "BYTES", "shape": [1], "parameters": ["binary_data_size": png.count + 4]]],
                           "outputs": [["name": "depth", "parameters": ["binary_data": false]], ["name": "pointcloud"]]])
        let r = try InferRequest(body: header + [UInt8(png.count), 0, 0, 0] + png, headerLength: header.count, maxPixels: 1 << 20)
        guard case let .image(bytes) = r.input else { return XCTFail("not an image") }
        XCTAssertEqual(bytes, png)
        XCTAssertEqual(r.id, "r1")
        XCTAssertEqual(r.outputNames, ["depth", "pointcloud"])
        XCTAssertFalse(r.binary("depth"))
        XCTAssertTrue(r.binary("pointcloud"))
        XCTAssertEqual(r.fileKinds, [.pointcloud])
        let query = Dictionary(uniqueKeysWithValues: r.query)
        XCTAssertEqual(query, ["fx": "700", "fast": "true", "timeout_ms": "3"])  // microseconds, rounded up to ms
    }

    func testPixelsFromNestedJSONData() throws {
        let rows = (0..<32).map { y in (0..<33).map { x in [x % 256, y, 7] } }
        let r = try InferRequest(body: json(["inputs": [["name": "pixels", "datatype": "UINT8", "shape": [1, 32, 33, 3], "data": rows]]]),
                                 headerLength: nil, maxPixels: 1 << 20)
        guard case let .pixels(image) = r.input else { return XCTFail("not pixels") }
        XCTAssertEqual([image.width, image.height], [33, 32])
        XCTAssertEqual(Array(image.pixels[(33 * 3)..<(33 * 3 + 6)]), [0, 1, 7, 1, 1, 7])
        XCTAssertEqual(r.outputNames, ["segmentation", "depth"])
    }

    func testEveryMistakeIsA4xxNamingIt() {
        let image: [String: Any] = ["name": "image", "datatype": "BYTES", "shape": [1], "data": ["x"]]
        let cases: [([UInt8], Int?, Int, String)] = [
            (Array("[1]".utf8), nil, 400, "JSON object"),
            (json(["inputs": [image, image]]), nil, 400, "one tensor"),
            (json(["inputs": [image], "parameters": ["bogus": 1]]), nil, 400, "unknown parameter 'bogus'"),
            (json(["inputs": [image], "parameters": ["outputs": "depth"]]), nil, 400, "outputs list"),
            (json(["inputs": [image], "parameters": ["binary_data_output": 1]]), nil, 400, "true or false"),
            (json(["inputs": [image], "outputs": [["name": "depth"], ["name": "depth"]]]), nil, 400, "twice"),
            (json(["inputs": [image], "outputs": [["name": "colour"]]]), nil, 400, "unknown output"),
            (json(["inputs": [["name": "image", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]]]]), nil, 400, "batches"),
            (json(["inputs": [["name": "pixels", "datatype": "UINT8", "shape": [4000, 4000, 3], "data": []]]]), nil, 413, "limit"),
            (json(["inputs": [["name": "pixels", "datatype": "UINT8", "shape": [32, 32, 3], "data": [1, 2]]]]), nil, 400, "needs 3072"),
            (json(["inputs": [["name": "pixels", "datatype": "UINT8", "shape": [32, 32, 3], "data": [300]]]]), nil, 400, "0-255"),
            (json(["inputs": [["name": "tensor", "datatype": "FP32", "shape": [1]]]]), nil, 400, "unknown input"),
            (json(["inputs": [image]]) + [1, 2], nil, 400, "JSON object"),
            (json(["inputs": [image]]) + [1, 2], Int?(json(["inputs": [image]]).count), 400, "after the inputs"),
            (json(["inputs": [image]]), 10_000, 400, "does not fit"),
        ]
        for (body, length, status, says) in cases {
            XCTAssertThrowsError(try InferRequest(body: body, headerLength: length, maxPixels: 1 << 20), says) { error in
                guard let p = error as? Problem else { return XCTFail("\(error)") }
                XCTAssertEqual(p.status, status, p.detail)
                XCTAssertTrue(p.detail.contains(says), "\(says): \(p.detail)")
            }
        }
    }

    func testJSONDataReadsBackAsTheSameValues() throws {
        let labels: [UInt8] = [0, 7, 10, 99, 100, 255]
        XCTAssertEqual(String(decoding: InferTensor(name: "s", shape: [6], elements: .uint8(labels)).jsonData, as: UTF8.self),
                       "[0,7,10,99,100,255]")
        let floats: [Float] = [0, -1.5, 3.4028235e38, 1e-7, 0.1, 12.345678, .nan, .infinity]
        let text = InferTensor(name: "d", shape: [8], elements: .float(floats)).jsonData
        let back = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text)) as? [Any])
        for (f, v) in zip(floats.prefix(6), back) { XCTAssertEqual(Float((v as! NSNumber).doubleValue), f) }
        XCTAssertTrue(back[6] is NSNull && back[7] is NSNull)
    }

    func testResponseHeaderCountsTheJSONAndBinaryFollowsInOrder() throws {
        let tensors = [InferTensor(name: "segmentation", shape: [2], elements: .uint8([3, 4])),
                       InferTensor(name: "depth", shape: [1], elements: .float([2.5])),
                       InferTensor(name: "pointcloud", shape: [1], elements: .file([9, 9, 9]))]
        let r = try InferResponse.encode(tensors, binary: { $0 == "depth" }, modelName: "m", id: "x\"y")
        let n = try XCTUnwrap(Int(r.headers.first { $0.0 == "Inference-Header-Content-Length" }!.1))
        let top = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.body[..<n])) as? [String: Any])
        XCTAssertEqual(top["id"] as? String, "x\"y")
        let outputs = try XCTUnwrap(top["outputs"] as? [[String: Any]])
        XCTAssertEqual(outputs.map { $0["name"] as? String }, ["segmentation", "depth", "pointcloud"])
        XCTAssertEqual(outputs[0]["data"] as? [Int], [3, 4])
        XCTAssertEqual(Array(r.body[n...]), [0, 0, 0x20, 0x40, 3, 0, 0, 0, 9, 9, 9])  // 2.5f, then a length-prefixed file
    }
}
