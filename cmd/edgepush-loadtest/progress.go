package main

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/edgepush/edgepush/loadtest"
)

// progressBar renders loadtest.Progress on stderr: redrawn in place on a
// terminal, otherwise one line per update.
type progressBar struct {
	w   io.Writer
	tty bool

	mu    sync.Mutex
	drawn bool // a bar is on the current terminal line
}

const barWidth = 24

func (b *progressBar) update(p loadtest.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	line := formatProgress(p)
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s %s", bar(fraction(p)), line)
		b.drawn = true
		return
	}
	fmt.Fprintln(b.w, line)
}

// finish ends the bar's line so that what follows starts on a new one.
func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

// fraction is how far the current phase is.
func fraction(p loadtest.Progress) float64 {
	var f float64
	switch p.Phase {
	case "warmup":
		f = 0
	case "setup":
		f = float64(p.ConnsOK+p.ConnsFailed) / float64(max(p.ConnsTarget, 1))
	case "publish":
		f = float64(p.MsgsPublished) / float64(max(p.MsgsTarget, 1))
	default:
		if p.Expected > 0 {
			f = float64(p.Received) / float64(p.Expected)
		} else {
			f = 1
		}
	}
	return min(max(f, 0), 1)
}

func bar(f float64) string {
	n := int(f * barWidth)
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", barWidth-n) + "]"
}

func formatProgress(p loadtest.Progress) string {
	s := fmt.Sprintf("%-7s %5.1fs  conns %d/%d", p.Phase, p.Elapsed.Seconds(), p.ConnsOK, p.ConnsTarget)
	if p.ConnsFailed > 0 || p.ConnsDropped > 0 {
		s += fmt.Sprintf(" (%d failed, %d dropped)", p.ConnsFailed, p.ConnsDropped)
	}
	if p.ConnsSlow > 0 {
		s += fmt.Sprintf(" (%d slow)", p.ConnsSlow)
	}
	s += fmt.Sprintf("  msgs %d/%d  recv %d/%d", p.MsgsPublished, p.MsgsTarget, p.Received, p.Expected)
	if p.RSSBytes > 0 {
		s += fmt.Sprintf("  rss %.1f MB", float64(p.RSSBytes)/(1<<20))
	}
	return s
}
