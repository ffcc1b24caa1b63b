// Package cluster joins edgepush nodes into a tier: hashicorp/memberlist
// for membership, node metadata and failure detection, and direct delivery
// of every publish and purge to every other alive member, one hop, over
// kept-alive HTTP to the member's control address, with a bounded queue and
// retries per peer and de-duplication by (source, sequence).
//
// It does not know what a publish or a purge means: operations are opaque
// bytes handed to a Handler.
package cluster
