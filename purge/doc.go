// Package purge owns the control API's operations: publish, purge and
// purge-and-publish as one type (Op) with one decoding per kind and one
// Apply, used alike for calls from clients, operations from tier peers
// and purges the tier's log replays. It also owns the per-key purge rate
// limit (Limiter), which folds a burst of purges of one target into one
// trailing purge that always runs, and the /purge/ request and response
// shapes.
//
// It acts through small interfaces it is handed: a Purger (the node's
// cache), a Publisher (the node's hub) and a Forwarder (the tier). It
// does not know how any of them works.
package purge
