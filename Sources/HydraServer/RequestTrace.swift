import Foundation
import W3CTraceContext

/// The W3C Trace Context (https://www.w3.org/TR/trace-context/) of one request, parsed and written
/// by swift-w3c-trace-context: the caller's trace continued when its `traceparent` is valid, else a
/// new trace. The trace id goes into the request's log line and back to the client in `traceparent`
/// with this server's span id (and `tracestate` as given), so a caller's tracing joins Hydra's logs
/// without Hydra exporting spans (docs/OPERATIONS.md says what exporting would take).
struct RequestTrace: Sendable {
    /// This request's span in Hydra, in the caller's trace or a new one.
    let context: TraceContext
    /// The caller's span, nil when the trace starts here.
    let parentID: String?

    /// `traceparent` must be the request's only such header (two are as invalid as a malformed one).
    init(traceparent: String?, tracestate: String?) {
        var parent: TraceContext?
        if let traceparent {
            let header = traceparent.trimmingCharacters(in: [" ", "\t"])
            // A tracestate that cannot be read is dropped; the traceparent still counts.
            parent = (try? TraceContext(traceParentHeaderValue: header, traceStateHeaderValue: tracestate))
                ?? (try? TraceContext(traceParentHeaderValue: header))
        }
        if let parent {
            context = TraceContext(traceID: parent.traceID, spanID: .random(), flags: parent.flags, state: parent.state)
            parentID = parent.spanID.description
        } else {
            context = TraceContext(traceID: .random(), spanID: .random(), flags: [], state: TraceState())
            parentID = nil
        }
    }

    var traceID: String { context.traceID.description }
    var spanID: String { context.spanID.description }

    /// Response headers carrying the context back.
    var headers: [(String, String)] {
        [("traceparent", context.traceParentHeaderValue)] + (context.traceStateHeaderValue.map { [("tracestate", $0)] } ?? [])
    }
}
