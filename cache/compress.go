package cache

import (
	"bytes"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// encoders compress stored bodies once, when stored.
type encoders struct {
	zstd *zstd.Encoder
	gzip sync.Pool
}

func newEncoders() (*encoders, error) {
	z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	e := &encoders{zstd: z}
	e.gzip.New = func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.BestCompression)
		return w
	}
	return e, nil
}

func (e *encoders) close() { e.zstd.Close() }

// compressible reports whether a body of this type is worth compressing.
func compressible(contentType string) bool {
	ct := strings.ToLower(contentType)
	for _, p := range []string{"text/", "application/json", "application/javascript", "application/xml",
		"application/x-ndjson", "+json", "+xml", "image/svg"} {
		if strings.Contains(ct, p) {
			return true
		}
	}
	return false
}

// variants returns the gzip and zstd encodings of resp's body, each only
// if smaller; none for small, already encoded or incompressible bodies.
func (e *encoders) variants(resp *Response, minSize int) (gz, zs []byte) {
	if len(resp.Body) < minSize || resp.Get("Content-Encoding") != "" || !compressible(resp.Get("Content-Type")) {
		return nil, nil
	}
	zs = e.zstd.EncodeAll(resp.Body, nil)
	var buf bytes.Buffer
	w := e.gzip.Get().(*gzip.Writer)
	w.Reset(&buf)
	w.Write(resp.Body)
	w.Close()
	e.gzip.Put(w)
	if buf.Len() < len(resp.Body) {
		gz = buf.Bytes()
	}
	if len(zs) >= len(resp.Body) {
		zs = nil
	}
	return gz, zs
}
