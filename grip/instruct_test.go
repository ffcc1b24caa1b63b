package grip

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// hdrs builds headers from name, value pairs.
func hdrs(kv ...string) []Header {
	out := make([]Header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Header{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

const instructCT = "application/grip-instruct"

func TestParseInstructHeaders(t *testing.T) {
	tests := []struct {
		name    string
		headers []Header
		want    Instruct
	}{
		{"no grip headers", hdrs("Content-Type", "text/plain"),
			Instruct{Timeout: DefaultTimeout}},
		{"response hold (Pushpin test)", hdrs(
			"Grip-Hold", "response", "Grip-Channel", "apple", "Grip-Channel", "banana, cherry",
			"Grip-Timeout", "120", "Grip-Set-Meta", "foo=bar, bar=baz"),
			Instruct{Hold: HoldResponse, Timeout: 120 * time.Second,
				Channels: []Channel{{Name: "apple"}, {Name: "banana"}, {Name: "cherry"}},
				Meta:     map[string]string{"foo": "bar", "bar": "baz"}}},
		{"channel params (Pushpin test)", hdrs(
			"Grip-Hold", "stream", "Grip-Channel", "apple; prev-id=item1; filter=f1",
			"Grip-Channel", "banana; filter=f2, cherry; filter=f1; filter=f2"),
			Instruct{Hold: HoldStream, Timeout: DefaultTimeout, Channels: []Channel{
				{Name: "apple", PrevID: "item1", Filters: []string{"f1"}},
				{Name: "banana", Filters: []string{"f2"}},
				{Name: "cherry", Filters: []string{"f1", "f2"}}}}},
		{"quoted params keep commas and semicolons", hdrs(
			"Grip-Channel", `a; prev-id="x,y;z"; filter="f\"1", b ; PREV-ID = 7 ;; filter=`),
			Instruct{Timeout: DefaultTimeout, Channels: []Channel{
				{Name: "a", PrevID: "x,y;z", Filters: []string{`f"1`}},
				{Name: "b", PrevID: "7", Filters: []string{""}}}}},
		{"empty list elements are skipped", hdrs("Grip-Channel", " , a,,b ,"),
			Instruct{Timeout: DefaultTimeout, Channels: []Channel{{Name: "a"}, {Name: "b"}}}},
		{"header names in any case", hdrs("grip-hold", " stream ", "GRIP-CHANNEL", "x", "gRiP-tImEoUt", "7"),
			Instruct{Hold: HoldStream, Timeout: 7 * time.Second, Channels: []Channel{{Name: "x"}}}},
		{"only the first Grip-Hold counts", hdrs("Grip-Hold", "stream", "Grip-Hold", "bogus"),
			Instruct{Hold: HoldStream, Timeout: DefaultTimeout}},
		{"timeout below minimum is raised", hdrs("Grip-Timeout", "0"),
			Instruct{Timeout: MinTimeout}},
		{"timeout with sign and spaces", hdrs("Grip-Timeout", " +9 "),
			Instruct{Timeout: 9 * time.Second}},
		{"expose headers", hdrs("Grip-Expose-Headers", "X-A, X-B", "Grip-Expose-Headers", "X-C"),
			Instruct{Timeout: DefaultTimeout, ExposeHeaders: []string{"X-A", "X-B", "X-C"}}},
		{"status code only", hdrs("Grip-Status", "404"),
			Instruct{Timeout: DefaultTimeout, Status: 404}},
		{"status with reason", hdrs("Grip-Status", "404 Nothing To See Here"),
			Instruct{Timeout: DefaultTimeout, Status: 404, Reason: "Nothing To See Here"}},
		{"quoted meta value with comma", hdrs("Grip-Set-Meta", `user="a,b", id_format="%(id)s"`, "Grip-Set-Meta", "user=c"),
			Instruct{Timeout: DefaultTimeout, Meta: map[string]string{"user": "c", "id_format": "%(id)s"}}},
		{"links", hdrs("Grip-Link", "</c/?after=3>; rel=next; timeout=30, </gone>; rel=gone"),
			Instruct{Timeout: DefaultTimeout, NextLink: &Link{URI: "/c/?after=3", Timeout: 30 * time.Second},
				GoneLink: &Link{URI: "/gone"}}},
		{"link URI with comma and semicolon, default timeout", hdrs("Grip-Link", "<http://o/a?ids=1,2;x>; rel=next"),
			Instruct{Timeout: DefaultTimeout, NextLink: &Link{URI: "http://o/a?ids=1,2;x", Timeout: DefaultNextLinkTimeout}}},
		{"links without rel or with other rel are ignored", hdrs("Grip-Link", "<a>", "Grip-Link", "<b>; rel=prev", "Grip-Link", "<c>; rel=NEXT"),
			Instruct{Timeout: DefaultTimeout, NextLink: &Link{URI: "c", Timeout: DefaultNextLinkTimeout}}},
		{"last next link wins", hdrs("Grip-Link", "<a>; rel=next; timeout=0", "Grip-Link", "<b>; rel=next; timeout=1"),
			Instruct{Timeout: DefaultTimeout, NextLink: &Link{URI: "b", Timeout: time.Second}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInstruct(tt.headers, 200, []byte("body"))
			if err != nil {
				t.Fatalf("ParseInstruct: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseInstructKeepAlive(t *testing.T) {
	tests := []struct {
		value string
		want  KeepAlive
	}{
		{`ping1\n; timeout=10`, KeepAlive{Data: []byte(`ping1\n`), Timeout: 10 * time.Second}},
		{`ping2\n; format=cstring`, KeepAlive{Data: []byte("ping2\n"), Timeout: DefaultKeepAliveTimeout}},
		{`cGluZzMK; format=base64`, KeepAlive{Data: []byte("ping3\n"), Timeout: DefaultKeepAliveTimeout}},
		{`ping4\n; mode=interval`, KeepAlive{Data: []byte(`ping4\n`), Timeout: DefaultKeepAliveTimeout, Mode: KeepAliveInterval}},
		{`:\n\n; format=cstring; timeout=55`, KeepAlive{Data: []byte(":\n\n"), Timeout: 55 * time.Second}},
		{`x; timeout=0; mode=idle; format=raw`, KeepAlive{Data: []byte("x"), Timeout: time.Second}},
		{`{"a":1,"b":2}`, KeepAlive{Data: []byte(`{"a":1,"b":2}`), Timeout: DefaultKeepAliveTimeout}},
		{`a\tb\x41\\\r; format=cstring`, KeepAlive{Data: []byte("abA\\\r"), Timeout: DefaultKeepAliveTimeout}},
		{`x; format="raw"; timeout="3"`, KeepAlive{Data: []byte("x"), Timeout: 3 * time.Second}},
	}
	for _, tt := range tests {
		got, err := ParseInstruct(hdrs("Grip-Keep-Alive", tt.value, "Grip-Keep-Alive", "ignored"), 200, nil)
		if err != nil {
			t.Errorf("%q: %v", tt.value, err)
			continue
		}
		if !reflect.DeepEqual(got.KeepAlive, &tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.value, got.KeepAlive, tt.want)
		}
	}
}

func TestParseInstructJSON(t *testing.T) {
	tests := []struct {
		name    string
		headers []Header
		body    string
		want    Instruct
	}{
		{"response only (Pushpin test)", nil,
			`{"response":{"code":200,"headers":{"Content-Type":"text/plain"},"body":"hello world"}}`,
			Instruct{Timeout: DefaultTimeout, Response: &Response{Code: 200, Reason: "OK",
				Headers: hdrs("Content-Type", "text/plain"), Body: []byte("hello world")}}},
		{"full hold", nil, `{"hold":{"mode":"stream","channels":[{"name":"a","prev-id":"1","filters":["skip-self"]},{"name":"b"}],
			"timeout":3,"keep-alive":{"content":"ka\n","timeout":20,"mode":"interval"},"meta":{"user":"u1"}},
			"response":{"code":202,"reason":"Fine","headers":[["X-A","1"],["X-A","2"]],"body-bin":"aGk="}}`,
			Instruct{Hold: HoldStream, Timeout: MinTimeout,
				Channels:  []Channel{{Name: "a", PrevID: "1", Filters: []string{"skip-self"}}, {Name: "b"}},
				KeepAlive: &KeepAlive{Data: []byte("ka\n"), Timeout: 20 * time.Second, Mode: KeepAliveInterval},
				Meta:      map[string]string{"user": "u1"},
				Response:  &Response{Code: 202, Reason: "Fine", Headers: hdrs("X-A", "1", "X-A", "2"), Body: []byte("hi")}}},
		{"mode defaults to response, channels add to headers, empty response", hdrs("Grip-Channel", "h", "Grip-Set-Meta", "a=1"),
			`{"hold":{"channels":[{"name":"j"}],"meta":{"b":"2"},"keep-alive":{"content-bin":"AAE=","timeout":0}}}`,
			Instruct{Hold: HoldResponse, Timeout: DefaultTimeout, Channels: []Channel{{Name: "h"}, {Name: "j"}},
				Meta:      map[string]string{"a": "1", "b": "2"},
				KeepAlive: &KeepAlive{Data: []byte{0, 1}, Timeout: time.Second},
				Response:  &Response{Code: 200, Reason: "OK"}}},
		{"Grip-Status applies when JSON has no code", hdrs("Grip-Status", "404 Nope"), `{"response":{"body":"x"}}`,
			Instruct{Timeout: DefaultTimeout, Status: 404, Reason: "Nope",
				Response: &Response{Code: 404, Reason: "Nope", Body: []byte("x")}}},
		{"JSON code clears the Grip-Status reason", hdrs("Grip-Status", "404 Nope"), `{"response":{"code":409}}`,
			Instruct{Timeout: DefaultTimeout, Status: 404, Reason: "Nope", Response: &Response{Code: 409, Reason: "Conflict"}}},
		{"keep-alive without content only retimes the header one", hdrs("Grip-Keep-Alive", "k; mode=interval; timeout=9"),
			`{"hold":{"channels":[],"keep-alive":{"timeout":4}}}`,
			Instruct{Hold: HoldResponse, Timeout: DefaultTimeout,
				KeepAlive: &KeepAlive{Data: []byte("k"), Timeout: 4 * time.Second, Mode: KeepAliveInterval},
				Response:  &Response{Code: 200, Reason: "OK"}}},
		{"empty keep-alive content disables it", hdrs("Grip-Keep-Alive", "k"),
			`{"hold":{"channels":[],"keep-alive":{"content":""}}}`,
			Instruct{Hold: HoldResponse, Timeout: DefaultTimeout, Response: &Response{Code: 200, Reason: "OK"}}},
		{"nulls count as absent", nil, `{"hold":{"channels":[{"name":"a","prev-id":null}],"timeout":null,"mode":null},"response":null}`,
			Instruct{Hold: HoldResponse, Timeout: DefaultTimeout, Channels: []Channel{{Name: "a"}}, Response: &Response{Code: 200, Reason: "OK"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := append(hdrs("Content-Type", instructCT+"; charset=utf-8"), tt.headers...)
			got, err := ParseInstruct(h, 200, []byte(tt.body))
			if err != nil {
				t.Fatalf("ParseInstruct: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
				if got.Response != nil && tt.want.Response != nil {
					t.Errorf("response got %+v want %+v", *got.Response, *tt.want.Response)
				}
			}
		})
	}
}

func TestParseInstructErrors(t *testing.T) {
	ct := "Content-Type"
	tests := []struct {
		headers []Header
		status  int
		body    string
		want    string
	}{
		{hdrs("Grip-Hold", "bogus"), 200, "", "Grip-Hold: must be set to either 'response' or 'stream'"},
		{hdrs("Grip-Hold", ""), 200, "", "Grip-Hold: must be set to either 'response' or 'stream'"},
		{hdrs("Grip-Channel", `a; prev-id="x`), 200, "", "Grip-Channel: unterminated quoted string"},
		{hdrs("Grip-Channel", `; prev-id=1`), 200, "", "Grip-Channel: failed to parse '; prev-id=1'"},
		{hdrs("Grip-Channel", "c; filter=1; filter=2; filter=3; filter=4; filter=5; filter=6"), 200, "", "Grip-Channel: too many filters for channel 'c'"},
		{hdrs("Grip-Timeout", "abc"), 200, "", "Grip-Timeout: failed to parse"},
		{hdrs("Grip-Timeout", ""), 200, "", "Grip-Timeout: failed to parse"},
		{hdrs("Grip-Timeout", "-1"), 200, "", "Grip-Timeout: has invalid value"},
		{hdrs("Grip-Timeout", "99999999999"), 200, "", "Grip-Timeout: failed to parse"},
		{hdrs("Grip-Expose-Headers", `"a`), 200, "", "Grip-Expose-Headers: unterminated quoted string"},
		{hdrs("Grip-Keep-Alive", "; timeout=5"), 200, "", "Grip-Keep-Alive: cannot be empty"},
		{hdrs("Grip-Keep-Alive", `x; mode="y`), 200, "", "Grip-Keep-Alive: unterminated quoted string"},
		{hdrs("Grip-Keep-Alive", "x; mode=often"), 200, "", "Grip-Keep-Alive: no such mode 'often'"},
		{hdrs("Grip-Keep-Alive", "x; timeout=soon"), 200, "", "Grip-Keep-Alive: timeout failed to parse"},
		{hdrs("Grip-Keep-Alive", "x; timeout=-1"), 200, "", "Grip-Keep-Alive: timeout has invalid value"},
		{hdrs("Grip-Keep-Alive", "x; format=hex"), 200, "", "Grip-Keep-Alive: no such format 'hex'"},
		{hdrs("Grip-Keep-Alive", `x\; format=cstring`), 200, "", "Grip-Keep-Alive: failed to parse cstring format"},
		{hdrs("Grip-Keep-Alive", `\x4g; format=cstring`), 200, "", "Grip-Keep-Alive: failed to parse cstring format"},
		{hdrs("Grip-Keep-Alive", `\x4; format=cstring`), 200, "", "Grip-Keep-Alive: failed to parse cstring format"},
		{hdrs("Grip-Keep-Alive", `\t; format=cstring`), 200, "", "Grip-Keep-Alive: cannot be empty"},
		{hdrs("Grip-Keep-Alive", "!!!; format=base64"), 200, "", "Grip-Keep-Alive: failed to parse base64 format"},
		{hdrs("Grip-Set-Meta", `a="x`), 200, "", "Grip-Set-Meta: unterminated quoted string"},
		{hdrs("Grip-Set-Meta", `=v`), 200, "", "Grip-Set-Meta: cannot be empty"},
		{hdrs("Grip-Status", "abc"), 200, "", "Grip-Status: contains invalid status code"},
		{hdrs("Grip-Status", "1000"), 200, "", "Grip-Status: contains invalid status code"},
		{hdrs("Grip-Status", "99 Low"), 200, "", "Grip-Status: contains invalid status code"},
		{hdrs("Grip-Link", "x; rel=next"), 200, "", "Grip-Link: failed to parse value"},
		{hdrs("Grip-Link", "<>; rel=next"), 200, "", "Grip-Link: failed to parse value"},
		{hdrs("Grip-Link", `<a>; rel="next`), 200, "", "Grip-Link: unterminated quoted string"},
		{hdrs("Grip-Link", "<http://[::1>; rel=next"), 200, "", "Grip-Link: contains invalid link"},
		{hdrs("Grip-Link", "<a>; rel=next; timeout=x"), 200, "", "Grip-Link: timeout failed to parse"},
		{hdrs("Grip-Link", "<a>; rel=next; timeout=-2"), 200, "", "Grip-Link: timeout has invalid value"},
		{hdrs(ct, instructCT), 404, "{}", "application/grip-instruct: response code for application/grip-instruct content must be 200"},
		{hdrs(ct, instructCT), 200, "nope", "application/grip-instruct: failed to parse application/grip-instruct content as JSON"},
		{hdrs(ct, instructCT), 200, "", "application/grip-instruct: failed to parse application/grip-instruct content as JSON"},
		{hdrs(ct, instructCT), 200, "[]", "application/grip-instruct: instruct must be an object"},
	}
	for _, tt := range tests {
		got, err := ParseInstruct(tt.headers, tt.status, []byte(tt.body))
		checkParseError(t, got, err, tt.want)
	}
}

func TestParseInstructJSONErrors(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"hold":1}`, "instruct contains 'hold' with wrong type"},
		{`{"hold":{"mode":"poll","channels":[]}}`, "hold 'mode' must be set to either 'response' or 'stream'"},
		{`{"hold":{"mode":1,"channels":[]}}`, "hold contains 'mode' with wrong type"},
		{`{"hold":{}}`, "hold does not contain 'channels'"},
		{`{"hold":{"channels":{}}}`, "hold contains 'channels' with wrong type"},
		{`{"hold":{"channels":[1]}}`, "channel is not an object"},
		{`{"hold":{"channels":[{}]}}`, "channel does not contain 'name'"},
		{`{"hold":{"channels":[{"name":""}]}}`, "channel contains 'name' with invalid value"},
		{`{"hold":{"channels":[{"name":"a","prev-id":1}]}}`, "channel contains 'prev-id' with wrong type"},
		{`{"hold":{"channels":[{"name":"a","filters":"f"}]}}`, "channel contains 'filters' with wrong type"},
		{`{"hold":{"channels":[{"name":"a","filters":[1]}]}}`, "filters contains value with wrong type"},
		{`{"hold":{"channels":[{"name":"a","filters":["1","2","3","4","5","6"]}]}}`, "too many filters for channel 'a'"},
		{`{"hold":{"channels":[],"timeout":"5"}}`, "hold contains 'timeout' with wrong type"},
		{`{"hold":{"channels":[],"timeout":-1}}`, "hold contains 'timeout' with invalid value"},
		{`{"hold":{"channels":[],"timeout":1e12}}`, "hold contains 'timeout' with invalid value"},
		{`{"hold":{"channels":[],"keep-alive":1}}`, "hold contains 'keep-alive' with wrong type"},
		{`{"hold":{"channels":[],"keep-alive":{"content":5}}}`, "keep-alive contains 'content' with wrong type"},
		{`{"hold":{"channels":[],"keep-alive":{"content-bin":"!"}}}`, "keep-alive contains 'content-bin' with invalid value"},
		{`{"hold":{"channels":[],"keep-alive":{"content":"x","timeout":true}}}`, "keep-alive contains 'timeout' with wrong type"},
		{`{"hold":{"channels":[],"keep-alive":{"content":"x","mode":"often"}}}`, "keep-alive contains 'mode' with invalid value"},
		{`{"hold":{"channels":[],"meta":[]}}`, "hold contains 'meta' with wrong type"},
		{`{"hold":{"channels":[],"meta":{"a":1}}}`, "'meta' contains 'a' with wrong type"},
		{`{"response":1}`, "instruct contains 'response' with wrong type"},
		{`{"response":{"code":"200"}}`, "response contains 'code' with wrong type"},
		{`{"response":{"code":1000}}`, "response contains 'code' with invalid value"},
		{`{"response":{"reason":5}}`, "response contains 'reason' with wrong type"},
		{`{"response":{"headers":5}}`, "response contains 'headers' with wrong type"},
		{`{"response":{"headers":[1]}}`, "headers contains element with wrong type"},
		{`{"response":{"headers":[["a"]]}}`, "headers contains list with wrong number of elements"},
		{`{"response":{"headers":[[1,"b"]]}}`, "header contains name element with wrong type"},
		{`{"response":{"headers":[["a",1]]}}`, "header contains value element with wrong type"},
		{`{"response":{"headers":{"a":1}}}`, "headers contains 'a' with wrong type"},
		{`{"response":{"body":1}}`, "response contains 'body' with wrong type"},
		{`{"response":{"body-bin":"%%"}}`, "response contains 'body-bin' with invalid value"},
	}
	for _, tt := range tests {
		got, err := ParseInstruct(hdrs("Content-Type", instructCT), 200, []byte(tt.body))
		checkParseError(t, got, err, "application/grip-instruct: "+tt.want)
	}
}

func checkParseError(t *testing.T, got any, err error, want string) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Errorf("want %q, got result %+v, error %v (%T)", want, got, err, err)
		return
	}
	if err.Error() != want {
		t.Errorf("got error %q, want %q", err.Error(), want)
	}
	if v := reflect.ValueOf(got); !v.IsNil() {
		t.Errorf("%q: got non-nil result with error", want)
	}
}

func TestInstructNonGripInstructBodyIgnored(t *testing.T) {
	// A 404 with another content type is fine and its body is not JSON.
	got, err := ParseInstruct(hdrs("Content-Type", "text/html", "Grip-Hold", "response"), 404, []byte("<html>"))
	if err != nil || got.Hold != HoldResponse || got.Response != nil {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestIsGripHeader(t *testing.T) {
	for name, want := range map[string]bool{
		"Grip-Hold": true, "grip-x": true, "GRIP-": true, "Grip": false, "X-Grip-Hold": false, "": false, "Gripe": false,
	} {
		if got := IsGripHeader(name); got != want {
			t.Errorf("IsGripHeader(%q) = %v", name, got)
		}
	}
}

func TestClientHeaders(t *testing.T) {
	in := hdrs("Content-Type", "text/plain", "Grip-Hold", "stream", "x-a", "1", "X-B", "2")
	if got, want := ClientHeaders(in, nil), hdrs("Content-Type", "text/plain", "x-a", "1", "X-B", "2"); !reflect.DeepEqual(got, want) {
		t.Errorf("no expose: got %v", got)
	}
	if got, want := ClientHeaders(in, []string{"X-A", "Grip-Hold"}), hdrs("x-a", "1"); !reflect.DeepEqual(got, want) {
		t.Errorf("expose: got %v", got)
	}
}

func TestEnumStrings(t *testing.T) {
	checks := []struct{ got, want string }{
		{HoldNone.String(), "none"}, {HoldResponse.String(), "response"}, {HoldStream.String(), "stream"},
		{KeepAliveIdle.String(), "idle"}, {KeepAliveInterval.String(), "interval"},
		{ActionSend.String(), "send"}, {ActionHint.String(), "hint"},
		{ActionClose.String(), "close"}, {ActionRefresh.String(), "refresh"},
		{WSText.String(), "text"}, {WSBinary.String(), "binary"}, {WSPing.String(), "ping"}, {WSPong.String(), "pong"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
