package demo

import (
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// backendHandler is the demo's backend, the part that stays up when the
// origin is down (the node routes BackendPath to it, uncached):
//
//   - GET BackendPath+"origin": {"up":true|false}
//   - POST BackendPath+"origin" with {"up":true|false}
//     (application/json, from loopback only): flips the origin switch and
//     answers the state as GET does
//   - POST BackendPath+"counters/{name}/increment": the origin's
//     increment (the same counters, the same publish), so the page's +1
//     works while the origin is down.
func (d *Demo) backendHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+BackendPath+"origin", d.serveOriginState)
	mux.HandleFunc("POST "+BackendPath+"origin", d.serveOriginSwitch)
	mux.HandleFunc("POST "+BackendPath+"counters/{name}/increment", d.origin.withName(d.origin.serveIncrement))
	return mux
}

// originState is the body of the origin switch's answers.
type originState struct {
	Up bool `json:"up"`
}

func (d *Demo) serveOriginState(w http.ResponseWriter, r *http.Request) {
	b, _ := json.Marshal(originState{Up: d.OriginUp()})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

// serveOriginSwitch flips the switch. Only a client on the node's own
// machine may: the request must come from loopback, and so must the
// client the node names last in X-Forwarded-For. It must be
// application/json, which a page of another site cannot send without the
// browser asking first (CORS preflight, which gets no approval here).
func (d *Demo) serveOriginSwitch(w http.ResponseWriter, r *http.Request) {
	if !fromLoopback(r) {
		writeError(w, http.StatusForbidden, "demo: the origin switch works only from the node's own machine (loopback)")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, `demo: send Content-Type: application/json and {"up":true} or {"up":false}`)
		return
	}
	var req struct {
		Up *bool `json:"up"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1024)).Decode(&req); err != nil || req.Up == nil {
		writeError(w, http.StatusBadRequest, `demo: want {"up":true} or {"up":false}`)
		return
	}
	if err := d.SetOriginUp(*req.Up); err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	d.serveOriginState(w, r)
}

// fromLoopback reports whether r comes from loopback: its peer (the node)
// and, when the node says, the client (the last X-Forwarded-For entry:
// the address the node saw).
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || !isLoopback(host) {
		return false
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return true
	}
	last := xff[len(xff)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	return isLoopback(strings.TrimSpace(last))
}

func isLoopback(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Unmap().IsLoopback()
}
