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

    init(model: Model, modelName: String, threads: Int, limits: WorkerLimits, precision: Precision = .f32) throws {
        replica = try ModelReplica(model: model, threads: threads, precision: precision)
        renderer = Renderer(threads: threads)
        self.modelName = modelName
        self.limits = limits
    }

    func process(_ job: Job) -> HTTPResponse {
        do {
            let body = try job.contentCoding.decode(job.body, limit: job.maxBodyBytes)
            switch job.kind {
            case .predict: return try respond(job, body: body)
            case let .infer(headerLength): return try infer(job, body: body, headerLength: headerLength).encoded(job.responseCoding)
            case .control: throw Problem(500, "a repository operation reached a worker")
            }
        } catch let p as Problem {
            return job.kind.isInfer ? p.inferenceError() : p.response(requestID: job.requestID)
        } catch {
            job.outcome = "error"
            let p = Problem(500, "internal error: \(error)")
            return job.kind.isInfer ? p.inferenceError() : p.response(requestID: job.requestID)
        }
    }

    /// A frame decoded and run through the network, with what the summary needs to say about it.
    private struct Ran {
        let image: RGBImage
        let prediction: Prediction
        let network: (width: Int, height: Int)
        var timings: [(String, Double)]
        let maxNetworkPixels: Int

        var note: String? {
            guard network != (image.width, image.height) else { return nil }
            return "the \(image.width)x\(image.height) frame was shrunk to \(network.width)x\(network.height) for the network "
                + "(--max-network-pixels \(maxNetworkPixels)); the outputs are at the frame's size"
        }
    }

    private func respond(_ job: Job, body: [UInt8]) throws -> HTTPResponse {
        let t0 = MonotonicClock.now()
        let bytes = try RequestImage.bytes(body: body, contentType: job.contentType)
        let request = job.parameters.request
        let image = try decode(bytes, request: request)
        var ran = try run(image, job: job, decodeSeconds: MonotonicClock.now() - t0)
        let t3 = MonotonicClock.now()
        let dense = renderer.upsampler.upsample(ran.prediction, width: image.width, height: image.height, fast: request.fast)
        let t4 = MonotonicClock.now()
        job.upsampleSeconds = t4 - t3
        ran.timings.append(("upsample", job.upsampleSeconds * 1e3))
        let parts = try render(ran, request: request, dense: dense)
        var response = try Self.frame(parts, accept: job.accept, requestID: job.requestID, modelName: modelName)
        response.logFields["outputs"] = request.outputs.map(\.rawValue).joined(separator: ",")
        job.encodeSeconds = MonotonicClock.now() - t4
        return response
    }

    /// Decodes an encoded frame after judging everything its header tells (pixels, size, the
    /// working memory of `request`) before any pixel memory exists.
    private func decode(_ bytes: [UInt8], request: OutputRequest) throws -> RGBImage {
        guard ImageDecoder.sniff(bytes) != nil else {
            throw Problem(415, "the image is neither PNG nor JPEG (by its signature)")
        }
        let imageLimits = ImageLimits(maxPixels: limits.maxPixels)
        do {
            let header = try ImageDecoder.size(bytes)
            try imageLimits.check(width: header.width, height: header.height)
            try admit(width: header.width, height: header.height, format: header.format, request: request)
            return try ImageDecoder.decode(bytes, limits: imageLimits)
        } catch let e as ImageError {
            switch e {
            case .tooLarge: throw Problem(413, e.description)
            case .unknownFormat: throw Problem(415, e.description)
            case .corrupt, .empty: throw Problem(422, e.description)
            }
        }
    }

    /// Refuses a frame too small for the network, or one whose outputs would not fit a worker's memory.
    private func admit(width: Int, height: Int, format: ImageDecoder.Format, request: OutputRequest) throws {
        guard width >= 32, height >= 32 else {
            throw Problem(422, "image is \(width)x\(height); both sides must be at least 32 pixels")
        }
        let network = NetworkInput.size(width: width, height: height, maxPixels: limits.maxNetworkPixels)
        let model = replica.model
        let need = request.workingBytes(width: width, height: height, network: network, numClasses: model.architecture.numClasses,
                                        hasNormals: model.architecture.hasNormals, format: format)
        guard need <= limits.workingBytes else {
            throw Problem(413, "a \(width)x\(height) frame with outputs \(request.outputs.map(\.rawValue).joined(separator: ",")) "
                + "needs about \(need >> 20) MiB of working memory; a worker may hold \(limits.workingBytes >> 20) MiB "
                + "(--max-memory): send a smaller frame, fewer outputs or a larger stride")
        }
    }

    /// Runs the network, on the frame shrunk to `--max-network-pixels` when it is larger.
    private func run(_ image: RGBImage, job: Job, decodeSeconds: Double) throws -> Ran {
        let t1 = MonotonicClock.now()
        job.decodeSeconds = decodeSeconds
        var timings = [("queue_wait", job.queueWaitSeconds * 1e3), ("decode", decodeSeconds * 1e3)]
        let network = NetworkInput.size(width: image.width, height: image.height, maxPixels: limits.maxNetworkPixels)
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
        job.inferenceSeconds = MonotonicClock.now() - t2
        return Ran(image: image, prediction: prediction, network: network, timings: timings, maxNetworkPixels: limits.maxNetworkPixels)
    }

    private func render(_ ran: Ran, request: OutputRequest, dense: DenseOutputs? = nil) throws -> [RenderedPart] {
        do {
            return try renderer.render(image: ran.image, prediction: ran.prediction, model: replica.model, modelName: modelName,
                                       request: request, timings: ran.timings,
                                       networkInput: .init(width: ran.network.width, height: ran.network.height), note: ran.note,
                                       dense: dense)
        } catch let e as RenderError { throw Problem(400, e.description) }
    }

    // MARK: the open inference protocol

    /// `POST /v2/models/{name}/infer`: the same decode, network and outputs as /v1, answered as tensors.
    private func infer(_ job: Job, body: [UInt8], headerLength: Int?) throws -> HTTPResponse {
        let t0 = MonotonicClock.now()
        let model = replica.model
        let req = try InferRequest(body: body, headerLength: headerLength, maxPixels: limits.maxPixels)
        let names = req.outputNames
        if names.contains("normals"), !model.architecture.hasNormals {
            throw Problem(400, "normals need three-task weights; model \(modelName) has two heads")
        }
        // The /v1 parameters, given as request parameters; Triton's timeout counts from arrival.
        let parameters = try PredictParameters(query: req.query, model: model, defaultTimeoutMs: job.parameters.timeoutMs)
        if MonotonicClock.now() > job.enqueuedAt + Double(parameters.timeoutMs) / 1000 {
            job.outcome = "deadline"
            throw Problem(504, "the request's timeout passed while it waited in the queue")
        }
        // The dense tensors cost what /v1's segmentation and raw depth cost; files what /v1's do.
        var request = parameters.request
        var kinds = req.fileKinds
        if names.contains("segmentation"), !kinds.contains(.segmentation) { kinds.append(.segmentation) }
        if names.contains("depth"), !kinds.contains(.depth) { kinds.append(.depth) }
        request.outputs = kinds.isEmpty ? [.segmentation] : kinds
        let image: RGBImage
        switch req.input {
        case let .image(bytes): image = try decode(bytes, request: request)
        case let .pixels(pixels):
            try admit(width: pixels.width, height: pixels.height, format: .png, request: request)
            image = pixels
        }
        let ran = try run(image, job: job, decodeSeconds: MonotonicClock.now() - t0)
        var t3 = MonotonicClock.now()
        let (w, h) = (image.width, image.height)
        let needsDense = names.contains { ["segmentation", "depth", "normals"].contains($0) } || !req.fileKinds.isEmpty
        let dense = needsDense ? renderer.upsampler.upsample(ran.prediction, width: w, height: h, fast: request.fast) : nil
        job.upsampleSeconds = MonotonicClock.now() - t3
        t3 += job.upsampleSeconds
        var files: [String: [UInt8]] = [:]
        if !req.fileKinds.isEmpty {
            request.outputs = req.fileKinds
            for part in try render(ran, request: request, dense: dense) {
                if let name = InferRequest.fileOutputs.first(where: { $0.value == part.kind && part.name == $0.value.rawValue })?.key {
                    files[name] = part.bytes
                }
            }
        }
        let p = ran.prediction
        let tensors: [InferTensor] = names.map { name in
            switch name {
            case "segmentation": return InferTensor(name: name, shape: [h, w], elements: .uint8(dense!.labels))
            case "depth": return InferTensor(name: name, shape: [h, w], elements: .float(dense!.depth))
            case "normals": return InferTensor(name: name, shape: [3, h, w], elements: .float(dense!.normals ?? []))
            case "logits": return InferTensor(name: name, shape: [p.numClasses, p.height, p.width], elements: .float(p.logits))
            default: return InferTensor(name: name, shape: [1], elements: .file(files[name] ?? []))
            }
        }
        var response = try InferResponse.encode(tensors, binary: req.binary, modelName: modelName, id: req.id)
        response.logFields["outputs"] = names.joined(separator: ",")
        job.encodeSeconds = MonotonicClock.now() - t3
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

    package init(model: Model, threads: Int, limits: WorkerLimits = WorkerLimits(maxPixels: 20_000_000),
                 precision: Precision = .f32) throws {
        self.model = model
        pipeline = try PredictPipeline(model: model, modelName: "default", threads: threads, limits: limits, precision: precision)
    }

    /// The HTTP response the service would send for this body and query.
    package func predict(body: [UInt8], contentType: String, query: String, accept: String? = nil) throws -> HTTPResponse {
        let request = HTTPRequest(method: "POST", target: "/v1/predict?" + query)
        let parameters = try PredictParameters(query: request.queryParameters(), model: model, defaultTimeoutMs: 60_000)
        let job = Job(connectionID: 0, requestID: "bench", body: body, contentType: contentType, accept: accept, parameters: parameters)
        return pipeline.process(job)
    }
}
