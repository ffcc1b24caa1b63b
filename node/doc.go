// Package node is the edgepush server: it accepts client connections,
// proxies them to the origin with a Grip-Sig, turns the origin's GRIP
// instructions into held connections (HTTP streams, SSE, long-polls), and
// serves the Pushpin-compatible control API (/publish/, /status), its
// Prometheus metrics (/metrics), status page and access log.
//
// It wires the other packages together; channel bookkeeping and delivery
// belong to fanout, the wire format to grip.
package node
