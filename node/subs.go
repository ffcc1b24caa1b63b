package node

import (
	"slices"
	"strings"
	"sync"

	"github.com/edgepush/edgepush/grip"
)

// connSubs is what message filters and sequencing know of one held
// connection's subscriptions: per channel its filters and the id of the
// last message it has (when the channel is sequenced), and the
// connection's meta. A connection that needs none of it (no filters, no
// prev-id, no meta) has no connSubs and takes the fast path: one shared
// encoding of each message for every such connection, no lock.
type connSubs struct {
	mu    sync.Mutex
	meta  map[string]string // names lower-cased
	chans map[string]*subChan
}

// subChan is one channel of a connSubs.
type subChan struct {
	lastID  string
	tracked bool // sequenced: the subscription gave a prev-id
	filters []string
}

// newConnSubs returns the subscription state of a hold, or nil when the
// instructions name no filter, prev-id or meta.
func newConnSubs(in *grip.Instruct) *connSubs {
	needed := len(in.Meta) > 0
	for _, c := range in.Channels {
		needed = needed || c.PrevID != "" || len(c.Filters) > 0
	}
	if !needed {
		return nil
	}
	cs := &connSubs{meta: map[string]string{}, chans: make(map[string]*subChan, len(in.Channels))}
	cs.setMeta(in.Meta)
	for _, c := range in.Channels {
		cs.chans[c.Name] = &subChan{lastID: c.PrevID, tracked: c.PrevID != "", filters: c.Filters}
	}
	return cs
}

// setMeta merges meta (an empty value deletes); called with cs.mu held
// or before cs is shared.
func (cs *connSubs) setMeta(meta map[string]string) {
	for k, v := range meta {
		k = strings.ToLower(k)
		if v == "" {
			delete(cs.meta, k)
		} else {
			cs.meta[k] = v
		}
	}
}

// context returns the filter context of a message with publish meta
// pub; called with cs.mu held. The maps are cs's own, not copies.
func (cs *connSubs) context(pub map[string]string) *grip.FilterContext {
	ids := make(map[string]string, len(cs.chans))
	for name, c := range cs.chans {
		ids[name] = c.lastID
	}
	return &grip.FilterContext{SubMeta: cs.meta, PubMeta: pub, LastIDs: ids}
}

// filter runs the channel's filters over content for this connection;
// called with cs.mu held. ok is false when the message is not for it:
// a filter dropped it or failed, the format's content-filters are not the
// subscription's, or the connection is not subscribed to the channel.
func (cs *connSubs) filter(s *Server, channel string, item *grip.Item, formatFilters []string, content []byte) ([]byte, bool) {
	c := cs.chans[channel]
	if c == nil || !grip.ContentFiltersMatch(formatFilters, c.filters) {
		return nil, false
	}
	if len(c.filters) == 0 {
		return content, true
	}
	out, drop, err := grip.FilterMessage(c.filters, cs.context(item.Meta), content)
	if err != nil {
		s.log.Debug("message filter failed", "channel", channel, "id", item.ID, "err", err)
		return nil, false
	}
	return out, !drop
}

// filterResponse runs the response-content filters (build-id) of every
// subscription over a response body (initial data, a next link's body);
// called with cs.mu held.
func (cs *connSubs) filterResponse(body []byte) ([]byte, error) {
	var all []string
	for _, c := range cs.chans {
		all = append(all, c.filters...)
	}
	return grip.FilterResponse(all, cs.context(nil), body)
}

// gripLast lists "channel; last-id=ID" for every sequenced channel, in
// channel order: the Grip-Last headers of a recovery request. Called with
// cs.mu held.
func (cs *connSubs) gripLast() []string {
	var out []string
	for name, c := range cs.chans {
		if c.tracked {
			out = append(out, name+"; last-id="+c.lastID)
		}
	}
	slices.Sort(out)
	return out
}

// plainDelivers reports whether a connection without connSubs takes a
// format that lists content-filters: only when the list is empty, as no
// subscription filter is then expected.
func plainDelivers(formatFilters []string) bool {
	return len(formatFilters) == 0
}
