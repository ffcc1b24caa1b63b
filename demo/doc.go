// Package demo is the built-in demo origin that "make run" starts next to an
// edgepush node: a live counter page modelled on Fanout's Live Counter demo.
// It is a plain net/http origin that answers with GRIP response headers (SSE,
// HTTP streaming and long-polling holds) and publishes each increment through
// the node's Pushpin-compatible publish API; it does not proxy or hold
// connections itself.
//
// Demo runs it as "edgepush -demo" does, with a backend beside it: the page's
// origin switch takes the origin down (its port refuses connections) and
// brings it back, so that a user sees new tabs open and update from the
// node's cache while the origin is down; the backend, which the node routes
// BackendPath to, takes the switch and the +1 clicks and publishes through
// the node, not through the origin.
package demo
