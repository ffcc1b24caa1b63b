package node

import (
	"testing"

	"github.com/fasthttp/websocket"
)

// Message filters on WebSocket connections: c:subscribe's "filters" run
// over each ws-message publish with the connection's meta (c:set-meta,
// Set-Meta-* answer headers) and the item's meta. A message a filter
// drops is skipped; the connection's messages keep their order, so the
// next one read proves the dropped one was not sent.

// wsMetaItem is a ws-message item on channel with publish meta.
func wsMetaItem(channel, content string, meta map[string]string) map[string]any {
	it := wsItem(channel, content)
	it["meta"] = meta
	return it
}

// wsFilteredItem is a ws-message item whose format lists content-filters.
func wsFilteredItem(channel, content string, contentFilters []string) map[string]any {
	return map[string]any{"channel": channel, "formats": map[string]any{
		"ws-message": map[string]any{"content": content, "content-filters": contentFilters}}}
}

// expectText reads the next message and checks it.
func expectText(t *testing.T, c *websocket.Conn, want string) {
	t.Helper()
	if got := readText(t, c); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestWSFilters: one filter on a subscription, the connection's meta set
// by c:set-meta. skip-self: a message whose publish meta "sender" is the
// connection's "user" is not sent to it; skip-users: nor one whose
// "skip_users" names it; build-id renders %I as the meta "id_format"
// (WebSocket channels have no last id) and %% as %.
func TestWSFilters(t *testing.T) {
	for _, tc := range []struct {
		filter, metaName, metaValue string
		items                       []map[string]any
		want                        string // the first message the client gets
	}{
		{"skip-self", "user", "alice", []map[string]any{
			wsMetaItem("room", "from alice", map[string]string{"sender": "alice"}),
			wsMetaItem("room", "from bob", map[string]string{"sender": "bob"}),
		}, "from bob"},
		{"skip-users", "user", "alice", []map[string]any{
			wsMetaItem("room", "not for alice", map[string]string{"skip_users": "bob, alice"}),
			wsMetaItem("room", "for alice", map[string]string{"skip_users": "bob,carol"}),
		}, "for alice"},
		{"build-id", "id_format", "conn-7", []map[string]any{wsItem("room", "id=%I, 100%%")}, "id=conn-7, 100%"},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			o := &scriptedWSOrigin{open: []string{
				`c:{"type":"set-meta","name":"` + tc.metaName + `","value":"` + tc.metaValue + `"}`,
				`c:{"type":"subscribe","channel":"room","filters":["` + tc.filter + `"]}`, "m:welcome",
			}}
			n := startNode(t, o)
			c := dialScripted(t, n, "welcome")
			n.waitSubscribers(t, "room", 1)
			for _, it := range tc.items {
				n.publish(t, it)
			}
			expectText(t, c, tc.want)
		})
	}
}

// TestWSFilterRequireSub: with require-sub, a message whose publish meta
// "require_sub" names a channel goes only to connections subscribed to
// it: channels subscribed before the filter and after it, without
// filters, count; an unsubscribed one no longer does.
func TestWSFilterRequireSub(t *testing.T) {
	o := &scriptedWSOrigin{
		open: []string{
			`c:{"type":"subscribe","channel":"vip"}`,
			`c:{"type":"subscribe","channel":"room","filters":["require-sub"]}`, "m:welcome",
		},
		replies: map[string][]string{
			"join gold": {`c:{"type":"subscribe","channel":"gold"}`, "m:joined"},
			"leave vip": {`c:{"type":"unsubscribe","channel":"vip"}`, "m:left"},
		},
	}
	n := startNode(t, o)
	c := dialScripted(t, n, "welcome")
	n.waitSubscribers(t, "room", 1)
	n.publish(t, wsMetaItem("room", "gold only", map[string]string{"require_sub": "gold"}))
	n.publish(t, wsMetaItem("room", "vip only", map[string]string{"require_sub": "vip"}))
	expectText(t, c, "vip only")
	say(t, c, "join gold")
	expectText(t, c, "joined")
	say(t, c, "leave vip")
	expectText(t, c, "left")
	n.publish(t, wsMetaItem("room", "vip again", map[string]string{"require_sub": "vip"}))
	n.publish(t, wsMetaItem("room", "gold now", map[string]string{"require_sub": "gold"}))
	expectText(t, c, "gold now")
}

// TestWSFilterVarSubst: var-subst renders %(name)s with the connection's
// meta, whether c:set-meta or a Set-Meta-* header set it (names
// lower-cased), and %% as %; the message is encoded for this client
// alone, compressed when permessage-deflate was negotiated. A message
// whose variable is missing is dropped.
func TestWSFilterVarSubst(t *testing.T) {
	o := &scriptedWSOrigin{
		openHeader: map[string]string{"Set-Meta-Site": "edge"},
		open: []string{
			`c:{"type":"set-meta","name":"user","value":"alice"}`,
			`c:{"type":"subscribe","channel":"room","filters":["var-subst"]}`, "m:welcome",
		},
	}
	n := startNode(t, o, func(c *Config) { c.WSCompression = true })
	uncompressed := dialScripted(t, n, "welcome")
	deflated := dialScriptedWith(t, n, websocket.Dialer{EnableCompression: true}, "welcome")
	n.waitSubscribers(t, "room", 2)
	n.publish(t, wsItem("room", "hi %(nobody)s"))
	n.publish(t, wsItem("room", "hi %(user)s at %(site)s, 100%%"))
	for _, c := range []*websocket.Conn{uncompressed, deflated} {
		expectText(t, c, "hi alice at edge, 100%")
	}
}

// TestWSContentFilters: a ws-message format listing content-filters goes
// only to subscriptions whose content filters are exactly those: a
// connection without filters gets a format with an empty list and one
// with none, not the others; one that subscribes again with var-subst
// (which replaces the channel's filters) gets those listing var-subst.
func TestWSContentFilters(t *testing.T) {
	o := &scriptedWSOrigin{
		open: []string{`c:{"type":"subscribe","channel":"room"}`, "m:welcome"},
		replies: map[string][]string{"filter me": {
			`c:{"type":"subscribe","channel":"room","filters":["var-subst"]}`,
			`c:{"type":"set-meta","name":"user","value":"alice"}`, "m:filtered",
		}},
	}
	n := startNode(t, o)
	filtered := dialScripted(t, n, "welcome")
	plain := dialScripted(t, n, "welcome")
	n.waitSubscribers(t, "room", 2)
	say(t, filtered, "filter me")
	expectText(t, filtered, "filtered")
	n.publish(t,
		wsFilteredItem("room", "hi %(user)s", []string{"var-subst"}),
		wsFilteredItem("room", "build %I", []string{"build-id"}),
		wsFilteredItem("room", "empty list", []string{}),
		wsItem("room", "plain"))
	expectText(t, filtered, "hi alice")
	expectText(t, filtered, "plain")
	expectText(t, plain, "empty list")
	expectText(t, plain, "plain")
}
