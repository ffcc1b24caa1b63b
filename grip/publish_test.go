package grip

import (
	"errors"
	"reflect"
	"testing"
)

func TestParsePublish(t *testing.T) {
	tests := []struct {
		name string
		item string
		want Item
	}{
		{"http-stream content", `{"channel":"updates","formats":{"http-stream":{"content":"text\n"}}}`,
			Item{Channel: "updates", HTTPStream: &HTTPStreamFormat{Content: []byte("text\n")}}},
		{"http-stream close", `{"channel":"updates","formats":{"http-stream":{"action":"close"}}}`,
			Item{Channel: "updates", HTTPStream: &HTTPStreamFormat{Action: ActionClose}}},
		{"http-stream content-bin wins over content", `{"channel":"c","formats":{"http-stream":{"content":"x","content-bin":"aGk="}}}`,
			Item{Channel: "c", HTTPStream: &HTTPStreamFormat{Content: []byte("hi")}}},
		{"http-response full", `{"channel":"updates","formats":{"http-response":{"code":200,"reason":"OK","headers":{"X-Pub":"yes"},"body":"..."}}}`,
			Item{Channel: "updates", HTTPResponse: &HTTPResponseFormat{Code: 200, Reason: "OK",
				Headers: hdrs("X-Pub", "yes"), Body: []byte("...")}}},
		{"http-response defaults", `{"channel":"updates","formats":{"http-response":{"body":""}}}`,
			Item{Channel: "updates", HTTPResponse: &HTTPResponseFormat{Code: 200, Reason: "OK", Body: []byte{}}}},
		{"http-response body-bin, reason from code", `{"channel":"u","formats":{"http-response":{"code":409,"body-bin":"aGk"}}}`,
			Item{Channel: "u", HTTPResponse: &HTTPResponseFormat{Code: 409, Reason: "Conflict", Body: []byte("hi")}}},
		{"http-response header pairs and filters", `{"channel":"u","formats":{"http-response":{"headers":[["A","1"],["A","2"]],"body":"b","content-filters":[]}}}`,
			Item{Channel: "u", HTTPResponse: &HTTPResponseFormat{Code: 200, Reason: "OK", Headers: hdrs("A", "1", "A", "2"),
				Body: []byte("b"), ContentFilters: []string{}}}},
		{"http-response body-patch", `{"channel":"u","formats":{"http-response":{"body-patch":[{"op":"add","path":"/a","value":1}]}}}`,
			Item{Channel: "u", HTTPResponse: &HTTPResponseFormat{Code: 200, Reason: "OK",
				BodyPatch: []byte(`[{"op":"add","path":"/a","value":1}]`)}}},
		{"http-response hint", `{"channel":"u","formats":{"http-response":{"action":"hint"}}}`,
			Item{Channel: "u", HTTPResponse: &HTTPResponseFormat{Action: ActionHint}}},
		{"ws-message text", `{"channel":"updates","formats":{"ws-message":{"content":"text"}}}`,
			Item{Channel: "updates", WSMessage: &WSMessageFormat{Type: WSText, Content: []byte("text")}}},
		{"ws-message binary", `{"channel":"updates","formats":{"ws-message":{"content-bin":"AAEC"}}}`,
			Item{Channel: "updates", WSMessage: &WSMessageFormat{Type: WSBinary, Content: []byte{0, 1, 2}}}},
		{"ws-message explicit type wins", `{"channel":"u","formats":{"ws-message":{"type":"text","content-bin":"aGk="}}}`,
			Item{Channel: "u", WSMessage: &WSMessageFormat{Type: WSText, Content: []byte("hi")}}},
		{"ws-message ping without content", `{"channel":"u","formats":{"ws-message":{"type":"ping"}}}`,
			Item{Channel: "u", WSMessage: &WSMessageFormat{Type: WSPing}}},
		{"ws-message close", `{"channel":"updates","formats":{"ws-message":{"action":"close","code":4001,"reason":"bye"}}}`,
			Item{Channel: "updates", WSMessage: &WSMessageFormat{Action: ActionClose, Code: 4001, Reason: "bye"}}},
		{"ws-message refresh", `{"channel":"u","formats":{"ws-message":{"action":"refresh"}}}`,
			Item{Channel: "u", WSMessage: &WSMessageFormat{Action: ActionRefresh}}},
		{"ids, meta, size, no-seq", `{"channel":"u","id":"5","prev-id":"4","meta":{"sender":"a"},"size":12,"no-seq":true,
			"formats":{"http-stream":{"content":"x"},"ws-message":{"content":"x"}}}`,
			Item{Channel: "u", ID: "5", PrevID: "4", Meta: map[string]string{"sender": "a"}, Size: 12, NoSeq: true,
				HTTPStream: &HTTPStreamFormat{Content: []byte("x")}, WSMessage: &WSMessageFormat{Content: []byte("x")}}},
		{"legacy top-level formats", `{"channel":"u","http-stream":{"content":"x"},"http-response":{"body":"y"}}`,
			Item{Channel: "u", HTTPStream: &HTTPStreamFormat{Content: []byte("x")},
				HTTPResponse: &HTTPResponseFormat{Code: 200, Reason: "OK", Body: []byte("y")}}},
		{"unknown formats are ignored", `{"channel":"u","formats":{"xmpp-message":{"content":"x"}}}`,
			Item{Channel: "u"}},
		{"unknown fields are ignored", `{"channel":"u","extra":1,"formats":{"http-stream":{"content":"x","other":2}}}`,
			Item{Channel: "u", HTTPStream: &HTTPStreamFormat{Content: []byte("x")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParsePublish([]byte(`{"items":[` + tt.item + `]}`))
			if err != nil {
				t.Fatalf("ParsePublish: %v", err)
			}
			if len(req.Items) != 1 {
				t.Fatalf("got %d items", len(req.Items))
			}
			if got := req.Items[0]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParsePublishEmptyItems(t *testing.T) {
	req, err := ParsePublish([]byte(`{"items":[]}`))
	if err != nil || req == nil || len(req.Items) != 0 {
		t.Fatalf("got %+v, %v", req, err)
	}
}

func TestParsePublishErrors(t *testing.T) {
	tests := []struct{ body, want string }{
		{``, "Body is not valid JSON."},
		{`{"items":[]`, "Body is not valid JSON."},
		{`{"items":[]} x`, "Body is not valid JSON."},
		{`[]`, "Invalid format."},
		{`"items"`, "Invalid format."},
		{`{}`, "Invalid format: object does not contain 'items'"},
		{`{"items":{}}`, "Invalid format: object contains 'items' with wrong type"},
		{`{"items":null}`, "Invalid format: object contains 'items' with wrong type"},
	}
	for _, tt := range tests {
		req, err := ParsePublish([]byte(tt.body))
		checkPublishError(t, req, err, tt.want)
	}
}

func TestParsePublishItemErrors(t *testing.T) {
	tests := []struct{ item, want string }{
		{`1`, "publish item object is not an object"},
		{`{}`, "publish item object does not contain 'channel'"},
		{`{"channel":5}`, "publish item object contains 'channel' with wrong type"},
		{`{"channel":""}`, "publish item object contains 'channel' with invalid value"},
		{`{"channel":"c","id":5}`, "publish item object contains 'id' with wrong type"},
		{`{"channel":"c","prev-id":[]}`, "publish item object contains 'prev-id' with wrong type"},
		{`{"channel":"c","formats":5}`, "publish item object contains 'formats' with wrong type"},
		{`{"channel":"c"}`, "no formats specified"},
		{`{"channel":"c","formats":{}}`, "no formats specified"},
		{`{"channel":"c","http-stream":5}`, "'http-stream' is not an object"},
		{`{"channel":"c","formats":{"http-stream":{"action":5}}}`, "'http-stream' contains 'action' with wrong type"},
		{`{"channel":"c","formats":{"http-stream":{"action":"shout"}}}`, "'http-stream' contains 'action' with unknown value"},
		{`{"channel":"c","formats":{"http-stream":{}}}`, "'http-stream' does not contain 'content' or 'content-bin'"},
		{`{"channel":"c","formats":{"http-stream":{"content":5}}}`, "'http-stream' contains 'content' with wrong type"},
		{`{"channel":"c","formats":{"http-stream":{"content-bin":5}}}`, "'http-stream' contains 'content-bin' with wrong type"},
		{`{"channel":"c","formats":{"http-stream":{"content-bin":"!!"}}}`, "'http-stream' contains 'content-bin' with invalid value"},
		{`{"channel":"c","formats":{"http-stream":{"content":"x","content-filters":"f"}}}`, "'http-stream' contains 'content-filters' with wrong type"},
		{`{"channel":"c","formats":{"http-stream":{"content":"x","content-filters":[1]}}}`, "content-filters contains element with wrong type"},
		{`{"channel":"c","formats":{"http-response":{}}}`, "'http-response' does not contain 'body', 'body-bin', or 'body-patch'"},
		{`{"channel":"c","formats":{"http-response":{"code":"200","body":""}}}`, "'http-response' contains 'code' with wrong type"},
		{`{"channel":"c","formats":{"http-response":{"code":1000,"body":""}}}`, "'http-response' contains 'code' with invalid value"},
		{`{"channel":"c","formats":{"http-response":{"code":0,"body":""}}}`, "'http-response' contains 'code' with invalid value"},
		{`{"channel":"c","formats":{"http-response":{"reason":5,"body":""}}}`, "'http-response' contains 'reason' with wrong type"},
		{`{"channel":"c","formats":{"http-response":{"headers":"h","body":""}}}`, "'http-response' contains 'headers' with wrong type"},
		{`{"channel":"c","formats":{"http-response":{"headers":[["a",1]],"body":""}}}`, "header contains value element with wrong type"},
		{`{"channel":"c","formats":{"http-response":{"headers":{"a":true},"body":""}}}`, "headers contains 'a' with wrong type"},
		{`{"channel":"c","formats":{"http-response":{"body":1}}}`, "'http-response' contains 'body' with wrong type"},
		{`{"channel":"c","formats":{"http-response":{"body-patch":{}}}}`, "'http-response' contains 'body-patch' with wrong type"},
		{`{"channel":"c","formats":{"ws-message":{}}}`, "'ws-message' does not contain 'content' or 'content-bin'"},
		{`{"channel":"c","formats":{"ws-message":{"type":"binary"}}}`, "'ws-message' does not contain 'content' or 'content-bin'"},
		{`{"channel":"c","formats":{"ws-message":{"type":"video","content":"x"}}}`, "'ws-message' contains 'type' with unknown value"},
		{`{"channel":"c","formats":{"ws-message":{"content":"x","content-bin":1}}}`, "'ws-message' contains 'content-bin' with wrong type"},
		{`{"channel":"c","formats":{"ws-message":{"action":"close","code":-1}}}`, "'ws-message' contains 'code' with invalid value"},
		{`{"channel":"c","formats":{"ws-message":{"action":"close","code":70000}}}`, "'ws-message' contains 'code' with invalid value"},
		{`{"channel":"c","formats":{"ws-message":{"action":"close","code":"1000"}}}`, "'ws-message' contains 'code' with wrong type"},
		{`{"channel":"c","formats":{"ws-message":{"action":"close","reason":1}}}`, "'ws-message' contains 'reason' with wrong type"},
		{`{"channel":"c","formats":{"http-stream":{"content":"x"}},"meta":5}`, "publish item object contains 'meta' with wrong type"},
		{`{"channel":"c","formats":{"http-stream":{"content":"x"}},"meta":{"a":1}}`, "'meta' contains 'a' with wrong type"},
		{`{"channel":"c","formats":{"http-stream":{"content":"x"}},"size":"1"}`, "publish item object contains 'size' with wrong type"},
		{`{"channel":"c","formats":{"http-stream":{"content":"x"}},"size":-1}`, "publish item object contains 'size' with invalid value"},
		{`{"channel":"c","formats":{"http-stream":{"content":"x"}},"no-seq":"yes"}`, "publish item object contains 'no-seq' with wrong type"},
	}
	for _, tt := range tests {
		req, err := ParsePublish([]byte(`{"items":[{"channel":"ok","formats":{"http-stream":{"content":""}}},` + tt.item + `]}`))
		checkPublishError(t, req, err, "Invalid format: "+tt.want)
	}
}

func checkPublishError(t *testing.T, req *PublishRequest, err error, want string) {
	t.Helper()
	var pe *PublishError
	if !errors.As(err, &pe) {
		t.Errorf("want %q, got %+v, %v", want, req, err)
		return
	}
	if pe.Error() != want || pe.Reason != want {
		t.Errorf("got %q, want %q", pe.Error(), want)
	}
	if req != nil {
		t.Errorf("%q: non-nil request with error", want)
	}
}

func TestStatusText(t *testing.T) {
	for code, want := range map[int]string{200: "OK", 404: "Not Found", 409: "Conflict", 299: "Undefined Reason", 999: "Undefined Reason"} {
		if got := StatusText(code); got != want {
			t.Errorf("StatusText(%d) = %q, want %q", code, got, want)
		}
	}
}
