package loadtest

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadHead(t *testing.T) {
	in := "HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ntransfer-encoding: Chunked\r\nConnection: keep-alive\r\n\r\nrest"
	br := bufio.NewReader(strings.NewReader(in))
	h, err := readHead(br)
	if err != nil || h.status != 200 || !h.chunked || h.close || h.length != -1 {
		t.Fatalf("head %+v, %v", h, err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "rest" {
		t.Errorf("left %q", rest)
	}

	h, err = readHead(bufio.NewReader(strings.NewReader("HTTP/1.0 503 Service Unavailable\r\nContent-Length: 12\r\n\r\n")))
	if err != nil || h.status != 503 || h.reason != "Service Unavailable" || !h.close || h.length != 12 {
		t.Errorf("head %+v, %v", h, err)
	}
	for _, bad := range []string{
		"", "HTTP/1.1 200 OK\r\n", "SPDY/3 200 OK\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 2*connBufSize) + "\r\n\r\n",
	} {
		if _, err := readHead(bufio.NewReaderSize(strings.NewReader(bad), connBufSize)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestChunkedReader(t *testing.T) {
	body := "5\r\nopen\n\r\n" + "15;ext=1\r\n" + `{"seq":0,"ts":1}` + "\n" + `{"se` + "\r\n" +
		"F\r\n" + `q":1,"ts":2}` + "\n\n\n" + "\r\n" + "0\r\nTrailer: x\r\n\r\n" + "NEXT"
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	} {
		br := bufio.NewReaderSize(wrap(strings.NewReader(body)), 16)
		var c chunkedReader
		c.reset(br)
		lr := bufio.NewReaderSize(&c, 32)
		var lines []string
		for {
			line, err := lr.ReadSlice('\n')
			if err == bufio.ErrBufferFull {
				t.Fatalf("%s: line too long", name)
			}
			if len(line) > 0 {
				lines = append(lines, string(line))
			}
			if err != nil {
				if err != io.EOF {
					t.Fatalf("%s: %v", name, err)
				}
				break
			}
		}
		want := []string{"open\n", `{"seq":0,"ts":1}` + "\n", `{"seq":1,"ts":2}` + "\n", "\n", "\n"}
		if strings.Join(lines, "|") != strings.Join(want, "|") {
			t.Errorf("%s: lines %q, want %q", name, lines, want)
		}
		if rest, _ := io.ReadAll(br); string(rest) != "NEXT" {
			t.Errorf("%s: the reader consumed past the body: left %q", name, rest)
		}
	}
}

func TestChunkedReaderErrors(t *testing.T) {
	for _, bad := range []string{"zz\r\nabc", "3\r\nabcXY", "3\r\nab", "3\r\nabc\r\n"} {
		var c chunkedReader
		c.reset(bufio.NewReader(strings.NewReader(bad)))
		if _, err := io.ReadAll(&c); err == nil || err == io.EOF {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

// repeatReader returns the same bytes forever.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

func TestStreamPathDoesNotAllocate(t *testing.T) {
	msg := append(AppendMessage(nil, 0, 1), '\n')
	chunk := []byte(strconv.FormatInt(int64(len(msg)), 16) + "\r\n" + string(msg) + "\r\n")
	br := bufio.NewReaderSize(&repeatReader{b: chunk}, connBufSize)
	var c chunkedReader
	c.reset(br)
	lr := bufio.NewReaderSize(&c, lineBufSize)
	cs := &connState{run: &runState{msgs: 1, latency: newHist(), byMsg: newByMsg(1)}, seen: make([]uint64, 1)}
	allocs := testing.AllocsPerRun(1000, func() {
		line, err := lr.ReadSlice('\n')
		if err != nil {
			t.Fatal(err)
		}
		cs.deliver(line)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per delivered message", allocs)
	}
	if cs.received != 1 || cs.duplicated < 1000 {
		t.Errorf("received %d duplicated %d", cs.received, cs.duplicated)
	}
}
