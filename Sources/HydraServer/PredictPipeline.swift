import Foundation
import HydraEngine
import HydraImage
import HydraOutputs

/// What one worker may hold for one request (from `MemoryPlan`).
package struct WorkerLimits: Sendable {
    /// Largest frame accepted.
    package var maxPixels: Int
    /// Largest input the network runs at; larger frames are shrunk for it.
    package var maxNetworkPixels: Int
    /// Bytes a request may hold beyond the activations (`OutputRequest.workingBytes`).
    package var workingBytes: Int

    package init(maxPixels: Int, maxNetworkPixels: Int = .max, workingBytes: Int = .max) {
        self.maxPixels = maxPixels
        self.maxNetworkPixels = maxNetworkPixels
        self.workingBytes = workingBytes
    }
}

/// What one worker does with a predict job, off the event loop: find the image in the body,
/// decode it, run the replica, render the outputs and frame the response.
final class PredictPipeline {
    let replica: ModelReplica
    let renderer: Renderer
    let modelName: String
    let limits: WorkerLimits

    init(model: Model, modelName: String, threads: Int, limits: WorkerLimits) throws {
        replica = try ModelReplica(model: model, threads: threads)
        renderer = Renderer(threads: threads)
        self.modelName = modelName
        self.limits = limits
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
        let imageLimits = ImageLimits(maxPixels: limits.maxPixels)
        let request = job.parameters.request
        let model = replica.model
        let image: RGBImage, network: (width: Int, height: Int)
        do {
            // Everything that can be judged from the header is, before any pixel memory exists.
            let header = try ImageDecoder.size(bytes)
            try imageLimits.check(width: header.width, height: header.height)
            guard header.width >= 32, header.height >= 32 else {
                throw Problem(422, "image is \(header.width)x\(header.height); both sides must be at least 32 pixels")
            }
            network = NetworkInput.size(width: header.width, height: header.height, maxPixels: limits.maxNetworkPixels)
            let need = request.workingBytes(width: header.width, height: header.height, network: network,
                                            numClasses: model.architecture.numClasses,
                                            hasNormals: model.architecture.hasNormals, format: header.format)
            guard need <= limits.workingBytes else {
                throw Problem(413, "a \(header.width)x\(header.height) frame with outputs \(request.outputs.map(\.rawValue).joined(separator: ",")) "
                    + "needs about \(need >> 20) MiB of working memory; a worker may hold \(limits.workingBytes >> 20) MiB "
                    + "(--max-memory): send a smaller frame, fewer outputs or a larger stride")
            }
            image = try ImageDecoder.decode(bytes, limits: imageLimits)
        } catch let e as ImageError {
            switch e {
            case .tooLarge: throw Problem(413, e.description)
            case .unknownFormat: throw Problem(415, e.description)
            case .corrupt, .empty: throw Problem(422, e.description)
            }
        }
        let t1 = MonotonicClock.now()
        var timings = [("queue_wait", job.queueWaitSeconds * 1e3), ("decode", (t1 - t0) * 1e3)]
        var networkImage = image
        if network != (image.width, image.height) {
            networkImage = renderer.upsampler.downscale(image, toWidth: network.width, height: network.height)
            timings.append(("shrink_for_network", (MonotonicClock.now() - t1) * 1e3))
        }
        let t2 = MonotonicClock.now()
        let prediction = try networkImage.pixels.withUnsafeBufferPointer { px -> Prediction in
            do { return try replica.run(rgb: px, width: networkImage.width, height: networkImage.height) } catch let e as EngineError {
                if case .inputTooSmall = e { throw Problem(422, e.description) }
                throw e
            }
        }
        networkImage = RGBImage(width: 1, height: 1, pixels: [0, 0, 0])
        let t3 = MonotonicClock.now()
        var parts: [RenderedPart]
        do {
            var note: String?
            if network != (image.width, image.height) {
                note = "the \(image.width)x\(image.height) frame was shrunk to \(network.width)x\(network.height) for the network "
                    + "(--max-network-pixels \(limits.maxNetworkPixels)); the outputs are at the frame's size"
            }
            parts = try renderer.render(image: image, prediction: prediction, model: model, modelName: modelName,
                                        request: request, timings: timings,
                                        networkInput: .init(width: network.width, height: network.height), note: note)
        } catch let e as RenderError { throw Problem(400, e.description) }
        let response = try Self.frame(parts, accept: job.accept, requestID: job.requestID, modelName: modelName)
        let t4 = MonotonicClock.now()
        job.inferenceSeconds = t3 - t2
        job.encodeSeconds = t4 - t3
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

    package init(model: Model, threads: Int, limits: WorkerLimits = WorkerLimits(maxPixels: 20_000_000)) throws {
        self.model = model
        pipeline = try PredictPipeline(model: model, modelName: "default", threads: threads, limits: limits)
    }

    /// The HTTP response the service would send for this body and query.
    package func predict(body: [UInt8], contentType: String, query: String, accept: String? = nil) throws -> HTTPResponse {
        let request = HTTPRequest(method: "POST", target: "/v1/predict?" + query)
        let parameters = try PredictParameters(query: request.queryParameters(), model: model, defaultTimeoutMs: 60_000)
        let job = Job(connectionID: 0, requestID: "bench", body: body, contentType: contentType, accept: accept, parameters: parameters)
        return pipeline.process(job)
    }
}
