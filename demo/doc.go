// Package demo is the built-in demo origin that "make run" starts next to an
// edgepush node: a live counter page modelled on Fanout's Live Counter demo.
// It is a plain net/http origin that answers with GRIP response headers (SSE,
// HTTP streaming and long-polling holds) and publishes each increment through
// the node's Pushpin-compatible publish API; it does not proxy or hold
// connections itself.
package demo
