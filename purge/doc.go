// Package purge is the combined purge-and-publish operation's policy: a
// per-key rate limit that folds a burst of purges of one key into one
// trailing purge that always runs, and the control API's request and
// response shapes for /purge/ and /purge-publish/.
//
// It applies purges through a Purger it is handed (the node's cache) and
// does not publish: the node publishes after the purges of the same call.
package purge
