package node

import (
	"bytes"
	"testing"

	"github.com/edgepush/edgepush/cache"
	"github.com/edgepush/edgepush/grip"
)

// An OPEN answer's control messages are parsed once and found again by
// the events that carry them, whether the answer has one or several.
func TestOpenAnswerControls(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		evs := []grip.WSEvent{{Type: grip.WSEventOpen}}
		for i := range n {
			evs = append(evs, grip.WSEvent{Type: grip.WSEventText, Content: []byte(`c:{"type":"subscribe","channel":"ch` + string(rune('a'+i)) + `"}`)})
		}
		evs = append(evs, grip.WSEvent{Type: grip.WSEventText, Content: []byte("hello")})
		r := &cache.Response{Status: 200, Body: grip.AppendWSEvents(nil, evs...),
			Header: []grip.Header{{Name: "Content-Type", Value: grip.WebSocketEventsType}}}
		a := openControl(r)
		if len(a.channels) != n {
			t.Fatalf("%d control messages: channels %q", n, a.channels)
		}
		found := 0
		for i, ev := range a.events {
			p, ok := bytes.CutPrefix(ev.Content, []byte("c:"))
			cm := a.control(p)
			switch {
			case ok && (cm == nil || cm.Channel != a.channels[i-1]):
				t.Errorf("%d control messages: event %d's is %+v", n, i, cm)
			case ok:
				found++
			case cm != nil:
				t.Errorf("%d control messages: event %d (%q) has one", n, i, ev.Content)
			}
		}
		if found != n {
			t.Errorf("%d control messages: %d found", n, found)
		}
	}
}
