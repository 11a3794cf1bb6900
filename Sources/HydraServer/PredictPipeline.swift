import Foundation
import HydraEngine
import HydraImage
import HydraOutputs

/// What one worker does with a predict job, off the event loop: find the image in the body,
/// decode it, run the replica, render the outputs and frame the response.
final class PredictPipeline {
    let replica: ModelReplica
    let renderer: Renderer
    let modelName: String
    let limits: ImageLimits

    init(model: Model, modelName: String, threads: Int, maxPixels: Int) throws {
        replica = try ModelReplica(model: model, threads: threads)
        renderer = Renderer(threads: threads)
        self.modelName = modelName
        limits = ImageLimits(maxPixels: maxPixels)
    }

    func process(_ job: Job) -> HTTPResponse {
        do {
            return try respond(job)
        } catch let p as Problem {
            return p.response(requestID: job.requestID)
        } catch {
            job.outcome = "error"
            return Problem(500, "internal error: \(error)").response(requestID: job.requestID)
        }
    }

    private func respond(_ job: Job) throws -> HTTPResponse {
        let t0 = MonotonicClock.now()
        let bytes = try RequestImage.bytes(body: job.body, contentType: job.contentType)
        guard ImageDecoder.sniff(bytes) != nil else {
            throw Problem(415, "the image is neither PNG nor JPEG (by its signature)")
        }
        let image: RGBImage
        do { image = try ImageDecoder.decode(bytes, limits: limits) } catch let e as ImageError {
            switch e {
            case .tooLarge: throw Problem(413, e.description)
            case .unknownFormat: throw Problem(415, e.description)
            case .corrupt, .empty: throw Problem(422, e.description)
            }
        }
        guard image.width >= 32, image.height >= 32 else {
            throw Problem(422, "image is \(image.width)x\(image.height); both sides must be at least 32 pixels")
        }
        let t1 = MonotonicClock.now()
        let prediction = try image.pixels.withUnsafeBufferPointer { px -> Prediction in
            do { return try replica.run(rgb: px, width: image.width, height: image.height) } catch let e as EngineError {
                if case .inputTooSmall = e { throw Problem(422, e.description) }
                throw e
            }
        }
        let t2 = MonotonicClock.now()
        var parts: [RenderedPart]
        do {
            parts = try renderer.render(image: image, prediction: prediction, model: replica.model, modelName: modelName,
                                        request: job.parameters.request,
                                        timings: [("queue_wait", job.queueWaitSeconds * 1e3), ("decode", (t1 - t0) * 1e3)])
        } catch let e as RenderError { throw Problem(400, e.description) }
        let response = try Self.frame(parts, accept: job.accept, requestID: job.requestID, modelName: modelName)
        let t3 = MonotonicClock.now()
        job.inferenceSeconds = t2 - t1
        job.encodeSeconds = t3 - t2
        return response
    }

    // MARK: response framing

    /// One output: its bare body. Several: multipart/mixed (RFC 2046), or multipart/form-data when
    /// the client's Accept asks for it (what browsers' `Response.formData()` parses). An Accept that
    /// names one concrete type picks the single output of that type.
    static func frame(_ all: [RenderedPart], accept: String?, requestID: String, modelName: String) throws -> HTTPResponse {
        var parts = all
        let accepted = (accept ?? "").split(separator: ",").map { mediaType($0) }.filter { !$0.isEmpty }
        let wantsForm = accepted.contains("multipart/form-data")
        let concrete = accepted.filter { $0 != "*/*" && !$0.hasPrefix("multipart/") }
        if !wantsForm, !accepted.contains("*/*"), !accepted.contains("multipart/mixed"), !concrete.isEmpty, parts.count > 1 {
            let matching = parts.filter { concrete.contains($0.contentType) }
            guard matching.count == 1 else {
                throw Problem(406, matching.isEmpty
                    ? "none of the requested outputs (\(parts.map(\.name).joined(separator: ", "))) has a type in Accept: \(concrete.joined(separator: ", "))"
                    : "Accept \(concrete.joined(separator: ", ")) matches several outputs (\(matching.map(\.name).joined(separator: ", "))); request one output")
            }
            parts = matching
        }
        var common: [(String, String)] = [("X-Request-Id", requestID), ("X-Model", modelName)]
        if parts.count == 1 {
            let p = parts[0]
            common += [("Content-Type", p.contentType),
                       ("Content-Disposition", "inline; filename=\"\(p.name)\(extensionOf(p.fileSuffix))\"")] + p.headers
            return HTTPResponse(status: 200, headers: common, body: p.bytes)
        }
        let boundary = "hydra-" + (0..<4).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max)) }.joined()
        var body: [UInt8] = []
        body.reserveCapacity(parts.reduce(0) { $0 + $1.bytes.count + 256 })
        for p in parts {
            var head = "--\(boundary)\r\n"
            let file = "\(p.name)\(extensionOf(p.fileSuffix))"
            head += "Content-Disposition: \(wantsForm ? "form-data" : "attachment"); name=\"\(p.name)\"; filename=\"\(file)\"\r\n"
            head += "Content-Type: \(p.contentType)\r\n"
            for (k, v) in p.headers { head += "\(k): \(v)\r\n" }
            head += "\r\n"
            body += Array(head.utf8)
            body += p.bytes
            body += Array("\r\n".utf8)
        }
        body += Array("--\(boundary)--\r\n".utf8)
        let type = wantsForm ? "multipart/form-data" : "multipart/mixed"
        return HTTPResponse(status: 200, headers: common + [("Content-Type", "\(type); boundary=\(boundary)")], body: body)
    }

    /// ".png" from "_segmentation.png", ".ply" from ".ply".
    static func extensionOf(_ suffix: String) -> String {
        guard let dot = suffix.lastIndex(of: ".") else { return "" }
        return String(suffix[dot...])
    }
}

/// A worker's whole job on one request (find the image, decode, run, render, frame) without the
/// server around it: what `hydra bench --frame` times, so that the service's own cost can be
/// measured as the ratio of the two.
package final class InProcessPredictor {
    private let pipeline: PredictPipeline
    private let model: Model

    package init(model: Model, threads: Int, maxPixels: Int = 20_000_000) throws {
        self.model = model
        pipeline = try PredictPipeline(model: model, modelName: "default", threads: threads, maxPixels: maxPixels)
    }

    /// The HTTP response the service would send for this body and query.
    package func predict(body: [UInt8], contentType: String, query: String, accept: String? = nil) throws -> HTTPResponse {
        let request = HTTPRequest(method: "POST", target: "/v1/predict?" + query)
        let parameters = try PredictParameters(query: request.queryParameters(), model: model, defaultTimeoutMs: 60_000)
        let job = Job(connectionID: 0, requestID: "bench", body: body, contentType: contentType, accept: accept, parameters: parameters)
        return pipeline.process(job)
    }
}
