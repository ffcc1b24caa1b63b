// Package fanout delivers published messages to held connections.
//
// It owns the channel registry (a sharded Hub), each connection's bounded
// queue (Conn), and the writer pool that turns queued frames into as few
// non-blocking socket writes as possible, disconnecting slow consumers. It
// does not know any wire format: a Transport turns a Message into bytes, and
// a Message encodes itself at most once per kind of frame.
package fanout
