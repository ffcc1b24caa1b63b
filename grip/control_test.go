package grip

import (
	"reflect"
	"testing"
	"time"
)

func TestParseControlMessage(t *testing.T) {
	tests := []struct {
		json string
		want ControlMessage
	}{
		{`{"type":"subscribe","channel":"updates"}`, ControlMessage{Type: ControlSubscribe, Channel: "updates"}},
		{`{"type":"subscribe","channel":"c","filters":["skip-self","build-id"]}`,
			ControlMessage{Type: ControlSubscribe, Channel: "c", Filters: []string{"skip-self", "build-id"}}},
		{`{"type":"unsubscribe","channel":"c","filters":5}`, ControlMessage{Type: ControlUnsubscribe, Channel: "c"}},
		{`{"type":"detach"}`, ControlMessage{Type: ControlDetach}},
		{`{"type":"session","id":"s1"}`, ControlMessage{Type: ControlSession, ID: "s1"}},
		{`{"type":"session"}`, ControlMessage{Type: ControlSession}},
		{`{"type":"set-meta","name":"user","value":"alice"}`, ControlMessage{Type: ControlSetMeta, Name: "user", Value: "alice", HasValue: true}},
		{`{"type":"set-meta","name":"user","value":""}`, ControlMessage{Type: ControlSetMeta, Name: "user", HasValue: true}},
		{`{"type":"set-meta","name":"user"}`, ControlMessage{Type: ControlSetMeta, Name: "user"}},
		{`{"type":"keep-alive","content":"ka"}`, ControlMessage{Type: ControlKeepAlive, Content: []byte("ka"), HasContent: true,
			MessageType: "text", Timeout: DefaultKeepAliveTimeout}},
		{`{"type":"keep-alive","content":"","timeout":0}`, ControlMessage{Type: ControlKeepAlive, Content: []byte{}, HasContent: true,
			MessageType: "text", Timeout: DefaultKeepAliveTimeout}},
		{`{"type":"keep-alive","content-bin":"AAE=","timeout":20,"mode":"interval"}`, ControlMessage{Type: ControlKeepAlive,
			Content: []byte{0, 1}, HasContent: true, MessageType: "binary", Timeout: 20 * time.Second, Mode: KeepAliveInterval}},
		{`{"type":"keep-alive","message-type":"ping","content":"","mode":"weird"}`, ControlMessage{Type: ControlKeepAlive,
			Content: []byte{}, HasContent: true, MessageType: "ping", Timeout: DefaultKeepAliveTimeout}},
		{`{"type":"keep-alive","timeout":"ignored without content"}`, ControlMessage{Type: ControlKeepAlive,
			MessageType: "text", Timeout: DefaultKeepAliveTimeout}},
		{`{"type":"send-delayed","content":"x"}`, ControlMessage{Type: ControlSendDelayed, Content: []byte("x"), HasContent: true,
			MessageType: "text", Timeout: time.Second}},
		{`{"type":"send-delayed","content":"x","message-type":"binary","timeout":3,"mode":"interval"}`, ControlMessage{
			Type: ControlSendDelayed, Content: []byte("x"), HasContent: true, MessageType: "binary", Timeout: 3 * time.Second}},
		{`{"type":"flush-delayed"}`, ControlMessage{Type: ControlFlushDelayed}},
	}
	for _, tt := range tests {
		got, err := ParseControlMessage([]byte(tt.json))
		if err != nil {
			t.Errorf("%s: %v", tt.json, err)
			continue
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tt.json, *got, tt.want)
		}
	}
}

func TestParseControlMessageErrors(t *testing.T) {
	tests := []struct{ json, want string }{
		{`{`, "grip control message is not valid json"},
		{``, "grip control message is not valid json"},
		{`[]`, "grip control packet is not an object"},
		{`{}`, "grip control object does not contain 'type'"},
		{`{"type":5}`, "grip control object contains 'type' with wrong type"},
		{`{"type":"publish"}`, "'type' contains unknown value: publish"},
		{`{"type":"subscribe"}`, "grip control object does not contain 'channel'"},
		{`{"type":"unsubscribe","channel":""}`, "grip control object contains 'channel' with invalid value"},
		{`{"type":"subscribe","channel":"c","filters":"f"}`, "grip control object contains 'filters' with wrong type"},
		{`{"type":"subscribe","channel":"c","filters":[1]}`, "filters contains value with wrong type"},
		{`{"type":"session","id":1}`, "grip control object contains 'id' with wrong type"},
		{`{"type":"set-meta"}`, "grip control object does not contain 'name'"},
		{`{"type":"set-meta","name":""}`, "grip control object contains 'name' with invalid value"},
		{`{"type":"set-meta","name":"a","value":1}`, "grip control object contains 'value' with wrong type"},
		{`{"type":"keep-alive","message-type":"video"}`, "grip control object contains 'message-type' with unknown value"},
		{`{"type":"keep-alive","message-type":1}`, "grip control object contains 'message-type' with wrong type"},
		{`{"type":"keep-alive","content":1}`, "grip control object contains 'content' with wrong type"},
		{`{"type":"keep-alive","content-bin":1}`, "grip control object contains 'content-bin' with wrong type"},
		{`{"type":"keep-alive","content-bin":"%"}`, "grip control object contains 'content-bin' with invalid value"},
		{`{"type":"keep-alive","content":"x","timeout":"5"}`, "grip control object contains 'timeout' with wrong type"},
		{`{"type":"send-delayed","content":"x","timeout":-1}`, "grip control object contains 'timeout' with invalid value"},
		{`{"type":"keep-alive","content":"x","mode":1}`, "grip control object contains 'mode' with wrong type"},
	}
	for _, tt := range tests {
		got, err := ParseControlMessage([]byte(tt.json))
		checkParseError(t, got, err, tt.want)
	}
}

func TestParseGripExtension(t *testing.T) {
	tests := []struct {
		value   string
		enabled bool
		prefix  string
	}{
		{"grip", true, "m:"},
		{`grip; message-prefix=""`, true, ""},
		{`grip; message-prefix="_"`, true, "_"},
		{`permessage-deflate; client_max_window_bits, grip ; message-prefix=x`, true, "x"},
		{`grip; other=1; Message-Prefix="a;b,c"`, true, "a;b,c"},
		{`grip; message-prefix=first, grip; message-prefix=second`, true, "first"},
		{"", false, ""},
		{"permessage-deflate", false, ""},
		{"gripx; message-prefix=y", false, ""},
		{"GRIP", false, ""},
		{`grip; message-prefix="unterminated`, false, ""},
	}
	for _, tt := range tests {
		enabled, prefix := ParseGripExtension(tt.value)
		if enabled != tt.enabled || prefix != tt.prefix {
			t.Errorf("ParseGripExtension(%q) = %v, %q", tt.value, enabled, prefix)
		}
	}
}
