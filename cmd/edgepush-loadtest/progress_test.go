package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/edgepush/edgepush/loadtest"
)

func TestProgressBar(t *testing.T) {
	p := loadtest.Progress{Phase: "setup", Elapsed: 1500 * time.Millisecond, ConnsTarget: 100, ConnsOK: 40,
		ConnsFailed: 10, MsgsTarget: 20, RSSBytes: 3 << 20}
	var buf bytes.Buffer
	b := &progressBar{w: &buf, tty: true}
	b.update(p)
	b.finish()
	want := "\r\033[K[" + strings.Repeat("=", 12) + strings.Repeat(" ", 12) + "] setup     1.5s  conns 40/100 (10 failed, 0 dropped)  msgs 0/20  recv 0/0  rss 3.0 MB\n"
	if buf.String() != want {
		t.Errorf("tty bar %q\nwant    %q", buf.String(), want)
	}
	buf.Reset()
	b = &progressBar{w: &buf}
	p = loadtest.Progress{Phase: "settle", ConnsTarget: 5, ConnsOK: 5, MsgsTarget: 2, MsgsPublished: 2, Expected: 10, Received: 10}
	b.update(p)
	b.finish()
	if got := buf.String(); got != "settle    0.0s  conns 5/5  msgs 2/2  recv 10/10\n" {
		t.Errorf("line %q", got)
	}
	if f := fraction(loadtest.Progress{Phase: "publish", MsgsTarget: 4, MsgsPublished: 1}); f != 0.25 {
		t.Errorf("fraction %v", f)
	}
}
