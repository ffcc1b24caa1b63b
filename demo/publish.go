package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// publishRequest is the body of a Pushpin-compatible POST /publish/ call,
// or, with Purge, of edgepush's POST /purge-publish/.
type publishRequest struct {
	Purge *purgeSpec    `json:"purge,omitempty"`
	Items []publishItem `json:"items"`
}

// purgeSpec names the surrogate keys a /purge-publish/ call purges.
type purgeSpec struct {
	Keys []string `json:"keys"`
}

// publishItem is one item of a publish request: a channel, an id and the
// content in each transport format the channel's subscribers may use.
type publishItem struct {
	Channel string         `json:"channel"`
	ID      string         `json:"id,omitempty"`
	Formats publishFormats `json:"formats"`
}

// publishFormats holds the per-transport content of an item; nil formats are
// left out so subscribers of that transport get nothing.
type publishFormats struct {
	HTTPStream   *streamFormat   `json:"http-stream,omitempty"`
	HTTPResponse *responseFormat `json:"http-response,omitempty"`
	WSMessage    *wsFormat       `json:"ws-message,omitempty"`
}

type streamFormat struct {
	Content string `json:"content"`
}

type responseFormat struct {
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body"`
}

type wsFormat struct {
	Content string `json:"content"`
}

// counterUpdate builds the publish request announcing that counter name now
// holds value. Two channels are used because SSE subscribers and plain
// streaming subscribers need different bytes for the same update:
// sseChannel(name) carries SSE events, channel(name) carries NDJSON lines,
// long-poll answers and WebSocket messages.
func counterUpdate(name string, value int64) publishRequest {
	body := valueJSON(name, value)
	id := strconv.FormatInt(value, 10)
	return publishRequest{Items: []publishItem{
		{
			Channel: channel(name),
			ID:      id,
			Formats: publishFormats{
				HTTPStream: &streamFormat{Content: body + "\n"},
				HTTPResponse: &responseFormat{
					Headers: map[string]string{"Content-Type": "application/json"},
					Body:    body,
				},
				WSMessage: &wsFormat{Content: body},
			},
		},
		{
			Channel: sseChannel(name),
			ID:      id,
			Formats: publishFormats{
				HTTPStream: &streamFormat{Content: sseEvent(body)},
			},
		},
	}}
}

// maxErrorBody bounds how much of a failed publish response is quoted in the
// error returned to the client.
const maxErrorBody = 256

// publish POSTs req to the node's publish endpoint. Any transport error or
// non-2xx status is an error.
func (o *Origin) publish(ctx context.Context, req publishRequest) error {
	payload, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, o.cfg.PublishURL, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if o.cfg.PublishKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.cfg.PublishKey)
	}
	resp, err := o.client.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(snippet))
	}
	return nil
}
