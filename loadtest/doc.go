// Package loadtest is edgepush's load generator: it measures a GRIP push
// proxy (edgepush or Pushpin) the way a fleet of subscribers sees it.
//
// Run opens Config.Conns subscriber connections to Config.URL with bounded
// setup concurrency (optionally spreading their source addresses over
// 127.0.0.1 … 127.0.0.K so one machine can hold more connections than one
// address has ephemeral ports), then publishes Config.Msgs messages at
// Config.Rate per second through the proxy's Pushpin-compatible publish API
// (POST {"items":[...]} to Config.PublishURL), so the proxy's publish path
// is part of what is measured. Each message carries a sequence number and
// the wall-clock time of its publish:
//
//	{"seq":N,"ts":UNIXNANO}
//
// sent as the http-stream content (a line for HTTP streaming, an SSE "data:"
// event for Server-Sent Events) or as the http-response body (long-poll).
// Every connection records, per message, delivery latency = receive time −
// ts into an HdrHistogram, and keeps a bitmap of the sequence numbers it
// saw, from which lost (never arrived before Config.Settle ran out after
// the last publish), duplicated and out-of-order deliveries are counted.
// Connection setup latency (dial to the first body byte for streams) and
// rate, publish round trips, and the RSS and CPU time of the processes in
// Config.PIDs (sampled from /proc) complete the Report, which prints as a
// table (Report.WriteTable) or as one JSON object.
//
// The client shares the machine with the server it measures, so it is kept
// lean: one goroutine per connection with small buffers, lines parsed in
// place, no allocation per delivered message.
//
// Long-poll clients re-poll after each answer and can miss a message that
// is published while they re-poll; such messages are counted as lost, as
// they are for a real long-poll client without recovery.
//
// Transports live behind the small subscriber interface (see transport.go):
// HTTP streaming, SSE, long-poll and WebSocket; adding one means
// implementing it and choosing the publish format its connections receive.
//
// One process holds at most as many connections as its open-file limit
// allows. For more (a tier of nodes on one box, say), run several load
// processes: one publishes, the others set Config.ExternalPublish and only
// measure what reaches their connections.
//
// NewOrigin is a GRIP test origin to put behind the proxy under test; the
// edgepush-loadtest command serves it with "edgepush-loadtest origin".
//
// The load generator targets loopback addresses only: Run refuses a
// subscriber or publish URL whose host is not a loopback address.
package loadtest
