// Package grip owns the GRIP wire format as Pushpin speaks it: it parses and
// formats GRIP response headers and application/grip-instruct bodies, publish
// items, WebSocket-over-HTTP events and "c:" control messages, and signs and
// verifies Grip-Sig JWTs. Everything here is a pure function of its inputs; the
// package does no I/O and keeps no state apart from the Signer's token cache.
package grip
