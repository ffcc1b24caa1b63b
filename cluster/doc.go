// Package cluster joins edgepush nodes into a tier: hashicorp/memberlist
// for membership, node metadata and failure detection, and both halves of
// the operations protocol that carries every publish and purge to every
// other alive member.
//
// Sending: Broadcast numbers an operation and delivers it directly, one
// hop, over kept-alive HTTP to each member's control address, with a
// bounded queue and retries per peer for a bounded retry window; what is
// dropped undelivered is counted by reason. A member declared dead keeps
// its queue for the window, and members rejoin the ones they lost, so a
// partition that heals delivers what was queued (see partition.go).
//
// Membership: memberlist with one of its presets (Config.Profile: LAN,
// WAN, local); each member's metadata carries its control address,
// version, region and zone.
//
// Receiving: ServeOps is the handler for POST OpsPath on the control
// listener; it checks the tier token and applies each operation once
// through Config.Handler, de-duplicating by (source, incarnation,
// sequence). Handlers never forward: delivery is one hop.
//
// Anti-entropy: operations that every member must eventually apply even if
// direct delivery failed (purges) are kept, in the form Config.Remember
// chooses, in a bounded op log that members exchange at every memberlist
// push/pull; a member applies, through the same Handler, the entries it
// has not seen and that are younger than Config.LogAge, so one that was
// partitioned or lost its queue catches up. Each operation ID is applied
// at most once, whichever way it arrives.
//
// Shielding (shield.go): ShieldFor picks, by rendezvous hashing over the
// alive members that may shield (Config.Shield, in their metadata), the
// member that fetches a cache key from the origin for the tier, skipping
// one that failed a request in the last Config.ShieldRetry; AskShield
// carries a request to it (ShieldPath on its control listener, with the
// tier token). What a shield request means is the node's.
//
// It does not know what a publish or a purge means: operations are opaque
// kinds and JSON data, chosen by the caller, kept by Remember and handed to
// a Handler.
package cluster
